#!/usr/bin/env python3
"""Start and stop the Talos node emulator (testbed/emulator) serving the machines of a
description file, with the testbed's Image Factory (testbed/imagefactory) the machines pull
their installers from, for `make demo` and the tests; and the machines' power control, what a
BMC is to a real machine:

    machines.py start [--state DIR] [--nodes NODES.yaml]   start it and leave it running
    machines.py stop [--state DIR]
    machines.py power-on|power-off NAME [--state DIR]
    machines.py boot-fallback NAME [--off] [--state DIR]   NAME's next boot into an upgrade falls back
    machines.py pull-failure NAME [--version V] [--state DIR]   NAME's pulls of Kubernetes V fail (no V: clear)

DIR defaults to $TESTBED_STATE, else make demo's state directory.

Control planes run real etcd and Kubernetes (built by gobuild.py) once bootstrapped."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import gobuild  # noqa: E402

LOCAL_MACHINES = HERE / "local-machines.yaml"
# the inventory of those machines, the one make demo and the tests deploy
LOCAL_INVENTORY = HERE / "inventory"
DEMO_STATE = gobuild.cache_root() / "demo"
# The testbed's Image Factory: the address LOCAL_INVENTORY's talos_cluster_image_factory names
# (installers 127.0.1.5:5000/metal-installer/<schematic id>:<talos version>), served over plain
# HTTP (talos_cluster_image_factory_url).
IMAGE_FACTORY = "127.0.1.5:5000"


def _spawn(argv: list[str], state: Path, name: str, ready: Callable[[list[str]], bool]) -> subprocess.Popen:
    """Start NAME in a session of its own, stdout to STATE/NAME.out and stderr to STATE/NAME.log;
    once `ready` holds for its complete stdout lines, keep its pid in STATE/NAME.pid and return.
    (Written only then: a start that fails, say on a busy address, leaves the pid file of a
    process already running from the same STATE alone.)"""
    announced, log = state / f"{name}.out", state / f"{name}.log"
    # the log is kept across starts: only this start's lines explain its failure
    start_of_run = log.stat().st_size if log.exists() else 0
    with open(announced, "w") as out, open(log, "a") as err:
        process = subprocess.Popen(argv, stdout=out, stderr=err, start_new_session=True)
    try:
        while process.poll() is None:
            if ready([line for line in announced.read_text().splitlines(keepends=True) if line.endswith("\n")]):
                (state / f"{name}.pid").write_text(str(process.pid))
                return process
            time.sleep(0.1)
    except BaseException:
        process.kill()
        process.wait()
        raise
    raise RuntimeError(f"the {name} exited: {log.read_bytes()[start_of_run:].decode(errors='replace')[-2000:]}")


def start_image_factory(state: Path) -> subprocess.Popen:
    """The Image Factory on IMAGE_FACTORY, its schematics kept in STATE/imagefactory."""
    binary = gobuild.build("image-factory", gobuild.default_version("image-factory", gobuild.pinned_versions()))
    argv = [str(binary), "serve", "--listen", IMAGE_FACTORY, "--state", str(state / "imagefactory")]
    try:
        return _spawn(argv, state, "imagefactory", lambda lines: any(x.startswith("ready: ") for x in lines))
    except RuntimeError as error:
        if "address already in use" in str(error):
            raise RuntimeError(f"the Image Factory's address {IMAGE_FACTORY} is busy: another process listens "
                               "there (a testbed left running? `testbed/machines.py stop --state DIR` stops "
                               "it)") from None
        raise


def _terminate(process: subprocess.Popen, pid_file: Path) -> None:
    process.terminate()
    process.wait(timeout=60)
    pid_file.unlink(missing_ok=True)


def kube_flags(pins: dict[str, str]) -> list[str]:
    """The emulator's --kube VERSION=PATH flags: the deployed and the upgrade target's Kubernetes
    (a control plane runs the binary of the version its config's images name). Only the deployed
    one is built here; the upgrade target is served once built (make test's tools-rest, or what
    upgrades to it builds it before starting the machines): until then its images are not found,
    as in a registry without them, so the machines start while a build beside them makes it."""
    gobuild.build("kube", pins["KUBERNETES_VERSION"])
    paths = {version: gobuild.binary_path("kube", version)
             for version in (pins["KUBERNETES_VERSION"], pins["KUBERNETES_UPGRADE_VERSION"])}
    return [arg for version, path in paths.items() if path.exists() for arg in ("--kube", f"{version}={path}")]


class Machines:
    """The Image Factory, then the emulator, each in a session of its own; returns from start
    once the factory and every node's listener are up. Their pids are kept in
    STATE/imagefactory.pid and STATE/emulator.pid so `machines.py stop` finds them."""

    def __init__(self, description: Path, state: Path, *, control_planes: bool = True):
        pins = gobuild.pinned_versions()
        binary = gobuild.build("talos-emulator", gobuild.default_version("talos-emulator", pins))
        argv = [str(binary), "--nodes", str(description), "--state", str(state / "machines")]
        if control_planes:
            argv += ["--etcd", str(gobuild.build("etcd", pins["ETCD_VERSION"])),
                     *kube_flags(pins),
                     "--kwok", str(gobuild.build("kwok", pins["KWOK_VERSION"])),
                     "--kwok-config", str(HERE / "kwok" / "stages.yaml")]
        state.mkdir(parents=True, exist_ok=True)
        self.state = state
        # first the factory: machines pull their installers from it
        self.factory = start_image_factory(state)
        try:
            # the emulator prints "ready" once every listener is up
            self.process = _spawn(argv, state, "emulator", lambda lines: "ready\n" in lines)
        except BaseException:
            _terminate(self.factory, state / "imagefactory.pid")
            raise

    def stop(self) -> None:
        try:
            _terminate(self.process, self.state / "emulator.pid")
        finally:
            _terminate(self.factory, self.state / "imagefactory.pid")


def stop(state: Path) -> None:
    """Stop the emulator `start` left running (it stops its etcd and Kubernetes first), then
    the Image Factory."""
    for name in ("emulator", "imagefactory"):
        pid_file = state / f"{name}.pid"
        if not pid_file.exists():
            continue
        pid = int(pid_file.read_text())
        try:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 60
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
        except ProcessLookupError:
            pass
        pid_file.unlink()


def control(state: Path, request: str) -> str:
    """POST a request (path and query) to the emulator's control socket; its reply's body."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(state / "machines" / "control.sock"))
        sock.sendall(f"POST /{request} HTTP/1.0\r\nHost: emulator\r\n\r\n".encode())
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    head, _, body = reply.decode().partition("\r\n\r\n")
    if " 200 " not in head.splitlines()[0]:
        raise RuntimeError(f"{request}: {body.strip()}")
    return body.strip()


def power(state: Path, node: str, on: bool) -> str:
    """Switch an emulated machine on or off through the emulator's control socket."""
    return control(state, f"{'power-on' if on else 'power-off'}?node={node}")


def shutdown_delay(state: Path, node: str, delay: str) -> str:
    """The emulator's fault switch: how long NODE keeps answering after a Shutdown request
    ("" restores the emulator's --shutdown-delay)."""
    return control(state, f"shutdown-delay?node={node}&delay={delay}")


def boot_fallback(state: Path, node: str, on: bool = True) -> str:
    """The emulator's upgrade fault switch: NODE's next boot into an upgraded entry fails and
    the machine falls back to its previous one (old version and schematic, healthy), as Talos'
    A/B rollback does; on=False clears it."""
    return control(state, f"boot-fallback?node={node}{'' if on else '&off=1'}")


def pull_failure(state: Path, node: str, version: str = "") -> str:
    """The emulator's Kubernetes upgrade fault switch: NODE's pulls of every Kubernetes image of
    VERSION (v1.37.2) fail, so `talosctl upgrade-k8s` fails at its pre-pull, or that version's
    components and kubelet cannot start there; an empty version clears it."""
    return control(state, f"pull-failure?node={node}&version={version}")


def read_error(state: Path, node: str, path: str, on: bool = True) -> str:
    """The emulator's read fault switch: NODE cannot read PATH, so its reads end at once with no
    data and an OK status (machined's chunker only logs a read error), and `talosctl read` prints
    nothing and exits 0; on=False clears it."""
    return control(state, f"read-error?node={node}&path={path}{'' if on else '&off=1'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop", "power-on", "power-off", "boot-fallback", "pull-failure",
                                           "read-error"])
    parser.add_argument("node", nargs="?", help="the machine's name or address (power-on, power-off, boot-fallback, "
                        "pull-failure)")
    parser.add_argument("--off", action="store_true", help="boot-fallback, read-error: clear the switch")
    parser.add_argument("--path", default="", help="read-error: the file the node cannot read")
    parser.add_argument("--version", default="", help="pull-failure: the Kubernetes version (v1.37.2); none clears it")
    parser.add_argument("--state", type=Path, default=Path(os.environ.get("TESTBED_STATE", DEMO_STATE)))
    parser.add_argument("--nodes", type=Path, default=LOCAL_MACHINES, help="the machines' description (start)")
    args = parser.parse_args()
    try:
        if args.action == "start":
            Machines(args.nodes, args.state)
            print(f"emulated machines of {args.nodes.name} and the Image Factory on {IMAGE_FACTORY} ready; "
                  f"state in {args.state}")
        elif args.action == "stop":
            stop(args.state)
        elif not args.node:
            parser.error(f"{args.action} needs a NODE")
        elif args.action == "boot-fallback":
            print(boot_fallback(args.state, args.node, not args.off))
        elif args.action == "pull-failure":
            print(pull_failure(args.state, args.node, args.version))
        elif args.action == "read-error":
            print(read_error(args.state, args.node, args.path, not args.off))
        else:
            print(power(args.state, args.node, args.action == "power-on"))
    except (OSError, RuntimeError) as error:
        sys.exit(f"{args.action}: {error}")


if __name__ == "__main__":
    main()
