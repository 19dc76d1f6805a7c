// Command v113schema writes release/v113_schema.txt: for every config document kind Talos
// v1.13.9 registers (release.v113Kinds), the YAML keys its machinery accepts, read by
// reflection from the v1.13.9 document types with the rules of the strict decoding v1.13.9
// applies (github.com/siderolabs/gen/xyaml CheckUnknownKeys, v0.8.7): a struct accepts its
// visible fields' yaml names (the lowercased field name without a tag, none for "-"), an
// inline map makes it accept any key, a map accepts any key, sequences check each element.
//
// A separate module, because it needs machinery v1.13.9 while the emulator builds on v1.14.1:
//
//	cd testbed/emulator/release/v113schema && GOFLAGS=-mod=mod GOSUMDB=off go run . ../v113_schema.txt
//
// Each output line is "<kind> <path> <keys>": path is "." for the document, keys of nested
// structs follow their parent's path ("provisioning.diskSelector"), "[]" an element of a
// sequence, "*" a value of a map; keys "*" means any key.
package main

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
)

// kinds are the kinds of every registry.Register call under pkg/machinery/config/types of the
// v1.13.9 module, their constants resolved (network.DefaultActionConfig is
// "NetworkDefaultActionConfig"); "v1alpha1" is the machine config itself. A misspelt kind
// fails to load here.
var kinds = []string{
	"BlackholeRouteConfig", "BondConfig", "BridgeConfig", "DHCPv4Config", "DHCPv6Config",
	"DummyLinkConfig", "EnvironmentConfig", "EthernetConfig",
	"EventSinkConfig", "ExistingVolumeConfig", "ExtensionServiceConfig", "ExternalVolumeConfig",
	"HCloudVIPConfig", "HostnameConfig", "ImageVerificationConfig", "KmsgLogConfig",
	"KubeSpanConfig", "KubeSpanEndpointsConfig", "Layer2VIPConfig", "LinkAliasConfig",
	"LinkConfig", "NetworkDefaultActionConfig", "NetworkRuleConfig", "OOMConfig", "PCIDriverRebindConfig", "RawVolumeConfig",
	"RegistryAuthConfig", "RegistryMirrorConfig", "RegistryTLSConfig", "ResolverConfig",
	"RoutingRuleConfig", "SideroLinkConfig", "StaticHostConfig", "SwapVolumeConfig",
	"TCPProbeConfig", "TimeSyncConfig", "TrustedRootsConfig", "UserVolumeConfig", "VLANConfig",
	"VRFConfig", "VolumeConfig", "WatchdogTimerConfig", "WireguardConfig", "ZswapConfig",
	"v1alpha1",
}

func main() {
	var out strings.Builder

	for _, kind := range kinds {
		doc := "version: v1alpha1\ndebug: false\n"
		if kind != "v1alpha1" {
			doc = "apiVersion: v1alpha1\nkind: " + kind + "\n"
		}

		cfg, err := configloader.NewFromBytes([]byte(doc))
		if err != nil { // a named document
			cfg, err = configloader.NewFromBytes([]byte(doc + "name: x\n"))
		}

		if err != nil {
			fail(fmt.Errorf("%s: %w", kind, err))
		}

		docs := cfg.Documents()
		if len(docs) != 1 {
			fail(fmt.Errorf("%s: %d documents", kind, len(docs)))
		}

		walk(&out, kind, ".", reflect.TypeOf(docs[0]), map[reflect.Type]bool{})
	}

	if err := os.WriteFile(os.Args[1], []byte(out.String()), 0o644); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// walk writes the keys accepted at path for values of type typ, then those below.
func walk(out *strings.Builder, kind, path string, typ reflect.Type, seen map[reflect.Type]bool) {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}

	child := func(key string) string {
		if path == "." {
			return key
		}

		return path + "." + key
	}

	switch typ.Kind() { //nolint:exhaustive // scalars accept no keys
	case reflect.Slice:
		walk(out, kind, child("[]"), typ.Elem(), seen)
	case reflect.Map:
		fmt.Fprintf(out, "%s %s *\n", kind, path)
		walk(out, kind, child("*"), typ.Elem(), seen)
	case reflect.Struct:
		if seen[typ] { // recursive types: the keys are those already written for the type
			return
		}

		seen[typ] = true
		defer delete(seen, typ)

		keys, fields, inlineMap := structKeys(typ)
		if inlineMap {
			fmt.Fprintf(out, "%s %s *\n", kind, path)

			return
		}

		fmt.Fprintf(out, "%s %s %s\n", kind, path, strings.Join(keys, ","))

		for i, key := range keys {
			walk(out, kind, child(key), fields[i], seen)
		}
	}
}

// structKeys are the YAML keys a struct accepts with their types, sorted, and whether an
// inline map makes it accept any key.
func structKeys(typ reflect.Type) ([]string, []reflect.Type, bool) {
	types := map[string]reflect.Type{}

	for _, field := range reflect.VisibleFields(typ) {
		tag, ok := field.Tag.Lookup("yaml")
		if !ok || tag == "" {
			types[strings.ToLower(field.Name)] = field.Type

			continue
		}

		name, options, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}

		if slices.Contains(strings.Split(options, ","), "inline") && field.Type.Kind() == reflect.Map {
			return nil, nil, true
		}

		if name != "" {
			types[name] = field.Type
		}
	}

	keys := make([]string, 0, len(types))
	for k := range types {
		keys = append(keys, k)
	}

	slices.Sort(keys)

	fields := make([]reflect.Type, len(keys))
	for i, k := range keys {
		fields[i] = types[k]
	}

	return keys, fields, false
}
