#!/usr/bin/env python3
"""Build the testbed's real tools from their Go modules, into a cache outside the clone.

Upstream modules such as talos, kubernetes and etcd cannot be `go install`ed: their go.mod
carries replace directives, some pointing at local paths. For each tool we write a small
wrapper module that requires the upstream module, repeats its non-local replace and exclude
directives, and swaps each local replace for the published module (same version, or the
staging version for Kubernetes). Binaries land in
``${XDG_CACHE_HOME:-~/.cache}/solanaops-talos/tools/<name>/<version>/`` so every clone on this
machine reuses them; the Go module and build caches stay in Go's own user-level defaults.

Modules of our own (the Talos node emulator in testbed/emulator, the Image Factory in
testbed/imagefactory) are built in place; their version is a short sha256 of their sources
(go.mod, go.sum, *.go), so the cache is keyed by content and any edit builds a new binary. An
upstream module such a module requires at a version pinned in versions.env must be required at
exactly that version, or the build is refused.

Usage:
    gobuild.py build NAME [VERSION]   build (if missing) and print the binary's path
    gobuild.py path NAME [VERSION]    print the binary's path, fail if it is not built
    gobuild.py all                    build every pinned tool and our own modules
    gobuild.py first                  only what the testbed's machines and the default contract run
    gobuild.py rest                   the others: the older contracts' talosctl, the upgrade target's
                                      Kubernetes (make test builds them beside the first tests)

Two processes that build the same tool at once take turns: the second waits for the first's
binary (a lock file beside it), so a test may ask for a tool a build beside it is still making.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSIONS_FILE = HERE / "versions.env"


@dataclasses.dataclass(frozen=True)
class Tool:
    module: str
    version_key: str
    # binary name -> main package: an import path, or "./dir" for a main of ours in testbed/dir
    binaries: dict[str, str]
    tags: str = ""
    # version -> -ldflags
    ldflags: Callable[[str], str] = lambda _version: "-s -w"
    # version -> the version of sibling modules the upstream go.mod replaces with local paths
    sibling_version: Callable[[str], str] = lambda version: version
    # tool version -> {module: replacement}: dependencies whose pinned version this machine's
    # module proxy does not serve, swapped for the nearest served one (verified by building)
    substitutes: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    # a Go module of ours in testbed/<source>, built in place; its version is source_version()
    source: str = ""
    # module the source's go.mod requires -> the versions.env key pinning its version
    pinned_requires: dict[str, str] = dataclasses.field(default_factory=dict)


def _kubernetes_ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    pkg = "k8s.io/component-base/version"
    return (f"-s -w -X {pkg}.gitVersion={version} -X {pkg}.gitMajor={major} -X {pkg}.gitMinor={minor} "
            f"-X {pkg}.gitTreeState=clean")


TOOLS: dict[str, Tool] = {
    "talosctl": Tool(
        module="github.com/siderolabs/talos",
        version_key="TALOSCTL_VERSION",
        binaries={"talosctl": "github.com/siderolabs/talos/cmd/talosctl"},
        tags="grpcnotrace",
        substitutes={
            "v1.13.9": {
                "github.com/siderolabs/go-kubernetes": "v0.2.37",
                "go.etcd.io/etcd/etcdutl/v3": "v3.6.14",
                # a fork that only helps dead-code elimination in machined, not in talosctl
                "github.com/containerd/containerd/v2": "github.com/containerd/containerd/v2 v2.2.9",
            },
            "v1.14.1": {
                "github.com/cosi-project/runtime": "v1.16.2",
                "github.com/jsimonetti/rtnetlink/v2": "v2.3.0",
                # upstream's fork adds APIs machined uses; talosctl builds with the original
                "github.com/mdlayher/ethtool": "github.com/mdlayher/ethtool v0.6.1",
            },
        },
    ),
    "etcd": Tool(
        module="go.etcd.io/etcd/server/v3",
        version_key="ETCD_VERSION",
        binaries={"etcd": "go.etcd.io/etcd/server/v3"},
    ),
    # the upgrade playbook proves each etcd snapshot restorable with it (roles/talos_upgrade)
    "etcdutl": Tool(
        module="go.etcd.io/etcd/etcdutl/v3",
        version_key="ETCD_VERSION",
        binaries={"etcdutl": "go.etcd.io/etcd/etcdutl/v3"},
    ),
    "kube": Tool(
        module="k8s.io/kubernetes",
        version_key="KUBERNETES_VERSION",
        binaries={"kube": "./kube"},
        ldflags=_kubernetes_ldflags,
        # k8s.io/kubernetes v1.36.3 publishes its staging modules (k8s.io/api, ...) as v0.36.3
        sibling_version=lambda version: "v0." + version.split(".", 1)[1],
    ),
    # the feature gates a kubelet of the pinned Kubernetes accepts, for the collection's table
    "kubelet-feature-gates": Tool(
        module="k8s.io/kubernetes",
        version_key="KUBERNETES_VERSION",
        binaries={"kubelet-feature-gates": "./kubelet-feature-gates"},
        sibling_version=lambda version: "v0." + version.split(".", 1)[1],
    ),
    "kwok": Tool(
        module="sigs.k8s.io/kwok",
        version_key="KWOK_VERSION",
        binaries={"kwok": "sigs.k8s.io/kwok/cmd/kwok"},
    ),
    "talos-emulator": Tool(
        module="solanaops.testbed/emulator",
        version_key="",
        binaries={"talos-emulator": "."},
        source="emulator",
    ),
    # schematic IDs from the Image Factory's own package (testbed/imagefactory/README.md)
    "image-factory": Tool(
        module="solanaops.testbed/imagefactory",
        version_key="",
        binaries={"image-factory": "."},
        source="imagefactory",
        pinned_requires={"github.com/siderolabs/image-factory": "IMAGE_FACTORY_VERSION"},
    ),
}


def pinned_versions() -> dict[str, str]:
    pins = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pins[key.strip()] = value.strip()
    return pins


def source_version(tool: Tool) -> str:
    """A module of ours is versioned by its content: sha256 over its go.mod, go.sum and *.go."""
    root = HERE / tool.source
    digest = hashlib.sha256()
    files = [root / "go.mod", root / "go.sum", *root.rglob("*.go")]
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return "src-" + digest.hexdigest()[:12]


def default_version(name: str, pins: dict[str, str]) -> str:
    tool = TOOLS[name]
    return source_version(tool) if tool.source else pins[tool.version_key]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "solanaops-talos"


def binary_path(name: str, version: str) -> Path:
    return cache_root() / "tools" / name / version / next(iter(TOOLS[name].binaries))


def go_env() -> dict[str, str]:
    # This machine's module mirror answers checksum-database lookups for only part of the
    # modules (404 for the rest), so verification is off; the wrapper's go.sum still records
    # every hash on first download and later builds check against it.
    return dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod", GOWORK="off", GOSUMDB="off")


def go(*args: str, cwd: Path) -> str:
    env = go_env()
    proc = subprocess.run(["go", *args], cwd=cwd, env=env, text=True, capture_output=True)
    if proc.returncode != 0:
        # `go mod download -json` reports its error in the JSON on stdout
        detail = (proc.stderr or "") + (proc.stdout or "")
        sys.exit(f"go {' '.join(args)} failed in {cwd}:\n{detail[-4000:]}")
    return proc.stdout or ""


_REQUIRE = re.compile(r"^\s*(?:require\s+)?(\S+)\s+(v\S+)\s*$")
_REPLACE = re.compile(r"^\s*(?:replace\s+)?(\S+)(?:\s+(v\S+))?\s+=>\s+(\S+)(?:\s+(v\S+))?\s*$")
_EXCLUDE = re.compile(r"^\s*(?:exclude\s+)?(\S+)\s+(v\S+)\s*$")


def upstream_directives(gomod: str) -> tuple[dict[str, str], list[tuple[str, str, str | None]], list[tuple[str, str]]]:
    """Return (requires: path -> version, replaces, excludes) of a go.mod; a local replace
    targets './...'."""
    requires, replaces, excludes, block = {}, [], [], None
    for raw in gomod.splitlines():
        line = raw.split("//", 1)[0].rstrip()
        if not line.strip():
            continue
        if block and line.strip() == ")":
            block = None
            continue
        head = line.split()[0]
        if head in ("require", "replace", "exclude") and line.rstrip().endswith("("):
            block = head
            continue
        kind = head if head in ("require", "replace", "exclude") else block
        if kind == "require" and (m := _REQUIRE.match(line)):
            requires[m.group(1)] = m.group(2)
        elif kind == "replace" and (m := _REPLACE.match(line)):
            replaces.append((m.group(1), m.group(3), m.group(4)))
        elif kind == "exclude" and (m := _EXCLUDE.match(line)):
            excludes.append((m.group(1), m.group(2)))
    return requires, replaces, excludes


def check_pinned_requires(tool: Tool, pins: dict[str, str]) -> None:
    """Refuse to build a module of ours whose go.mod requires a pinned module at another version
    than versions.env names: versions.env is the one place for the testbed's Go pins."""
    gomod = HERE / tool.source / "go.mod"
    requires, replaces, _excludes = upstream_directives(gomod.read_text())
    for module, key in tool.pinned_requires.items():
        if any(replaced == module for replaced, *_rest in replaces):
            sys.exit(f"testbed/{tool.source}/go.mod replaces {module}, which {VERSIONS_FILE.name} pins as {key}: "
                     "remove the replace")
        if key not in pins:
            sys.exit(f"{VERSIONS_FILE} does not pin {key} ({module}, required by testbed/{tool.source})")
        required = requires.get(module)
        if required != pins[key]:
            found = f"requires {module} {required}" if required else f"does not require {module}"
            sys.exit(f"testbed/{tool.source}/go.mod {found}, but {VERSIONS_FILE.name} pins "
                     f"{key}={pins[key]}: make them agree (edit go.mod, then `go mod tidy` there), "
                     "then build again")


def wrapper_gomod(tool: Tool, version: str, upstream: str) -> str:
    requires, replaces, excludes = upstream_directives(upstream)
    substitutes = tool.substitutes.get(version, {})
    siblings = tool.sibling_version(version)
    lines = ["module solanaops.testbed/" + tool.module.replace("/", "_"), "", "go 1.26", ""]
    lines.append(f"require {tool.module} {version}")
    for path, target, target_version in replaces:
        if target.startswith("."):
            # a sibling module of the same repository: use its published release. Local
            # replaces of modules upstream does not require (etcd's FORBIDDEN_DEPENDENCY
            # guards) are dropped.
            if path in requires:
                lines.append(f"require {path} {siblings}")
                lines.append(f"replace {path} => {path} {siblings}")
        elif path not in substitutes:
            lines.append(f"replace {path} => {target} {target_version}")
    for path, substitute in substitutes.items():
        target = substitute if " " in substitute else f"{path} {substitute}"
        lines.append(f"replace {path} => {target}")
    lines += [f"exclude {path} {v}" for path, v in excludes]
    return "\n".join(lines) + "\n"


class Progress:
    """Counts the packages `go build -v` reports and prints a line every 30 s, output or not
    (linking a large binary prints nothing for minutes)."""

    def __init__(self, label: str, stream):
        self.label, self.count, self.started = label, 0, time.monotonic()
        self.done = threading.Event()
        self.reader = threading.Thread(target=self._read, args=(stream,))
        self.ticker = threading.Thread(target=self._tick)

    def __enter__(self):
        self.reader.start()
        self.ticker.start()
        return self

    def __exit__(self, *_exc):
        self.reader.join()
        self.done.set()
        self.ticker.join()

    def _read(self, stream) -> None:
        for _line in stream:
            self.count += 1

    def _tick(self) -> None:
        while not self.done.wait(30):
            print(f"  {self.label}: {int(time.monotonic() - self.started)}s, {self.count} packages", flush=True)


@contextlib.contextmanager
def building(name: str, version: str):
    """Held while NAME VERSION is built: another process building it waits here (printing a
    line every 30 s), then finds its binary."""
    lock_file = cache_root() / "tools" / name / f"{version}.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as lock:
        started = time.monotonic()
        next_line = started + 30
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= next_line:
                    print(f"  {name} {version}: another process builds it, waited "
                          f"{int(time.monotonic() - started)}s", flush=True)
                    next_line += 30
                time.sleep(1)
        yield


def build(name: str, version: str) -> Path:
    tool = TOOLS[name]
    target = binary_path(name, version)
    if tool.source:
        # versions.env stays the one place of the pin, whatever the cache already holds
        check_pinned_requires(tool, pinned_versions())
    if target.exists():
        return target
    with building(name, version):
        # built by the process this one waited for (or, if that one failed, built here)
        return target if target.exists() else _build(name, version, tool, target)


def _build(name: str, version: str, tool: Tool, target: Path) -> Path:
    started = time.monotonic()
    if tool.source:
        # ours: built in place, and only the current sources (the version names their content)
        workdir = HERE / tool.source
        if version != source_version(tool):
            sys.exit(f"{name} {version} is not the current source of testbed/{tool.source} "
                     f"({source_version(tool)}); only that one can be built")
        print(f"building {name} {version} from testbed/{tool.source} (cold builds take minutes)", flush=True)
    else:
        workdir = cache_root() / "build" / name / version
        workdir.mkdir(parents=True, exist_ok=True)
        print(f"building {name} {version} from {tool.module} (cold builds take minutes)", flush=True)
        info = json.loads(go("mod", "download", "-json", f"{tool.module}@{version}", cwd=workdir))
        (workdir / "go.mod").write_text(wrapper_gomod(tool, version, Path(info["GoMod"]).read_text()))
        for package in tool.binaries.values():
            if package.startswith("./"):
                shutil.copytree(HERE / package[2:], workdir / package[2:], dirs_exist_ok=True)
    staging = target.parent / ".partial"
    staging.mkdir(parents=True, exist_ok=True)
    for binary, package in tool.binaries.items():
        # no DWARF from the compiler: -s -w drops it at link anyway (talosctl v1.10.6 cold: 6 % less
        # CPU, 19 % less peak memory, the same binary size)
        args = ["go", "build", "-v", "-trimpath", "-gcflags=all=-dwarf=false", "-o", str(staging / binary)]
        if tool.tags:
            args += ["-tags", tool.tags]
        args += ["-ldflags", tool.ldflags(version)]
        env = go_env()
        proc = subprocess.Popen(args + [package], cwd=workdir, env=env, text=True,
                                stderr=subprocess.PIPE)
        with Progress(f"{name} {version}", proc.stderr):
            proc.wait()
        if proc.returncode != 0:
            # rerun without -v: its stderr then holds only the compiler's error
            go("build", "-trimpath", "-o", str(staging / binary), package, cwd=workdir)
            sys.exit(f"building {name} {version} failed")
    for produced in staging.iterdir():
        produced.replace(target.parent / produced.name)
    staging.rmdir()
    print(f"built {name} {version} in {int(time.monotonic() - started)}s: {target}", flush=True)
    return target


def first_chains(pins: dict[str, str]) -> list[list[tuple[str, str]]]:
    """What the testbed's machines and the default contract run: every test of the machines needs
    these before it starts."""
    return [
        [("kube", pins["KUBERNETES_VERSION"]), ("kubelet-feature-gates", pins["KUBERNETES_VERSION"])],
        [("talosctl", pins["TALOSCTL_VERSION"])],
        [("etcd", pins["ETCD_VERSION"]), ("etcdutl", pins["ETCD_VERSION"])],
        [("kwok", pins["KWOK_VERSION"])],
        [("image-factory", default_version("image-factory", pins))],
        [("talos-emulator", default_version("talos-emulator", pins))],
    ]


def rest_chains(pins: dict[str, str]) -> list[list[tuple[str, str]]]:
    """What only some tests run, first what the machines' tests need soonest."""
    return [
        # the previous contract, the release upgrades start from
        [("talosctl", pins["TALOSCTL_PREVIOUS_VERSION"])],
        # the Kubernetes the emulated control planes are upgraded to
        [("kube", pins["KUBERNETES_UPGRADE_VERSION"])],
        # the older contract's validator
        [("talosctl", pins["TALOSCTL_LEGACY_VERSION"])],
    ]


def build_all(pins: dict[str, str], which: str = "all") -> None:
    """The tools (all, first or rest), two builds at a time: one compiles while the other
    downloads its modules or links (a cold build alone leaves a core idle for minutes). Builds
    that share a module version run one after the other, so the second finds the first's
    packages in the build cache."""
    # all: the long builds (the two Kubernetes, the three talosctl) first, the short ones fill in
    chains = {"all": first_chains(pins)[:2] + rest_chains(pins) + first_chains(pins)[2:],
              "first": first_chains(pins), "rest": rest_chains(pins)}[which]
    every = first_chains(pins) + rest_chains(pins)
    missing = {name for name in TOOLS} - {name for chain in every for name, _version in chain}
    if missing:
        sys.exit(f"gobuild.py all does not build {sorted(missing)}: add them to first_chains or rest_chains")
    failed = threading.Event()

    def run(chain):
        # after a failure no build starts (the one still compiling finishes); its error is the exit
        for tool in chain:
            if failed.is_set():
                return
            try:
                build(*tool)
            except BaseException:
                failed.set()
                raise

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(run, chain) for chain in chains]:
            future.result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["build", "path", "all", "first", "rest"])
    parser.add_argument("name", nargs="?", choices=sorted(TOOLS))
    parser.add_argument("version", nargs="?")
    args = parser.parse_args()
    pins = pinned_versions()
    if args.action in ("all", "first", "rest"):
        build_all(pins, args.action)
        return
    if not args.name:
        parser.error("NAME is required")
    version = args.version or default_version(args.name, pins)
    if args.action == "build":
        print(build(args.name, version))
    else:
        path = binary_path(args.name, version)
        if not path.exists():
            sys.exit(f"{args.name} {version} is not built yet: run testbed/gobuild.py build {args.name} {version}")
        print(path)


if __name__ == "__main__":
    main()
