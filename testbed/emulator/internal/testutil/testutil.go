// Package testutil holds what the emulator's tests share: machine configs as talosctl gen
// config renders them, and a fake of the testbed Image Factory's installer API.
package testutil

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	"github.com/siderolabs/talos/pkg/machinery/config/generate"
	machinetype "github.com/siderolabs/talos/pkg/machinery/config/machine"
)

// The releases the tests install: the v1.13 line and the v1.14 line.
const (
	V113 = "v1.13.9"
	V114 = "v1.14.1"
)

// StockImage is the stock installer of V113 (v1.14 has none).
const StockImage = "ghcr.io/siderolabs/installer:" + V113

// NewInput is fresh cluster secrets, as `talosctl gen config --talos-version v1.13` makes them.
func NewInput(t *testing.T) *generate.Input {
	t.Helper()

	return newInput(t, config.TalosVersion1_13)
}

// NewInput114 is fresh cluster secrets, as `talosctl gen config --talos-version v1.14` makes them.
func NewInput114(t *testing.T) *generate.Input {
	t.Helper()

	return newInput(t, config.TalosVersion1_14)
}

func newInput(t *testing.T, contract *config.VersionContract) *generate.Input {
	t.Helper()

	input, err := generate.NewInput("demo", "https://127.0.1.10:6443", "1.36.3", generate.WithVersionContract(contract))
	if err != nil {
		t.Fatal(err)
	}

	return input
}

// GenConfig renders a machine config as talosctl gen config would (input nil: fresh
// secrets and the v1.13 contract), with installPatch replacing the generated "grubUseUKICmdline: true" line of
// machine.install (indented 8 spaces).
func GenConfig(t *testing.T, input *generate.Input, typ machinetype.Type, disk, image, installPatch string) []byte {
	t.Helper()

	if input == nil {
		input = NewInput(t)
	}

	input.Options.InstallDisk, input.Options.InstallImage = disk, image

	cfg, err := input.Config(typ)
	if err != nil {
		t.Fatal(err)
	}

	raw, err := cfg.EncodeBytes(encoder.WithComments(encoder.CommentsDisabled))
	if err != nil {
		t.Fatal(err)
	}

	if installPatch != "" {
		const generated = "        grubUseUKICmdline: true\n"
		if !strings.Contains(string(raw), generated) {
			t.Fatalf("generated config lacks %q", generated)
		}

		raw = []byte(strings.Replace(string(raw), generated, installPatch, 1))
	}

	return raw
}

// FakeFactory is the testbed Image Factory's contract (testbed/imagefactory) for a fixed set
// of schematics: ID -> extra kernel args, official extensions. It returns the registry host.
func FakeFactory(t *testing.T, schematics map[string][2][]string) string {
	t.Helper()

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v2/"), "/")
		if len(parts) != 4 || parts[2] != "manifests" {
			http.NotFound(w, r)

			return
		}

		s, ok := schematics[parts[1]]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{ //nolint:errcheck
				"code": "MANIFEST_UNKNOWN", "message": "schematic " + parts[1] + " is not registered",
			}}})

			return
		}

		json.NewEncoder(w).Encode(map[string]any{ //nolint:errcheck
			"schematic": parts[1], "flavour": parts[0], "talos_version": parts[3], "secureboot": strings.HasSuffix(parts[0], "-secureboot"),
			"extra_kernel_args": s[0], "official_extensions": s[1], "meta": []any{},
		})
	}))
	t.Cleanup(srv.Close)

	return strings.TrimPrefix(srv.URL, "http://")
}

// schematic IDs of the fake factory (any 64 hex digits do: the factory is the authority)
const (
	TunedID   = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	EmptyID   = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
	UnknownID = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// TunedArgs are the tuned schematic's kernel arguments.
var TunedArgs = []string{"hugepagesz=2M", "hugepages=1024", "default_hugepagesz=2M", "iommu=pt"}

// Factory is a FakeFactory knowing TunedID (TunedArgs, two official extensions) and the empty
// schematic.
func Factory(t *testing.T) string {
	t.Helper()

	return FakeFactory(t, map[string][2][]string{
		TunedID: {TunedArgs, {"siderolabs/amd-ucode", "siderolabs/intel-ucode"}},
		EmptyID: {nil, nil},
	})
}

// WriteFile writes a test file.
func WriteFile(t *testing.T, path, content string) {
	t.Helper()

	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// InsecureTLS is a client TLS config that accepts any server certificate (maintenance mode).
func InsecureTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true} //nolint:gosec
}
