# Two entry points for a fresh machine (see README):
#   make demo   set everything up and run the main job on the local testbed
#   make test   set everything up and run every test
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

CACHE    := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/solanaops-talos
# one virtualenv per content of the requirements files, shared by every clone on this machine
VENV     := $(CACHE)/venv/$(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-12)
PYTHON   := $(VENV)/bin/python
TALOSCTL_VERSION := $(shell sed -n 's/^TALOSCTL_VERSION=//p' testbed/versions.env)
TALOSCTL_DIR     := $(CACHE)/tools/talosctl/$(TALOSCTL_VERSION)
export PATH := $(VENV)/bin:$(TALOSCTL_DIR):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# Go builds (tools, the testbed's go test): a cold compile spends much of its time collecting
# garbage. A heap allowed to grow 5x between collections, under a soft cap per process
# (24 GiB here, two compiles at once), built the emulator cold in 180 s instead of 254-272 s.
# Only the builds: the tools the tests run (etcd, kube, talosctl) keep Go's defaults.
GO_BUILD_ENV := GOGC=$(or $(GOGC),400) GOMEMLIMIT=$(or $(GOMEMLIMIT),4GiB)

.PHONY: setup packages tools tools-first tools-rest demo demo-reset test lint sanity unit testbed testbed-go smoke integration \
        integration-machines integration-others molecule molecule-offline molecule-testbed bench clean

setup: packages $(VENV)/.installed .collections/ansible_collections/solanaops/talos tools

# Debian packages the tests run: fio (the storage benchmark's parsing is tested on its real output)
packages:
	@if command -v fio >/dev/null; then \
	  echo "==> fio present: $$(fio --version)"; \
	else \
	  echo "==> fio missing: apt-get install -y fio (apt-get update first when the package lists are empty)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y fio \
	    || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y fio; }; \
	fi

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@echo "==> Python toolchain in $(VENV)"
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# ansible finds the collection through ansible.cfg's collections_path
.collections/ansible_collections/solanaops/talos:
	mkdir -p $(@D)
	ln -sfn ../../.. $@

tools:
	@echo "==> talosctl and testbed tools (cached in $(CACHE)/tools)"
	$(GO_BUILD_ENV) python3 testbed/gobuild.py all

# make test's two halves of `tools` (testbed/gobuild.py first_chains, rest_chains)
tools-first:
	@echo "==> the testbed's tools (cached in $(CACHE)/tools)"
	$(GO_BUILD_ENV) python3 testbed/gobuild.py first

tools-rest:
	@echo "==> the older contracts' talosctl, the upgrade target's Kubernetes (niced)"
	$(GO_BUILD_ENV) nice -n 19 python3 testbed/gobuild.py rest

demo: setup
	$(PYTHON) testbed/demo.py
	@echo "==> generated, validated and applied (secrets are 0600):"
	@ls -l testbed/inventory/state/solana-local

demo-reset:
	rm -rf $(CACHE)/demo testbed/inventory/state/solana-local

# Two lanes side by side (tests/side_by_side.sh), in two phases. Phase one builds the tools the
# testbed's machines run (cold, the longest step) while lint, sanity and unit run; phase two runs
# every test that needs them: in the foreground what uses the testbed's machines at their fixed
# loopback addresses (127.0.1.x: one at a time, the longest lane), beside it first the other tools,
# niced so the machines' tests come first for the CPU (a test that needs one of them waits
# for its build: gobuild.py), then the emulator's smoke checks (their machines have
# addresses of their own) and the rest.
test: packages $(VENV)/.installed .collections/ansible_collections/solanaops/talos
	+./tests/side_by_side.sh "tools-first" "lint sanity unit"
	+./tests/side_by_side.sh "integration-machines molecule-testbed" "tools-rest smoke testbed-go integration-others molecule-offline"

lint:
	ruff check plugins tests testbed benchmarks
	ansible-lint --profile production

sanity:
	./tests/sanity/run.sh

unit:
	./tests/pytest.sh tests/unit

# the node emulator's and the Image Factory's Go tests (schematic IDs against testdata/ids.txt,
# its HTTP API and CLI); the harness' own pytest tests (the test control plane, the kubelet
# feature-gate table); then the emulator's end-to-end checks with the real talosctl (machines,
# v1.14 machines, upgrade-k8s), each on loopback addresses of its own (127.0.11.x, 127.0.9.x,
# 127.0.12.x), none the integration tests' 127.0.1.x
testbed: testbed-go smoke

testbed-go:
	cd testbed/imagefactory && $(GO_BUILD_ENV) GOFLAGS=-mod=mod GOSUMDB=off go test ./...
	cd testbed/emulator && $(GO_BUILD_ENV) GOFLAGS=-mod=mod GOSUMDB=off go test ./...
	./tests/pytest.sh testbed/tests

smoke:
	testbed/emulator/smoke_test.sh
	testbed/emulator/smoke_v114.sh
	testbed/emulator/smoke_upgrade_k8s.sh

# the tests of the testbed's machines (marked `testbed` by tests/integration/conftest.py: one at a
# time) and, beside them, the others; PYTEST_ARGS go to both (a -k matching one half's tests only
# leaves the other collecting none, a failure: give it to that half's target). --durations: where the time goes
integration:
	+./tests/side_by_side.sh integration-machines integration-others

integration-machines:
	./tests/pytest.sh tests/integration -m testbed --durations=25 $(PYTEST_ARGS)

integration-others:
	./tests/pytest.sh tests/integration -m "not testbed" --durations=25 $(PYTEST_ARGS)

# the collection's scenarios (extensions/molecule): offline pipeline, then the whole testbed
molecule: molecule-offline molecule-testbed

molecule-offline:
	molecule test -s offline

molecule-testbed:
	molecule test -s testbed

bench: setup
	$(PYTHON) benchmarks/generate.py
	$(PYTHON) benchmarks/controlplane.py
	$(PYTHON) benchmarks/site.py
	$(PYTHON) benchmarks/rerun.py 1 20
	$(PYTHON) benchmarks/upgrade.py

clean:
	rm -rf .collections out tests/output
