package machines

// The kubelet service: Talos starts the kubelet with the KubeletSpec it renders and restarts it
// when that spec changes (internal/app/machined/pkg/controllers/k8s/kubelet_service.go); a
// kubelet that exits is restarted forever, the service shown Waiting with the error
// (internal/app/machined/pkg/system/runner/restart/restart.go). What makes the kubelet exit is
// package kubelet's Start; the memory manager's checkpoint it writes lives on the machine's
// disk (/var/lib/kubelet, on EPHEMERAL), so it is kept in node.json.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"time"

	"solanaops.testbed/emulator/kubelet"
)

// startKubelet (re)starts the kubelet when its service was just started or restarted, or when
// its configuration changed since it last started. Called with em.mu held.
func (em *Emulator) startKubelet(n *Node, svc *serviceState, now time.Time) {
	if n.runsNothing() {
		return // a machine that is down, rebooting or halting runs nothing
	}

	raw, err := kubelet.ConfigYAML(n.kubeletMachine())
	if err != nil {
		return
	}

	// the KubeletSpec: its config, image and flags
	spec := kubeletSpec(n.running).TypedSpec()
	sum := sha256.Sum256(fmt.Appendf(raw, "\x00%s\x00%q", spec.Image, spec.Args))
	started := hex.EncodeToString(sum[:])

	if n.kubeletStarted == started && svc.changed.Before(n.kubeletStartedAt) {
		return
	}

	if n.kubeletStarted != "" && n.kubeletStarted != started && svc.state == "Running" {
		// a new spec: Talos stops the kubelet, then starts it; the Services resource is
		// destroyed meanwhile (what upgrade-k8s waits for before the kubelet comes back)
		svc.event(now, "Finished", "Service finished successfully")
		em.syncResources(n)
	}

	n.kubeletStarted, n.kubeletStartedAt = started, now.Add(time.Nanosecond)

	if em.tools.Enabled() {
		// the kubelet service's pre stage pulls its image (system/services/kubelet.go PreFunc)
		if _, err := em.pullKubeImage(n, spec.Image); err != nil {
			msg := fmt.Sprintf("Failed to run pre stage: failed to pull image %q: %v", spec.Image, err)
			if svc.state != "Failed" || svc.events[len(svc.events)-1].msg != msg {
				svc.healthy = false
				svc.event(now, "Failed", msg)
				em.log("%s: kubelet: %s", n.spec.Name, msg)
			}

			n.kubeletStarted = "" // retried (retryKubeletPull)

			return
		}
	}

	checkpoint, err := kubelet.Start(n.kubeletMachine(), n.disk.MemoryCheckpoint)
	if err != nil {
		n.kubeletLog = append(n.kubeletLog, fmt.Sprintf("%s E kubelet: \"command failed\" err=%q", now.UTC().Format(time.RFC3339), err.Error()))
		svc.healthy = false
		svc.event(now, "Waiting", fmt.Sprintf("Error running Containerd(kubelet), going to restart forever: task %q failed: exit code 1", "kubelet"))
		em.log("%s: kubelet exits: %v", n.spec.Name, err)

		return
	}

	if !reflect.DeepEqual(n.disk.MemoryCheckpoint, checkpoint) {
		n.disk.MemoryCheckpoint = checkpoint
		if err := n.savePersisted(); err != nil {
			em.log("%s: saving state: %v", n.spec.Name, err)
		}
	}
	n.kubeletLog = append(n.kubeletLog, now.UTC().Format(time.RFC3339)+" I kubelet: \"Started kubelet\"")

	if svc.state != "Running" {
		svc.start("kubelet", now)
	}
}

// kubeletRunning reports whether the node's kubelet runs (it registers and heartbeats its Node).
func (n *Node) kubeletRunning() bool {
	svc, ok := n.services["kubelet"]

	return ok && svc.state == "Running"
}

// KubeletLog is what `talosctl logs kubelet` shows.
func (em *Emulator) KubeletLog(n *Node) []string {
	em.mu.Lock()
	defer em.mu.Unlock()

	return append([]string(nil), n.kubeletLog...)
}

// retryKubeletPull starts again a kubelet whose image could not be pulled, as Talos restarts
// the failed service (once a reconcile, while the image stays unavailable nothing changes).
func (em *Emulator) retryKubeletPull(n *Node) {
	em.mu.Lock()
	defer em.mu.Unlock()

	if svc := n.services["kubelet"]; svc != nil && svc.state == "Failed" && n.kubeletStarted == "" && !n.runsNothing() {
		em.refreshServices(n)
	}
}
