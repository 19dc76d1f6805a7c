package machines

import (
	"path/filepath"
	"testing"

	"solanaops.testbed/emulator/process"
)

// Kubernetes stops before etcd: etcd is only signalled once every other program has exited.
func TestStopKubernetesFirst(t *testing.T) {
	dir := t.TempDir()
	procs := map[string]*process.Process{}

	for _, name := range []string{"kube-apiserver", "kube-scheduler", "cp1/etcd", "kwok"} {
		p, err := process.Start(name, filepath.Join(dir, filepath.Base(name)+".log"), []string{"sleep", "30"})
		if err != nil {
			t.Fatal(err)
		}

		procs[name] = p
	}

	var order []string

	stopKubernetesFirst(procs, func(name string) {
		if name == "cp1/etcd" {
			for other, p := range procs {
				if other != name && p.Alive() {
					t.Errorf("etcd stopped while %s still runs", other)
				}
			}
		}

		order = append(order, name)
	})

	if len(order) != 4 || order[3] != "cp1/etcd" {
		t.Errorf("stop order %q, want etcd last", order)
	}

	for name, p := range procs {
		if p.Alive() {
			t.Errorf("%s still runs", name)
		}
	}
}
