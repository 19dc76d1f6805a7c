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
import shutil
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
    # binary name -> package path inside the wrapper build (a full import path, or a
    # directory of ours under testbed/ holding a main package, prefixed with "./")
    binaries: dict[str, str]
    tags: str = ""
    # version string given to locally replaced sibling modules; None = the tool's version
    local_version: callable | None = None
    ldflags: callable | None = None
    # module -> version: dependencies whose pinned version this machine's module proxy does
    # not serve, swapped for the nearest served one (each verified by building)
    substitutes: dict[str, str] = dataclasses.field(default_factory=dict)


def _kubernetes_staging_version(version: str) -> str:
    # k8s.io/kubernetes v1.36.3 publishes its staging modules as v0.36.3
    return "v0." + version.split(".", 1)[1]


def _kubernetes_ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    pkg = "k8s.io/component-base/version"
    return (
        f"-s -w -X {pkg}.gitVersion={version} -X {pkg}.gitMajor={major} "
        f"-X {pkg}.gitMinor={minor} -X {pkg}.gitTreeState=clean"
    )


TOOLS: dict[str, Tool] = {
    "talosctl": Tool(
        module="github.com/siderolabs/talos",
        version_key="TALOSCTL_VERSION",
        binaries={"talosctl": "github.com/siderolabs/talos/cmd/talosctl"},
        tags="grpcnotrace",
        ldflags=lambda _v: "-s -w",
        substitutes={
            "github.com/siderolabs/go-kubernetes": "v0.2.37",
            "go.etcd.io/etcd/etcdutl/v3": "v3.6.14",
            # talos uses a containerd fork only to help dead-code elimination in machined
            "github.com/containerd/containerd/v2": "github.com/containerd/containerd/v2 v2.2.9",
        },
    ),
    "etcd": Tool(
        module="go.etcd.io/etcd/server/v3",
        version_key="ETCD_VERSION",
        binaries={"etcd": "go.etcd.io/etcd/server/v3"},
        ldflags=lambda _v: "-s -w",
    ),
    "kwok": Tool(
        module="sigs.k8s.io/kwok",
        version_key="KWOK_VERSION",
        binaries={"kwok": "sigs.k8s.io/kwok/cmd/kwok"},
        ldflags=lambda _v: "-s -w",
    ),
    "kube": Tool(
        module="k8s.io/kubernetes",
        version_key="KUBERNETES_VERSION",
        binaries={"kube": "./kube"},
        local_version=_kubernetes_staging_version,
        ldflags=_kubernetes_ldflags,
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
        sys.exit(f"go {' '.join(args)} failed in {cwd}:\n{proc.stderr[-4000:]}")
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
    local_version = tool.local_version(version) if tool.local_version else version
    lines = ["module solanaops.testbed/" + tool.module.replace("/", "_"), "", "go 1.26", ""]
    lines.append(f"require {tool.module} {version}")
    for path, target, target_version in replaces:
        if target.startswith("."):
            lines.append(f"require {path} {local_version}")
            lines.append(f"replace {path} => {path} {local_version}")
        elif path not in tool.substitutes:
            lines.append(f"replace {path} => {target} {target_version}")
    for path, substitute in tool.substitutes.items():
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
    for binary, package in tool.binaries.items():
        if package.startswith("./"):
            # a main package of ours (e.g. one binary serving several Kubernetes commands)
            shutil.copytree(HERE / package[2:], workdir / package[2:], dirs_exist_ok=True)
    staging = target.parent / ".partial"
    staging.mkdir(parents=True, exist_ok=True)
    for binary, package in tool.binaries.items():
        args = ["go", "build", "-v", "-trimpath", "-o", str(staging / binary)]
        if tool.tags:
            args += ["-tags", tool.tags]
        if tool.ldflags:
            args += ["-ldflags", tool.ldflags(version)]
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
