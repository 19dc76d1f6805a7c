package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/siderolabs/image-factory/pkg/schematic"
)

// Flavours are the installer repositories the testbed factory answers for; the value says
// whether the flavour is the SecureBoot one.
var Flavours = map[string]bool{
	"metal-installer":            false,
	"metal-installer-secureboot": true,
}

// maxSchematicSize bounds a POSTed schematic.
const maxSchematicSize = 1 << 20

var (
	talosTag    = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$`)
	schematicID = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Store keeps registered schematics in memory and, in canonical form, as
// DIR/schematics/<id>.yaml, so a restarted factory still knows them.
type Store struct {
	dir  string
	mu   sync.RWMutex
	byID map[string]*schematic.Schematic
}

// OpenStore loads the schematics a previous run of the factory registered under stateDir.
func OpenStore(stateDir string) (*Store, error) {
	dir := filepath.Join(stateDir, "schematics")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}

	s := &Store{dir: dir, byID: map[string]*schematic.Schematic{}}

	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}

	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}

		cfg, err := schematic.Unmarshal(data)
		if err != nil {
			return nil, fmt.Errorf("state file %s: %w", path, err)
		}

		id, err := cfg.ID()
		if err != nil {
			return nil, fmt.Errorf("state file %s: %w", path, err)
		}

		if want := strings.TrimSuffix(filepath.Base(path), ".yaml"); id != want {
			return nil, fmt.Errorf("state file %s holds schematic %s, not %s", path, id, want)
		}

		s.byID[id] = cfg
	}

	return s, nil
}

// Put registers a parsed schematic and returns its ID; registering it again changes nothing.
func (s *Store) Put(cfg *schematic.Schematic) (string, error) {
	id, err := cfg.ID()
	if err != nil {
		return "", err
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	if _, known := s.byID[id]; known {
		return id, nil
	}

	canonical, err := cfg.Marshal()
	if err != nil {
		return "", err
	}

	// write then rename: a crash never leaves a half-written schematic behind
	tmp, err := os.CreateTemp(s.dir, ".incoming-*")
	if err != nil {
		return "", err
	}

	_, err = tmp.Write(canonical)
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}

	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(s.dir, id+".yaml"))
	}

	if err != nil {
		os.Remove(tmp.Name()) //nolint:errcheck

		return "", err
	}

	s.byID[id] = cfg

	return id, nil
}

// Get returns a registered schematic.
func (s *Store) Get(id string) (*schematic.Schematic, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()

	cfg, ok := s.byID[id]

	return cfg, ok
}

// Manifest is the testbed's stand-in for an installer image: what a machine installed from
// it would observe. The real factory serves an OCI manifest here and builds the image.
type Manifest struct {
	Schematic          string     `json:"schematic"`
	Flavour            string     `json:"flavour"`
	TalosVersion       string     `json:"talos_version"`
	SecureBoot         bool       `json:"secureboot"`
	ExtraKernelArgs    []string   `json:"extra_kernel_args"`
	OfficialExtensions []string   `json:"official_extensions"`
	Meta               []MetaItem `json:"meta"`
}

// MetaItem is one initial META value of the schematic.
type MetaItem struct {
	Key   uint8  `json:"key"`
	Value string `json:"value"`
}

// Handler serves the factory's HTTP API from store, logging each request to logger.
func Handler(store *Store, logger *log.Logger) http.Handler {
	mux := http.NewServeMux()

	mux.HandleFunc("POST /schematics", func(w http.ResponseWriter, r *http.Request) {
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSchematicSize))
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				http.Error(w, fmt.Sprintf("schematic larger than %d bytes", maxSchematicSize), http.StatusRequestEntityTooLarge)
			} else {
				http.Error(w, err.Error(), http.StatusBadRequest)
			}

			return
		}

		cfg, err := schematic.Unmarshal(data)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)

			return
		}

		id, err := store.Put(cfg)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)

			return
		}

		writeJSON(w, http.StatusCreated, map[string]string{"id": id})
	})

	mux.HandleFunc("GET /schematics/{id}", func(w http.ResponseWriter, r *http.Request) {
		cfg, ok := store.Get(r.PathValue("id"))
		if !ok {
			http.Error(w, fmt.Sprintf("schematic %s is not registered", r.PathValue("id")), http.StatusNotFound)

			return
		}

		canonical, err := cfg.Marshal()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)

			return
		}

		w.Header().Set("Content-Type", "application/yaml")
		w.Write(canonical) //nolint:errcheck
	})

	// the registry's version check, as clients ping it before a pull
	mux.HandleFunc("GET /v2/{$}", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, struct{}{})
	})

	// GET patterns also match HEAD; net/http drops the body of a HEAD answer
	mux.HandleFunc("GET /v2/{flavour}/{id}/manifests/{tag}", func(w http.ResponseWriter, r *http.Request) {
		flavour, id, tag := r.PathValue("flavour"), r.PathValue("id"), r.PathValue("tag")

		secureBoot, known := Flavours[flavour]
		if !known {
			registryError(w, http.StatusNotFound, "NAME_UNKNOWN",
				fmt.Sprintf("repository %s is not served: the testbed factory serves metal-installer and metal-installer-secureboot", flavour))

			return
		}

		if !talosTag.MatchString(tag) {
			registryError(w, http.StatusBadRequest, "TAG_INVALID",
				fmt.Sprintf("tag %q is not a Talos version vX.Y.Z", tag))

			return
		}

		var (
			cfg *schematic.Schematic
			ok  bool
		)

		if schematicID.MatchString(id) {
			cfg, ok = store.Get(id)
		}

		if !ok {
			registryError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", fmt.Sprintf("schematic %s is not registered", id))

			return
		}

		c := cfg.Customization
		manifest := Manifest{
			Schematic:          id,
			Flavour:            flavour,
			TalosVersion:       tag,
			SecureBoot:         secureBoot,
			ExtraKernelArgs:    append([]string{}, c.ExtraKernelArgs...),
			OfficialExtensions: append([]string{}, c.SystemExtensions.OfficialExtensions...),
			Meta:               []MetaItem{},
		}

		for _, m := range c.Meta {
			manifest.Meta = append(manifest.Meta, MetaItem{Key: m.Key, Value: m.Value})
		}

		writeJSON(w, http.StatusOK, manifest)
	})

	return logRequests(mux, logger)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)

		return
	}

	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)+1))
	w.WriteHeader(status)
	w.Write(append(body, '\n')) //nolint:errcheck
}

func registryError(w http.ResponseWriter, status int, code, message string) {
	type entry struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}

	writeJSON(w, status, struct {
		Errors []entry `json:"errors"`
	}{[]entry{{code, message}}})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func logRequests(next http.Handler, logger *log.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		logger.Printf("%s %s %s %d %s", r.RemoteAddr, r.Method, r.URL.RequestURI(), rec.status,
			time.Since(started).Round(time.Microsecond))
	})
}
