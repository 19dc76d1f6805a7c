package machines

// The node's kernel view (`talosctl read`): package kernel computes it from the hardware
// description, the install record and the running config; package kubelet the kubelet's
// config file, the one non-kernel file served.

import (
	"path/filepath"

	"solanaops.testbed/emulator/kernel"
	"solanaops.testbed/emulator/kubelet"
)

// kernelArgs is the command line the node booted: the installed boot entry's once installed,
// the boot media's (NODES.yaml talos_version) in maintenance mode.
func (n *Node) kernelArgs() []string {
	if n.configured() && n.disk.Install != nil {
		return n.disk.Install.KernelArgs
	}

	return kernel.BootMediaCmdline(n.spec.Hardware.TalosVersion)
}

// kernelView gathers the inputs of the node's kernel view.
func (n *Node) kernelView() kernel.View {
	view := kernel.View{Hardware: n.spec.Hardware, Cmdline: n.kernelArgs(), Hostname: n.hostname()}
	if n.configured() {
		view.Config = n.running
	}

	return view
}

// nodeName is the node's Kubernetes Node name (Talos' Nodename rule on the hostname).
func (n *Node) nodeName() string {
	return kubernetesNodeName(n.hostname())
}

// kubeletMachine gathers the inputs of the emulated kubelet (a configured node).
func (n *Node) kubeletMachine() kubelet.Machine {
	return kubelet.Machine{
		Config:       n.running,
		ControlPlane: n.isControlPlane(),
		NodeName:     n.nodeName(),
		Address:      n.spec.Address,
		CPUs:         n.spec.Hardware.CPUs,
		Memory:       n.kernelView().Memory(),
		BootID:       n.bootID,
		TalosVersion: n.talosVersion(),
	}
}

// bootIDPath is the kernel's boot ID, new on every boot (talosctl's reboot tracking reads it:
// cmd/talosctl/pkg/talos/action/tracker.go BootIDChangedPostCheckFn).
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// readFile returns the content of an emulated file.
func (n *Node) readFile(path string) ([]byte, error) {
	switch filepath.Clean(path) {
	case bootIDPath:
		return []byte(n.bootID + "\n"), nil
	case kubelet.ConfigPath:
		if n.configured() {
			return kubelet.ConfigYAML(n.kubeletMachine())
		}
	}

	return n.kernelView().Read(path)
}
