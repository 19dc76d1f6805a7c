package release

import (
	"strings"
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
)

func TestBootable(t *testing.T) {
	for tag, want := range map[string]string{
		"v1.13.0": "v1.13.9", "v1.13.9": "v1.13.9", "v1.14.0": "v1.14.1", "v1.14.1": "v1.14.1",
		"v1.13.10": "", "v1.14.2": "", "v1.12.9": "", "v1.15.0": "", "v1.14.1-rc.0": "", "latest": "",
	} {
		if got := Emulated(tag); got != want {
			t.Errorf("Emulated(%s) = %q, want %q", tag, got, want)
		}
	}
}

// TestV113KindsRegisteredInV114: every kind of the v1.13.9 schema is one machinery v1.14.1 (the
// emulator's) decodes, so the check refuses only kinds v1.13 lacks.
func TestV113KindsRegisteredInV114(t *testing.T) {
	for kind := range v113Schema() {
		if kind == "v1alpha1" {
			continue
		}

		_, err := configloader.NewFromBytes([]byte("apiVersion: v1alpha1\nkind: " + kind + "\nname: x\n"))
		if err != nil && strings.Contains(err.Error(), "not registered") {
			t.Errorf("%s: %v", kind, err)
		}
	}

	// and a v1.14 kind is refused by the same loader when misspelt: the test can fail
	if _, err := configloader.NewFromBytes([]byte("apiVersion: v1alpha1\nkind: KubeletConfigs\n")); err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Errorf("an unknown kind: %v", err)
	}
}

func TestCheckDocuments(t *testing.T) {
	raw := []byte("version: v1alpha1\nmachine: {type: worker}\n---\napiVersion: v1alpha1\nkind: HostnameConfig\nauto: stable\n---\napiVersion: v1alpha1\nkind: SysctlConfig\nparams: {a: b}\n---\napiVersion: v1alpha1\nkind: KubeletConfig\nimage: x\n")

	err := CheckDocuments("v1.13.9", raw)
	if want := `error decoding document v1alpha1/SysctlConfig/ (line 8): "SysctlConfig" "v1alpha1": not registered`; err == nil || err.Error() != want {
		t.Errorf("v1.13.9: %v, want %s", err, want)
	}

	if err := CheckDocuments("v1.13.8", raw[:strings.Index(string(raw), "---\napiVersion: v1alpha1\nkind: SysctlConfig")]); err != nil {
		t.Errorf("v1.13 kinds only: %v", err)
	}

	if err := CheckDocuments("v1.14.1", raw); err != nil {
		t.Errorf("v1.14.1 knows them all: %v", err)
	}

	// keys v1.14 added to a kind v1.13 knows, nested ones included, their values as written
	// (talosctl v1.13.9 validate prints the same); map keys are free
	keys := []byte("version: v1alpha1\nmachine: {type: worker, nodeLabels: {any: key}}\n---\napiVersion: v1alpha1\nkind: ResolverConfig\n" +
		"nameservers: [{address: 1.1.1.1, protocol: tls}]\nhostDNS: {enabled: true}\n")

	err = CheckDocuments("v1.13.9", keys)
	if want := "error decoding document v1alpha1/ResolverConfig/ (line 4): unknown keys found during decoding:\n" +
		"hostDNS: {enabled: true}\nnameservers:\n    - protocol: tls\n"; err == nil || err.Error() != want {
		t.Errorf("v1.13.9: %v, want %s", err, want)
	}

	if err := CheckDocuments("v1.14.1", keys); err != nil {
		t.Errorf("v1.14.1: %v", err)
	}
}
