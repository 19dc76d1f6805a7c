package machines

// The testbed's container registry for Kubernetes: the kube binaries the emulator was given,
// by version (--kube VERSION=PATH, repeatable), stand for the images of Talos' default
// repositories at that tag. A control plane runs the binary its config's image tag names
// (controlplane.go); an image of another tag, another repository, or one the node's fault
// switch fails, cannot be pulled, as a real node's containerd would fail it.

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/blang/semver/v4"
	"github.com/siderolabs/talos/pkg/machinery/constants"
	"github.com/siderolabs/talos/pkg/machinery/resources/k8s"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// KubeBinaries are the kube binaries (one binary dispatching kube-apiserver,
// kube-controller-manager and kube-scheduler) by Kubernetes version ("v1.37.2"); a flag.Value
// taking VERSION=PATH.
type KubeBinaries map[string]string

var kubeVersionPattern = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+$`)

func (k KubeBinaries) String() string {
	var parts []string
	for _, v := range slices.Sorted(maps.Keys(k)) {
		parts = append(parts, v+"="+k[v])
	}

	return strings.Join(parts, ",")
}

func (k KubeBinaries) Set(value string) error {
	version, path, ok := strings.Cut(value, "=")
	if !ok || path == "" || !kubeVersionPattern.MatchString(version) {
		return fmt.Errorf("%q: want VERSION=PATH, VERSION as v1.36.3", value)
	}

	if _, dup := k[version]; dup {
		return fmt.Errorf("%s given twice", version)
	}

	k[version] = path

	return nil
}

// kubeRepositories are the repositories the testbed registry serves: Talos' defaults
// (pkg/machinery/constants), the ones talosctl upgrade-k8s patches in unless told otherwise.
var kubeRepositories = map[string]string{
	k8s.APIServerID:         constants.KubernetesAPIServerImage,
	k8s.ControllerManagerID: constants.KubernetesControllerManagerImage,
	k8s.SchedulerID:         constants.KubernetesSchedulerImage,
	"kube-proxy":            constants.KubeProxyImage,
	"kubelet":               constants.KubeletImage,
}

// splitImage is a reference's repository and tag (a digest dropped; no tag means "latest").
func splitImage(ref string) (repo, tag string) {
	ref, _, _ = strings.Cut(ref, "@")

	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i], ref[i+1:]
	}

	return ref, "latest"
}

// errImageNotFound and errRegistryFault are what a pull fails with: the reference does not
// exist, or the testbed's fault switch makes the registry fail for the node.
var (
	errImageNotFound = errors.New("not found")
	errRegistryFault = errors.New("unexpected status from HEAD request: 503 Service Unavailable")
)

// pullError is containerd's failure to resolve a reference (the text the kubelet reports as
// ErrImagePull and machined's ImagePull wraps).
type pullError struct {
	ref string
	err error
}

func (e *pullError) Error() string {
	return fmt.Sprintf("failed to resolve reference %q: %s: %v", e.ref, e.ref, e.err)
}

func (e *pullError) Unwrap() error { return e.err }

// resolveKubeImage is the kube binary an image reference stands for, or the pull's error.
// failing holds the versions the node's fault switch fails.
func resolveKubeImage(bins KubeBinaries, failing map[string]bool, ref string) (string, error) {
	repo, tag := splitImage(ref)

	path, ok := bins[tag]
	if !ok || !slices.Contains(slices.Collect(maps.Values(kubeRepositories)), repo) {
		return "", &pullError{ref: ref, err: errImageNotFound}
	}

	if failing[tag] {
		return "", &pullError{ref: ref, err: errRegistryFault}
	}

	return path, nil
}

// pullKubeImage is the node's containerd pulling a Kubernetes image: an image it already holds
// needs no registry (static pods and the kubelet pull only when absent, machined's ImagePull
// skips a pulled one: image.WithSkipIfAlreadyPulled), anything else is resolved in the registry,
// which the node's fault switch may fail. Called with em.mu held.
func (em *Emulator) pullKubeImage(n *Node, ref string) (string, error) {
	failing := n.pullFailures
	if n.kubeImages[ref] {
		failing = nil
	}

	path, err := resolveKubeImage(em.tools.Kube, failing, ref)
	if err == nil {
		if n.kubeImages == nil {
			n.kubeImages = map[string]bool{}
		}

		n.kubeImages[ref] = true
	}

	return path, err
}

// semverOf is a tag's version (v1.37.2), the zero version when it is not one.
func semverOf(tag string) semver.Version {
	v, _ := semver.ParseTolerant(tag) //nolint:errcheck

	return v
}

// ImagePull is machined's legacy MachineService.ImagePull, which talosctl upgrade-k8s uses to
// pre-pull every image it is about to configure (internal/app/machined/internal/server/v1alpha1/
// v1alpha1_images.go: NotFound for a reference that does not exist, the error itself
// otherwise). Only the Kubernetes images are in the testbed registry; anything else is not
// found. Real v1.14 retries a not-found pull a few times first; the emulator answers at once.
func (em *Emulator) ImagePull(n *Node, ref string) error {
	em.mu.Lock()
	_, err := em.pullKubeImage(n, ref)
	em.mu.Unlock()

	switch {
	case err == nil:
		return nil
	case errors.Is(err, errImageNotFound):
		return status.Errorf(codes.NotFound, "error pulling image: %s", err)
	default:
		return status.Error(codes.Unknown, err.Error())
	}
}

// SetPullFailure is the testbed's fault switch for Kubernetes upgrades: the node's pulls of
// every Kubernetes image of version (v1.37.2) it does not hold yet fail, so its static pods and
// kubelet of that version cannot start; an empty version clears the switch.
func (em *Emulator) SetPullFailure(n *Node, version string) error {
	if version != "" && !kubeVersionPattern.MatchString(version) {
		return fmt.Errorf("version %q is not a Kubernetes version such as v1.37.2", version)
	}

	em.mu.Lock()
	defer em.mu.Unlock()

	if version == "" {
		n.pullFailures = nil
	} else {
		if n.pullFailures == nil {
			n.pullFailures = map[string]bool{}
		}

		n.pullFailures[version] = true
	}

	em.changed()

	return nil
}
