package machines

import (
	"fmt"
	"strings"
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	machinetype "github.com/siderolabs/talos/pkg/machinery/config/machine"

	"solanaops.testbed/emulator/internal/testutil"
	"solanaops.testbed/emulator/kernel"
)

func TestUserVolumes(t *testing.T) {
	spec := NodeSpec{Name: "w1", Address: "127.0.1.33", Hardware: kernel.Hardware{BootMode: "grub", Disks: []kernel.Disk{
		{DevPath: "/dev/sda", Serial: "SYS", Size: "480Gi"},
		{DevPath: "/dev/nvme0n1", Serial: "A1", WWID: "eui.0001", Model: "FAST", Size: "1.92T"},
		{DevPath: "/dev/nvme1n1", Serial: "B1", WWID: "eui.0002", Model: "FAST", Size: "3.84T"},
	}}}
	if err := spec.normalize(); err != nil {
		t.Fatal(err)
	}

	n, err := newNode(spec, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}

	raw := testutil.GenConfig(t, nil, machinetype.TypeWorker, "/dev/sda", testutil.StockImage, "")

	volume := func(name, match, extra string) string {
		return fmt.Sprintf("---\napiVersion: v1alpha1\nkind: UserVolumeConfig\nname: %s\nprovisioning:\n  diskSelector:\n    match: '%s'\n  maxSize: 100GiB\n%s", name, match, extra)
	}

	raw = append(raw, volume("a", `disk.wwid == "eui.0001"`, "")+
		volume("b", `disk.model == "FAST" && disk.size > 3u * TB`, "filesystem:\n  type: ext4\n")+
		volume("c", `disk.dev_path == "/dev/nvme0n1"`, "")+
		volume("d", `disk.serial == "SYS"`, "")+ // the system disk: never used
		"---\napiVersion: v1alpha1\nkind: UserVolumeConfig\nname: e\nvolumeType: directory\n"...)

	loaded, err := configloader.NewFromBytes(raw)
	if err != nil {
		t.Fatal(err)
	}

	if _, err = loaded.Validate(metalMode{}); err != nil {
		t.Fatal(err)
	}

	em := &Emulator{nodes: []*Node{n}, log: t.Logf}
	em.mu.Lock()
	em.setRunning(n, loaded, raw)
	em.mu.Unlock()

	mounts, err := n.readFile("/proc/mounts")
	if err != nil {
		t.Fatal(err)
	}

	for _, want := range []string{
		"/dev/sda6 /var xfs ",
		"/dev/nvme0n1p1 /var/mnt/a xfs rw,nosuid,nodev,relatime,attr2,inode64,logbufs=8,logbsize=32k,noquota 0 0\n",
		"/dev/nvme1n1p1 /var/mnt/b ext4 rw,nosuid,nodev,relatime 0 0\n",
		"/dev/nvme0n1p2 /var/mnt/c xfs ",
		"/dev/sda6 /var/mnt/e xfs ",
	} {
		if !strings.Contains(string(mounts), want) {
			t.Errorf("/proc/mounts lacks %q:\n%s", want, mounts)
		}
	}

	if strings.Contains(string(mounts), "/var/mnt/d") {
		t.Errorf("volume d must not land on the system disk:\n%s", mounts)
	}
}
