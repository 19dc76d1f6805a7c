package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/siderolabs/image-factory/pkg/schematic"
)

// go test -run TestFixtureIDs -update rewrites testdata/ids.txt from the fixtures.
var update = flag.Bool("update", false, "rewrite testdata/ids.txt with the IDs of testdata/*.yaml")

const emptyID = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"

// TestMain lets the tests run this test binary as the image-factory command itself.
func TestMain(m *testing.M) {
	if os.Getenv("IMAGE_FACTORY_RUN_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}

	os.Exit(m.Run())
}

// Known answers published by the Image Factory's own schematic tests (v0.9.0).
func TestKnownIDs(t *testing.T) {
	structs := map[string]struct {
		cfg schematic.Schematic
		id  string
	}{
		"empty": {schematic.Schematic{}, emptyID},
		"kernel args": {
			schematic.Schematic{Customization: schematic.Customization{ExtraKernelArgs: []string{"noapic", "nolapic"}}},
			"9cba8e32753f91a16c1837ab8abf356af021706ef284aef07380780177d9a06c",
		},
		"meta": {
			schematic.Schematic{Customization: schematic.Customization{Meta: []schematic.MetaValue{{Key: 10, Value: "foo"}}}},
			"d308a2a5ee2277bed5fbaa104fcbc8d59122abfa737df987a95b4ca763459a7f",
		},
		"secureboot": {
			schematic.Schematic{Customization: schematic.Customization{
				SecureBoot: schematic.SecureBootCustomization{IncludeWellKnownCertificates: true},
			}},
			"fa8e05f142a851d3ee568eb0a8e5841eaf6b0ebc8df9a63df16ac5ed2c04f3e6",
		},
	}

	for name, tc := range structs {
		id, err := tc.cfg.ID()
		if err != nil || id != tc.id {
			t.Errorf("%s: ID() = %q, %v; want %s", name, id, err, tc.id)
		}
	}

	texts := map[string]string{
		`{}`:                emptyID,
		`customization: {}`: emptyID,
		"customization:\n  extraKernelArgs: []\n":                                               emptyID,
		`{"customization": {"extraKernelArgs": ["noapic", "nolapic"], "systemExtensions": {}}}`: "9cba8e32753f91a16c1837ab8abf356af021706ef284aef07380780177d9a06c",
		`{"customization": {"meta": [{"key": 10, "value": "foo"}]}}`:                            "d308a2a5ee2277bed5fbaa104fcbc8d59122abfa737df987a95b4ca763459a7f",
		`{"overlay": {"name": "rpi_generic", "image": "siderolabs/sbc-raspberrypi"}}`:           "ee21ef4a5ef808a9b7484cc0dda0f25075021691c8c09a276591eedb638ea1f9",
		`{"customization":{"secureboot": {"includeWellKnownCertificates": true}}}`:              "fa8e05f142a851d3ee568eb0a8e5841eaf6b0ebc8df9a63df16ac5ed2c04f3e6",
	}

	for text, want := range texts {
		if id, err := SchematicID([]byte(text)); err != nil || id != want {
			t.Errorf("%s: ID = %q, %v; want %s", text, id, err, want)
		}
	}
}

// runCLI runs the command in-process.
func runCLI(stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errs bytes.Buffer

	code = run(args, strings.NewReader(stdin), &out, &errs)

	return code, out.String(), errs.String()
}

// TestFixtureIDs checks the `id` subcommand on every testdata/*.yaml against testdata/ids.txt,
// the table other tools (the collection's Python schematic IDs) are checked against.
func TestFixtureIDs(t *testing.T) {
	fixtures, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(fixtures) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}

	sort.Strings(fixtures)

	got := map[string]string{}

	var table strings.Builder

	for _, path := range fixtures {
		code, stdout, stderr := runCLI("", "id", path)
		if code != 0 {
			t.Fatalf("id %s: exit %d: %s", path, code, stderr)
		}

		name := filepath.Base(path)
		got[name] = strings.TrimSpace(stdout)
		fmt.Fprintf(&table, "%s %s\n", name, got[name])
	}

	if *update {
		if err := os.WriteFile("testdata/ids.txt", []byte(table.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	data, err := os.ReadFile("testdata/ids.txt")
	if err != nil {
		t.Fatal(err)
	}

	want := map[string]string{}

	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		fields := strings.Fields(line)
		if len(fields) != 2 || len(fields[1]) != 64 {
			t.Fatalf("testdata/ids.txt: malformed line %q", line)
		}

		want[fields[0]] = fields[1]
	}

	for name, id := range got {
		if want[name] == "" {
			t.Errorf("%s has no line in testdata/ids.txt (go test -run TestFixtureIDs -update)", name)
		} else if want[name] != id {
			t.Errorf("%s: id %s, testdata/ids.txt says %s", name, id, want[name])
		}
	}

	for name := range want {
		if _, ok := got[name]; !ok {
			t.Errorf("testdata/ids.txt names %s, which is not a fixture", name)
		}
	}

	if want["empty.yaml"] != emptyID {
		t.Errorf("empty.yaml must have the published empty schematic ID, table says %s", want["empty.yaml"])
	}
}

func TestIDCommand(t *testing.T) {
	code, stdout, stderr := runCLI("customization: {}\n", "id")
	if code != 0 || stdout != emptyID+"\n" {
		t.Errorf("id from stdin: exit %d, %q, %q", code, stdout, stderr)
	}

	// the factory refuses unknown fields
	code, stdout, stderr = runCLI("customization:\n  extraKernelArg: [a]\n", "id")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "field extraKernelArg not found") {
		t.Errorf("unknown field: exit %d, %q, %q", code, stdout, stderr)
	}

	code, _, stderr = runCLI("customization: [\n", "id", "-")
	if code != 1 || stderr == "" {
		t.Errorf("broken YAML: exit %d, %q", code, stderr)
	}

	code, _, stderr = runCLI("", "id", "testdata/does-not-exist.yaml")
	if code != 1 || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing file: exit %d, %q", code, stderr)
	}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func request(t *testing.T, method, url, body string) answer {
	t.Helper()

	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}

	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()

	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}

	return answer{resp.StatusCode, resp.Header, string(data)}
}

func newTestServer(t *testing.T, state string) *httptest.Server {
	t.Helper()

	store, err := OpenStore(state)
	if err != nil {
		t.Fatal(err)
	}

	server := httptest.NewServer(Handler(store, log.New(io.Discard, "", 0)))
	t.Cleanup(server.Close)

	return server
}

func fixture(t *testing.T, name string) string {
	t.Helper()

	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}

	return string(data)
}

func register(t *testing.T, base, body string) string {
	t.Helper()

	a := request(t, http.MethodPost, base+"/schematics", body)

	var reply struct {
		ID string `json:"id"`
	}

	if a.status != http.StatusCreated || a.header.Get("Content-Type") != "application/json" ||
		json.Unmarshal([]byte(a.body), &reply) != nil {
		t.Fatalf("POST /schematics: %d %s %q", a.status, a.header.Get("Content-Type"), a.body)
	}

	return reply.ID
}

func TestAPI(t *testing.T) {
	state := t.TempDir()
	base := newTestServer(t, state).URL

	both := fixture(t, "kernel-args-extensions.yaml")

	want, err := SchematicID([]byte(both))
	if err != nil {
		t.Fatal(err)
	}

	// registering is idempotent: same answer the second time
	for range 2 {
		if id := register(t, base, both); id != want {
			t.Fatalf("registered as %s, want %s", id, want)
		}
	}

	if id := register(t, base, "customization: {}\n"); id != emptyID {
		t.Errorf("empty schematic registered as %s", id)
	}

	if _, err := os.Stat(filepath.Join(state, "schematics", want+".yaml")); err != nil {
		t.Errorf("not persisted: %v", err)
	}

	// invalid schematics: 400 with the package's error
	for body, text := range map[string]string{
		"customization:\n  extraKernelArg: [a]\n": "field extraKernelArg not found",
		"customization: [\n":                      "yaml",
		"":                                        "EOF",
	} {
		if a := request(t, http.MethodPost, base+"/schematics", body); a.status != http.StatusBadRequest || !strings.Contains(a.body, text) {
			t.Errorf("POST %q: %d %q, want 400 containing %q", body, a.status, a.body, text)
		}
	}

	// the canonical form reads back to the same ID
	a := request(t, http.MethodGet, base+"/schematics/"+want, "")
	if a.status != http.StatusOK {
		t.Fatalf("GET schematic: %d %q", a.status, a.body)
	}

	if id, err := SchematicID([]byte(a.body)); err != nil || id != want || !strings.Contains(a.body, "amd_pstate=active") {
		t.Errorf("GET schematic: %q has ID %s (%v)", a.body, id, err)
	}

	if a := request(t, http.MethodGet, base+"/schematics/"+strings.Repeat("0", 64), ""); a.status != http.StatusNotFound {
		t.Errorf("GET unknown schematic: %d", a.status)
	}

	if a := request(t, http.MethodGet, base+"/v2/", ""); a.status != http.StatusOK {
		t.Errorf("GET /v2/: %d", a.status)
	}

	// installer pulls
	for flavour, secureBoot := range Flavours {
		a := request(t, http.MethodGet, base+"/v2/"+flavour+"/"+want+"/manifests/v1.13.9", "")
		if a.status != http.StatusOK || a.header.Get("Content-Type") != "application/json" {
			t.Fatalf("manifest %s: %d %q", flavour, a.status, a.body)
		}

		var m Manifest
		if err := json.Unmarshal([]byte(a.body), &m); err != nil {
			t.Fatal(err)
		}

		if m.Schematic != want || m.Flavour != flavour || m.TalosVersion != "v1.13.9" || m.SecureBoot != secureBoot ||
			len(m.ExtraKernelArgs) != 8 || m.ExtraKernelArgs[7] != "numa_balancing=disable" ||
			strings.Join(m.OfficialExtensions, ",") != "siderolabs/amd-ucode,siderolabs/intel-ucode" ||
			m.Meta == nil || len(m.Meta) != 0 {
			t.Errorf("manifest %s: %+v", flavour, m)
		}

		if !strings.Contains(a.body, `"meta":[]`) {
			t.Errorf("empty meta must be [], not null: %s", a.body)
		}
	}

	// empty lists are [], never null
	a = request(t, http.MethodGet, base+"/v2/metal-installer/"+emptyID+"/manifests/v1.10.6", "")
	for _, field := range []string{`"extra_kernel_args":[]`, `"official_extensions":[]`, `"meta":[]`, `"secureboot":false`} {
		if a.status != http.StatusOK || !strings.Contains(a.body, field) {
			t.Errorf("empty schematic's manifest: %d %s lacks %s", a.status, a.body, field)
		}
	}

	// meta values pass through
	metaID := register(t, base, fixture(t, "meta-secureboot.yaml"))

	var m Manifest

	a = request(t, http.MethodGet, base+"/v2/metal-installer-secureboot/"+metaID+"/manifests/v1.13.9", "")
	if err := json.Unmarshal([]byte(a.body), &m); err != nil || len(m.Meta) != 2 || m.Meta[0].Key != 10 ||
		!strings.Contains(m.Meta[0].Value, "linkName: eth0") || m.Meta[1] != (MetaItem{12, "single line"}) || !m.SecureBoot {
		t.Errorf("meta manifest: %v %s", err, a.body)
	}

	unknown := strings.Repeat("ab", 32)
	failures := []struct {
		path, code string
		status     int
	}{
		{"/v2/metal-installer/" + unknown + "/manifests/v1.13.9", "MANIFEST_UNKNOWN", http.StatusNotFound},
		{"/v2/metal-installer/not-an-id/manifests/v1.13.9", "MANIFEST_UNKNOWN", http.StatusNotFound},
		{"/v2/installer/" + want + "/manifests/v1.13.9", "NAME_UNKNOWN", http.StatusNotFound},
		{"/v2/metal-installer/" + want + "/manifests/latest", "TAG_INVALID", http.StatusBadRequest},
		{"/v2/metal-installer/" + want + "/manifests/1.13.9", "TAG_INVALID", http.StatusBadRequest},
		{"/v2/metal-installer/" + want + "/manifests/v1.13", "TAG_INVALID", http.StatusBadRequest},
	}

	for _, f := range failures {
		a := request(t, http.MethodGet, base+f.path, "")

		var reply struct {
			Errors []struct{ Code, Message string } `json:"errors"`
		}

		if a.status != f.status || json.Unmarshal([]byte(a.body), &reply) != nil || len(reply.Errors) != 1 ||
			reply.Errors[0].Code != f.code {
			t.Errorf("GET %s: %d %q, want %d %s", f.path, a.status, a.body, f.status, f.code)
		}

		if head := request(t, http.MethodHead, base+f.path, ""); head.status != f.status || head.body != "" {
			t.Errorf("HEAD %s: %d %q, want %d without a body", f.path, head.status, head.body, f.status)
		}
	}

	a = request(t, http.MethodGet, base+"/v2/metal-installer/"+unknown+"/manifests/v1.13.9", "")
	if want := `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"schematic ` + unknown + ` is not registered"}]}`; strings.TrimSpace(a.body) != want {
		t.Errorf("unknown schematic: %s, want %s", a.body, want)
	}

	if head := request(t, http.MethodHead, base+"/v2/metal-installer/"+want+"/manifests/v1.13.9", ""); head.status != http.StatusOK || head.body != "" {
		t.Errorf("HEAD manifest: %d %q", head.status, head.body)
	}

	if a := request(t, http.MethodDelete, base+"/schematics/"+want, ""); a.status != http.StatusMethodNotAllowed {
		t.Errorf("DELETE: %d", a.status)
	}

	// a restarted factory knows what the previous one registered
	restarted := newTestServer(t, state).URL
	if a := request(t, http.MethodGet, restarted+"/v2/metal-installer/"+want+"/manifests/v1.13.9", ""); a.status != http.StatusOK {
		t.Errorf("after restart: %d %q", a.status, a.body)
	}

	if a := request(t, http.MethodGet, restarted+"/schematics/"+metaID, ""); a.status != http.StatusOK {
		t.Errorf("after restart: %d %q", a.status, a.body)
	}
}

func TestStoreRefusesCorruptState(t *testing.T) {
	state := t.TempDir()
	if err := os.MkdirAll(filepath.Join(state, "schematics"), 0o755); err != nil {
		t.Fatal(err)
	}

	wrong := filepath.Join(state, "schematics", strings.Repeat("0", 64)+".yaml")
	if err := os.WriteFile(wrong, []byte("customization: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	if _, err := OpenStore(state); err == nil || !strings.Contains(err.Error(), emptyID) {
		t.Errorf("a state file under the wrong name: %v", err)
	}
}

// factoryProcess runs this test binary as `image-factory ARGS...`.
func factoryProcess(t *testing.T, args ...string) (*exec.Cmd, *bufio.Reader, *bytes.Buffer) {
	t.Helper()

	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "IMAGE_FACTORY_RUN_MAIN=1")

	var stderr bytes.Buffer

	cmd.Stderr = &stderr

	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}

	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill() //nolint:errcheck
			cmd.Wait()         //nolint:errcheck
		}
	})

	return cmd, bufio.NewReader(stdout), &stderr
}

// ready reads the "ready: http://ADDR" line and returns the URL.
func ready(t *testing.T, cmd *exec.Cmd, stdout *bufio.Reader, stderr *bytes.Buffer) string {
	t.Helper()

	line := make(chan string, 1)

	go func() {
		text, _ := stdout.ReadString('\n')
		line <- text
	}()

	select {
	case text := <-line:
		url, ok := strings.CutPrefix(strings.TrimSpace(text), "ready: ")
		if !ok {
			cmd.Wait() //nolint:errcheck
			t.Fatalf("no ready line: %q, stderr %s", text, stderr)
		}

		return url
	case <-time.After(30 * time.Second):
		t.Fatalf("not ready after 30s: %s", stderr)
	}

	return ""
}

func TestServeCommand(t *testing.T) {
	state := t.TempDir()

	// refused before anything listens
	for _, listen := range []string{"0.0.0.0:0", ":0", "10.0.1.5:5000", "localhost:0", "[::]:0"} {
		cmd, _, stderr := factoryProcess(t, "serve", "--listen", listen, "--state", state)
		if err := cmd.Wait(); cmd.ProcessState.ExitCode() != 1 || !strings.Contains(stderr.String(), "loopback") {
			t.Errorf("--listen %s: %v, %s", listen, err, stderr)
		}
	}

	cmd, stdout, stderr := factoryProcess(t, "serve", "--listen", "127.0.0.1:0", "--state", state)
	url := ready(t, cmd, stdout, stderr)
	id := register(t, url, fixture(t, "numa-hugepages.yaml"))

	// a second factory on the same address fails clearly
	addr := strings.TrimPrefix(url, "http://")
	busy, _, busyErr := factoryProcess(t, "serve", "--listen", addr, "--state", t.TempDir())
	if busy.Wait(); busy.ProcessState.ExitCode() != 1 || !strings.Contains(busyErr.String(), "address already in use") {
		t.Errorf("busy address: exit %d, %s", busy.ProcessState.ExitCode(), busyErr)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	if err := cmd.Wait(); err != nil {
		t.Fatalf("SIGTERM: %v, %s", err, stderr)
	}

	if !strings.Contains(stderr.String(), "POST /schematics 201") {
		t.Errorf("requests are not logged: %s", stderr)
	}

	// restart on the same state: the schematic is still registered
	cmd, stdout, stderr = factoryProcess(t, "serve", "--listen", "127.0.0.1:0", "--state", state)
	url = ready(t, cmd, stdout, stderr)

	a := request(t, http.MethodGet, url+"/v2/metal-installer/"+id+"/manifests/v1.13.9", "")
	if a.status != http.StatusOK || !strings.Contains(a.body, `"hugepages=0:16,1:16"`) {
		t.Errorf("after restart: %d %s", a.status, a.body)
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}

	if err := cmd.Wait(); err != nil {
		t.Errorf("SIGINT: %v, %s", err, stderr)
	}
}
