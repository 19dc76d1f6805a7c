package machines

// Mirror pods: the kubelet runs the static pods Talos serves it (staticpods.go) and, with its
// own identity, mirrors each in the API as kube-system/<component>-<node name>
// (pkg/kubelet/pod/mirror_client.go CreateMirrorPod: the annotation kubernetes.io/config.mirror
// holding the static pod's hash, the Node as controlling owner; NodeRestriction admits only such
// pods bound to the node itself). When the static pod changes, the kubelet deletes the old
// mirror pod and creates the new one (pkg/kubelet/kubelet.go tryReconcileMirrorPods: a mirror
// pod that is not the static pod's is deleted and recreated), then reports the pod's status:
// host network, so hostIP = podIP = the node's address; Ready while the container runs and passes its probe
// (componentReady); an image that cannot be pulled leaves it Pending, waiting with
// ErrImagePull. talosctl upgrade-k8s waits for exactly this (pkg/cluster/kubernetes/
// talos_managed.go checkPodStatus).

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/resources/k8s"
)

const mirrorAnnotation = "kubernetes.io/config.mirror"

// probeClient reads the components' health endpoints as the kubelet's probes do (no client
// certificate, no server verification).
var probeClient = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}, //nolint:gosec
}

// staticPodHash is the kubelet's hash of a static pod (its config.mirror annotation).
func staticPodHash(static map[string]any) string {
	raw, _ := json.Marshal(static) //nolint:errchkjson
	sum := sha256.Sum256(raw)

	return hex.EncodeToString(sum[:16])
}

// mirrorPod is the mirror of a static pod on a node: the static pod plus what the kubelet adds.
func mirrorPod(static map[string]any, nodeName, nodeUID string) (map[string]any, string) {
	raw, _ := json.Marshal(static) //nolint:errchkjson
	hash := staticPodHash(static)

	var pod map[string]any
	_ = json.Unmarshal(raw, &pod) //nolint:errcheck

	md := pod["metadata"].(map[string]any)
	md["name"] = fmt.Sprintf("%s-%s", md["name"], nodeName)
	annotations := md["annotations"].(map[string]any)
	annotations[mirrorAnnotation] = hash
	annotations["kubernetes.io/config.hash"] = hash
	annotations["kubernetes.io/config.source"] = "http"
	md["ownerReferences"] = []any{map[string]any{"apiVersion": "v1", "kind": "Node", "name": nodeName, "uid": nodeUID, "controller": true}}

	spec := pod["spec"].(map[string]any)
	spec["nodeName"] = nodeName
	// the kubelet's defaults for static pods (pkg/kubelet/config/common.go): they tolerate
	// every NoExecute taint, so the node lifecycle controller never evicts them
	spec["tolerations"] = []any{map[string]any{"operator": "Exists", "effect": "NoExecute"}}

	return pod, hash
}

// mirrorStatus is the status the kubelet posts for a static pod's container.
func mirrorStatus(addr, container, image string, ready bool, pullErr string, started time.Time) map[string]any {
	ts := started.UTC().Format(time.RFC3339)
	flag := map[bool]string{true: "True", false: "False"}
	state := map[string]any{"running": map[string]any{"startedAt": ts}}
	phase := "Running"

	if pullErr != "" {
		state = map[string]any{"waiting": map[string]any{"reason": "ErrImagePull", "message": pullErr}}
		phase = "Pending"
	}

	conditions := []any{
		map[string]any{"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": ts},
		map[string]any{"type": "Initialized", "status": "True", "lastTransitionTime": ts},
		map[string]any{"type": "Ready", "status": flag[ready], "lastTransitionTime": ts},
		map[string]any{"type": "ContainersReady", "status": flag[ready], "lastTransitionTime": ts},
		map[string]any{"type": "PodScheduled", "status": "True", "lastTransitionTime": ts},
	}

	return map[string]any{"status": map[string]any{
		"phase": phase, "hostIP": addr, "hostIPs": []any{map[string]any{"ip": addr}},
		"podIP": addr, "podIPs": []any{map[string]any{"ip": addr}}, "startTime": ts,
		"conditions": conditions,
		"containerStatuses": []any{map[string]any{
			"name": container, "image": image, "imageID": "", "ready": ready, "started": pullErr == "",
			"restartCount": 0, "state": state,
		}},
	}}
}

// componentReady is when the kubelet reports a running static pod's container ready (Talos'
// pods, k8stemplates: kube-scheduler's readiness probe /readyz, kube-controller-manager's
// startup probe /healthz and no readiness probe; kube-apiserver has none, the emulator waits
// for its /readyz, as the rest of the testbed does).
func (em *Emulator) componentReady(n *Node, id string) bool {
	switch id {
	case k8s.APIServerID:
		em.mu.Lock()
		defer em.mu.Unlock()

		return n.rt.apiReady
	case k8s.ControllerManagerID:
		return httpOK(probeClient, "https://"+net.JoinHostPort(n.spec.Address, strconv.Itoa(controllerManagerPort))+"/healthz")
	default:
		return httpOK(probeClient, "https://"+net.JoinHostPort(n.spec.Address, strconv.Itoa(schedulerPort))+"/readyz")
	}
}

// reconcileMirrorPods posts the node's mirror pods and their status, each time one changed.
// Only the reconcile loop calls it.
func (em *Emulator) reconcileMirrorPods(n *Node) error {
	em.mu.Lock()
	statics := n.staticPods
	running := n.configured() && !n.runsNothing() && n.kubeletRunning()
	em.mu.Unlock()

	if !running || len(statics) == 0 || n.rt.registered == "" {
		return nil // no kubelet, or no Node to own the mirrors yet
	}

	ready := em.readyAPIServers(netip.Addr{})
	if len(ready) == 0 {
		return nil
	}

	server := apiServerURL(ready[0])

	client, err := em.kubeletClient(n, ready[0])
	if err != nil {
		return err
	}

	nodeName := n.nodeName()
	nodeUID := ""

	for _, id := range slices.Sorted(maps.Keys(statics)) {
		em.mu.Lock()
		proc := n.rt.procs[id]
		runningImage := n.rt.images[id]
		pullErr := n.rt.pullErrors[id]
		em.mu.Unlock()

		static := statics[id]
		image := static["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["image"].(string)
		up := pullErr == "" && proc != nil && proc.Alive() && runningImage == image &&
			(id != k8s.APIServerID && n.rt.readyPIDs[id] == proc.Pid() || em.componentReady(n, id))

		if up && id != k8s.APIServerID {
			// probed once per process: a controller-manager or scheduler that answered stays ready
			if n.rt.readyPIDs == nil {
				n.rt.readyPIDs = map[string]int{}
			}

			n.rt.readyPIDs[id] = proc.Pid()
		}
		name := id + "-" + nodeName
		posted := fmt.Sprintf("%s %t %s", staticPodHash(static), up, pullErr)

		if n.rt.mirrors[name] == posted {
			continue
		}

		if nodeUID == "" {
			if nodeUID, err = em.nodeUID(client, server, nodeName); err != nil {
				return err
			}
		}

		pod, hash := mirrorPod(static, nodeName, nodeUID)

		if err := em.putMirrorPod(client, server, nodeName, name, hash, pod); err != nil {
			return fmt.Errorf("mirror pod %s: %w", name, err)
		}

		started := time.Now()
		if proc != nil {
			started = proc.Started()
		}

		patch, _ := json.Marshal(mirrorStatus(n.spec.Address, id, image, up, pullErr, started)) //nolint:errchkjson
		if status, body, err := kubeRequest(client, http.MethodPatch, server+"/api/v1/namespaces/kube-system/pods/"+name+"/status",
			"application/merge-patch+json", patch); err != nil || status >= 300 {
			return fmt.Errorf("mirror pod %s status: %d %s %v", name, status, body, err)
		}

		em.mu.Lock()
		if n.rt.mirrors == nil {
			n.rt.mirrors = map[string]string{}
		}

		n.rt.mirrors[name] = posted
		em.mu.Unlock()
	}

	return nil
}

func (em *Emulator) nodeUID(client *http.Client, server, name string) (string, error) {
	status, body, err := kubeRequest(client, http.MethodGet, server+"/api/v1/nodes/"+name, "application/json", nil)
	if err != nil || status != http.StatusOK {
		return "", fmt.Errorf("reading Node %s: %d %s %v", name, status, body, err)
	}

	var node struct {
		Metadata struct {
			UID string `json:"uid"`
		} `json:"metadata"`
	}

	if err := json.Unmarshal([]byte(body), &node); err != nil {
		return "", err
	}

	return node.Metadata.UID, nil
}

// putMirrorPod makes the mirror pod the one of this hash: kept when it is, else the old one is
// deleted (at once, as the kubelet deletes mirror pods) and the new one created.
func (em *Emulator) putMirrorPod(client *http.Client, server, nodeName, name, hash string, pod map[string]any) error {
	url := server + "/api/v1/namespaces/kube-system/pods/"

	// a node reads pods through a list of its own (the Node authorizer refuses a get of a pod
	// it has no relationship with, a missing one included), as the kubelet's informer does
	status, body, err := kubeRequest(client, http.MethodGet, url+"?fieldSelector=spec.nodeName%3D"+nodeName, "application/json", nil)
	if err != nil {
		return err
	} else if status != http.StatusOK {
		return fmt.Errorf("list: %d %s", status, body)
	}

	var list struct {
		Items []struct {
			Metadata struct {
				Name        string            `json:"name"`
				UID         string            `json:"uid"`
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		} `json:"items"`
	}

	if err := json.Unmarshal([]byte(body), &list); err != nil {
		return err
	}

	for _, cur := range list.Items {
		if cur.Metadata.Name != name {
			continue
		}

		if cur.Metadata.Annotations[mirrorAnnotation] == hash {
			return nil
		}

		opts := fmt.Appendf(nil, `{"kind":"DeleteOptions","apiVersion":"v1","gracePeriodSeconds":0,"preconditions":{"uid":%q}}`, cur.Metadata.UID)
		if status, body, err = kubeRequest(client, http.MethodDelete, url+name, "application/json", opts); err != nil {
			return err
		} else if status >= 300 && status != http.StatusNotFound {
			return fmt.Errorf("delete: %d %s", status, body)
		}

		em.log("mirror pod kube-system/%s deleted: its static pod changed", name)
	}

	raw, _ := json.Marshal(pod) //nolint:errchkjson
	if status, body, err = kubeRequest(client, http.MethodPost, url, "application/json", raw); err != nil {
		return err
	} else if status >= 300 {
		return fmt.Errorf("create: %d %s", status, body)
	}

	em.log("mirror pod kube-system/%s created (config version %s)", name,
		pod["metadata"].(map[string]any)["annotations"].(map[string]any)["talos.dev/config-version"])

	return nil
}
