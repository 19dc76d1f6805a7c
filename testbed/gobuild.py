#!/usr/bin/env python3
"""Build the testbed's real tools from their Go modules, into a cache outside the clone.

Upstream modules such as talos, kubernetes and etcd cannot be `go install`ed: their go.mod
carries replace directives, some pointing at local paths. For each tool we write a small
wrapper module that requires the upstream module, repeats its non-local replace and exclude
directives, and swaps each local replace for the published module (same version, or the
staging version for Kubernetes). Binaries land in
``${XDG_CACHE_HOME:-~/.cache}/solanaops-talos/tools/<name>/<version>/`` so every clone on this
machine reuses them; the Go module and build caches stay in Go's own user-level defaults.

Usage:
    gobuild.py build NAME [VERSION]   build (if missing) and print the binary's path
    gobuild.py path NAME [VERSION]    print the binary's path, fail if it is not built
    gobuild.py all                    build every pinned tool
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSIONS_FILE = HERE / "versions.env"


@dataclasses.dataclass(frozen=True)
class Tool:
    module: str
    version_key: str
    # binary name -> main package import path
    binaries: dict[str, str]
    tags: str = ""
    ldflags: str = "-s -w"
    # tool version -> {module: replacement}: dependencies whose pinned version this machine's
    # module proxy does not serve, swapped for the nearest served one (verified by building)
    substitutes: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)


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
        },
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


def go(*args: str, cwd: Path, capture: bool = True) -> str:
    env = go_env()
    proc = subprocess.run(
        ["go", *args], cwd=cwd, env=env, text=True,
        stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE,
    )
    if proc.returncode != 0:
        # `go mod download -json` reports its error in the JSON on stdout
        detail = (proc.stderr or "") + (proc.stdout or "")
        sys.exit(f"go {' '.join(args)} failed in {cwd}:\n{detail[-4000:]}")
    return proc.stdout or ""


_REPLACE = re.compile(r"^\s*(?:replace\s+)?(\S+)(?:\s+(v\S+))?\s+=>\s+(\S+)(?:\s+(v\S+))?\s*$")
_EXCLUDE = re.compile(r"^\s*(?:exclude\s+)?(\S+)\s+(v\S+)\s*$")


def upstream_directives(gomod: str) -> tuple[list[tuple[str, str, str | None]], list[tuple[str, str]]]:
    """Return (replaces, excludes) of an upstream go.mod; a local replace has target './...'."""
    replaces, excludes, block = [], [], None
    for raw in gomod.splitlines():
        line = raw.split("//", 1)[0].rstrip()
        if not line.strip():
            continue
        if block and line.strip() == ")":
            block = None
            continue
        head = line.split()[0]
        if head in ("replace", "exclude") and line.rstrip().endswith("("):
            block = head
            continue
        kind = head if head in ("replace", "exclude") else block
        if kind == "replace" and (m := _REPLACE.match(line)):
            replaces.append((m.group(1), m.group(3), m.group(4)))
        elif kind == "exclude" and (m := _EXCLUDE.match(line)):
            excludes.append((m.group(1), m.group(2)))
    return replaces, excludes


def wrapper_gomod(tool: Tool, version: str, upstream: str) -> str:
    replaces, excludes = upstream_directives(upstream)
    substitutes = tool.substitutes.get(version, {})
    lines = ["module solanaops.testbed/" + tool.module.replace("/", "_"), "", "go 1.26", ""]
    lines.append(f"require {tool.module} {version}")
    for path, target, target_version in replaces:
        if target.startswith("."):
            # a sibling module of the same repository, published at the same version
            lines.append(f"require {path} {version}")
            lines.append(f"replace {path} => {path} {version}")
        elif path not in substitutes:
            lines.append(f"replace {path} => {target} {target_version}")
    for path, substitute in substitutes.items():
        target = substitute if " " in substitute else f"{path} {substitute}"
        lines.append(f"replace {path} => {target}")
    lines += [f"exclude {path} {v}" for path, v in excludes]
    return "\n".join(lines) + "\n"


def _heartbeat(label: str, proc: subprocess.Popen, started: float) -> None:
    """Print a line every 30 s with the count of packages compiled so far."""
    count = 0
    last = started
    for _line in proc.stderr:
        count += 1
        now = time.monotonic()
        if now - last >= 30:
            print(f"  {label}: {int(now - started)}s, {count} packages", flush=True)
            last = now


def build(name: str, version: str) -> Path:
    tool = TOOLS[name]
    target = binary_path(name, version)
    if target.exists():
        return target
    workdir = cache_root() / "build" / name / version
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"building {name} {version} from {tool.module} (cold builds take minutes)", flush=True)
    info = json.loads(go("mod", "download", "-json", f"{tool.module}@{version}", cwd=workdir))
    (workdir / "go.mod").write_text(wrapper_gomod(tool, version, Path(info["GoMod"]).read_text()))
    staging = target.parent / ".partial"
    staging.mkdir(parents=True, exist_ok=True)
    for binary, package in tool.binaries.items():
        args = ["go", "build", "-v", "-trimpath", "-o", str(staging / binary)]
        if tool.tags:
            args += ["-tags", tool.tags]
        args += ["-ldflags", tool.ldflags]
        env = go_env()
        proc = subprocess.Popen(args + [package], cwd=workdir, env=env, text=True,
                                stderr=subprocess.PIPE)
        reader = threading.Thread(target=_heartbeat, args=(f"{name} {version}", proc, started))
        reader.start()
        proc.wait()
        reader.join()
        if proc.returncode != 0:
            # rerun without -v: its stderr then holds only the compiler's error
            go("build", "-trimpath", "-o", str(staging / binary), package, cwd=workdir)
            sys.exit(f"building {name} {version} failed")
    for produced in staging.iterdir():
        produced.replace(target.parent / produced.name)
    staging.rmdir()
    print(f"built {name} {version} in {int(time.monotonic() - started)}s: {target}", flush=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["build", "path", "all"])
    parser.add_argument("name", nargs="?", choices=sorted(TOOLS))
    parser.add_argument("version", nargs="?")
    args = parser.parse_args()
    pins = pinned_versions()
    if args.action == "all":
        for name, tool in TOOLS.items():
            build(name, pins[tool.version_key])
        # the older contract's validator
        build("talosctl", pins["TALOSCTL_LEGACY_VERSION"])
        return
    if not args.name:
        parser.error("NAME is required")
    version = args.version or pins[TOOLS[args.name].version_key]
    if args.action == "build":
        print(build(args.name, version))
    else:
        path = binary_path(args.name, version)
        if not path.exists():
            sys.exit(f"{args.name} {version} is not built yet: run testbed/gobuild.py build {args.name} {version}")
        print(path)


if __name__ == "__main__":
    main()
