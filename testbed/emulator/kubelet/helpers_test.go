package kubelet

import (
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/generate"
	machinetype "github.com/siderolabs/talos/pkg/machinery/config/machine"
)

// workerConfig is a worker config as `talosctl gen config --talos-version v1.13` renders it
// (options may ask for another contract), its YAML passed through patch (nil: as rendered),
// loaded as the emulator loads an applied config.
func workerConfig(t *testing.T, patch func(string) string, options ...generate.Option) config.Provider {
	t.Helper()

	options = append([]generate.Option{generate.WithVersionContract(config.TalosVersion1_13)}, options...)

	input, err := generate.NewInput("demo", "https://127.0.1.10:6443", "1.36.3", options...)
	if err != nil {
		t.Fatal(err)
	}

	cfg, err := input.Config(machinetype.TypeWorker)
	if err != nil {
		t.Fatal(err)
	}

	raw, err := cfg.Bytes()
	if err != nil {
		t.Fatal(err)
	}

	text := string(raw)
	if patch != nil {
		text = patch(text)
	}

	loaded, err := configloader.NewFromBytes([]byte(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}

	return loaded
}
