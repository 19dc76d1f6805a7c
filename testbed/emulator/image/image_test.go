package image

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

const (
	version = "v1.13.9"
	tuned   = "1111111111111111111111111111111111111111111111111111111111111111"
	unknown = "2222222222222222222222222222222222222222222222222222222222222222"
)

// fakeFactory answers the testbed Image Factory's contract for one registered schematic.
func fakeFactory(t *testing.T) (host string, requests *[]string) {
	t.Helper()

	var seen []string

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.URL.Path)

		parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v2/"), "/")
		if len(parts) != 4 || parts[2] != "manifests" || parts[1] != tuned {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{ //nolint:errcheck
				"code": "MANIFEST_UNKNOWN", "message": "schematic " + parts[1] + " is not registered",
			}}})

			return
		}

		json.NewEncoder(w).Encode(map[string]any{ //nolint:errcheck
			"schematic": parts[1], "flavour": parts[0], "talos_version": parts[3],
			"secureboot": parts[0] == FlavourMetalSecureBoot, "extra_kernel_args": []string{"hugepages=8"},
			"official_extensions": []string{"siderolabs/amd-ucode"}, "meta": []any{},
		})
	}))
	t.Cleanup(srv.Close)

	return strings.TrimPrefix(srv.URL, "http://"), &seen
}

func TestPull(t *testing.T) {
	host, requests := fakeFactory(t)
	p := Puller{}
	ctx := context.Background()

	inst, err := p.Pull(ctx, host+"/metal-installer/"+tuned+":"+version)
	if err != nil {
		t.Fatal(err)
	}

	if inst.Schematic != tuned || inst.SecureBoot || !slices.Equal(inst.ExtraKernelArgs, []string{"hugepages=8"}) ||
		!slices.Equal(inst.OfficialExtensions, []string{"siderolabs/amd-ucode"}) || inst.TalosVersion != version {
		t.Errorf("pulled %+v", inst)
	}

	if want := "/v2/metal-installer/" + tuned + "/manifests/" + version; len(*requests) != 1 || (*requests)[0] != want {
		t.Errorf("requests %q, want [%s]", *requests, want)
	}

	sb, err := p.Pull(ctx, host+"/metal-installer-secureboot/"+tuned+":"+version)
	if err != nil || !sb.SecureBoot {
		t.Errorf("secureboot pull: %+v %v", sb, err)
	}

	stock, err := p.Pull(ctx, "ghcr.io/siderolabs/installer:"+version)
	if err != nil || stock.Schematic != "" || len(stock.ExtraKernelArgs) != 0 || stock.Image != "ghcr.io/siderolabs/installer:"+version {
		t.Errorf("stock: %+v %v", stock, err)
	}

	// an older patch release of the same minor boots (and reports its own version)
	older, err := p.Pull(ctx, host+"/metal-installer/"+tuned+":v1.13.8")
	if err != nil || older.TalosVersion != "v1.13.8" {
		t.Errorf("v1.13.8: %+v %v", older, err)
	}

	// so does a v1.14 release up to v1.14.1
	newer, err := p.Pull(ctx, host+"/metal-installer/"+tuned+":v1.14.1")
	if err != nil || newer.TalosVersion != "v1.14.1" {
		t.Errorf("v1.14.1: %+v %v", newer, err)
	}

	// the digest is the manifest's, so the pinned name changes with the tag
	pinned, err := older.PinnedName()
	if err != nil || !strings.HasPrefix(pinned, host+"/metal-installer/"+tuned+"@sha256:") || older.Digest == inst.Digest {
		t.Errorf("pinned name %q (%v), digests %s / %s", pinned, err, older.Digest, inst.Digest)
	}

	before := len(*requests)

	for ref, want := range map[string]string{
		host + "/metal-installer/" + unknown + ":" + version:         "MANIFEST_UNKNOWN: schematic " + unknown + " is not registered",
		"factory.talos.dev/metal-installer/" + tuned + ":" + version: "registry factory.talos.dev cannot be reached from the testbed",
		"ghcr.io/our-org/installer:" + version:                       "registry ghcr.io cannot be reached from the testbed",
		host + "/metal-installer/" + tuned + ":v1.13.10":             "installer tag v1.13.10 cannot boot on the emulated machines (releases v1.13.0 to v1.13.9, v1.14.0 to v1.14.1 only)",
		host + "/metal-installer/" + tuned + ":v1.14.2":              "installer tag v1.14.2 cannot boot",
		host + "/metal-installer/" + tuned + ":v1.12.9":              "installer tag v1.12.9 cannot boot",
		"ghcr.io/siderolabs/installer:v1.14.1":                       "ghcr.io/siderolabs/installer is not published for Talos v1.14 and later",
		"ghcr.io/siderolabs/installer:v1.12.0":                       "installer tag v1.12.0 cannot boot",
		"ghcr.io/siderolabs/installer:v1.13.9-rc.0":                  "installer tag v1.13.9-rc.0 cannot boot",
		"ghcr.io/siderolabs/installer":                               "installer tag latest cannot boot",
		host + "/installer/" + tuned + ":" + version:                 "not an Image Factory metal installer",
		host + "/metal-installer/abc:" + version:                     `"abc" is not a schematic ID`,
		"ghcr.io/siderolabs/installer@sha256:" + tuned:               "digest references cannot be pulled",
		"": "machine.install.image is empty",
	} {
		if _, err := p.Pull(ctx, ref); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Pull(%q) = %v, want an error with %q", ref, err, want)
		}
	}

	// only the unknown schematic reached the factory: the rest fail before any request
	if got := len(*requests) - before; got != 1 {
		t.Errorf("%d requests for the failing references, want 1", got)
	}
}

func TestPullChecksTheAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"schematic": unknown, "flavour": "metal-installer", "talos_version": version}) //nolint:errcheck
	}))
	t.Cleanup(srv.Close)

	_, err := Puller{}.Pull(context.Background(), strings.TrimPrefix(srv.URL, "http://")+"/metal-installer/"+tuned+":"+version)
	if err == nil || !strings.Contains(err.Error(), "the factory answered schematic") {
		t.Errorf("a mismatched answer must fail: %v", err)
	}
}

func TestParseReference(t *testing.T) {
	for ref, want := range map[string]Reference{
		"127.0.1.5:5000/metal-installer/abc:v1": {"127.0.1.5:5000", "metal-installer/abc", "v1"},
		"ghcr.io/siderolabs/installer:v1.13.9":  {"ghcr.io", "siderolabs/installer", "v1.13.9"},
		"busybox":                               {"docker.io", "busybox", "latest"},
	} {
		if got, err := ParseReference(ref); err != nil || got != want {
			t.Errorf("ParseReference(%q) = %+v, %v; want %+v", ref, got, err, want)
		}
	}
}
