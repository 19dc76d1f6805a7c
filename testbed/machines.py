#!/usr/bin/env python3
"""Start and stop the Talos node emulator (testbed/emulator) serving the machines of a
description file, for `make demo` and the tests; and its power control, what a BMC is to a
real machine:

    machines.py start [--state DIR] [--nodes NODES.yaml]   start it and leave it running
    machines.py stop [--state DIR]
    machines.py power-on|power-off NAME [--state DIR]

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
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import gobuild  # noqa: E402

LOCAL_MACHINES = HERE / "local-machines.yaml"
DEMO_STATE = gobuild.cache_root() / "demo"


class Machines:
    """The emulator process, in a session of its own; returns from start once every node's
    listener is up. Its pid is kept in STATE/emulator.pid so `machines.py stop` finds it."""

    def __init__(self, description: Path, state: Path, *, control_planes: bool = True):
        pins = gobuild.pinned_versions()
        binary = gobuild.build("talos-emulator", gobuild.default_version("talos-emulator", pins))
        argv = [str(binary), "--nodes", str(description), "--state", str(state / "machines")]
        if control_planes:
            argv += ["--etcd", str(gobuild.build("etcd", pins["ETCD_VERSION"])),
                     "--kube", str(gobuild.build("kube", pins["KUBERNETES_VERSION"])),
                     "--kwok", str(gobuild.build("kwok", pins["KWOK_VERSION"])),
                     "--kwok-config", str(HERE / "kwok" / "stages.yaml")]
        state.mkdir(parents=True, exist_ok=True)
        self.state = state
        self.log = state / "emulator.log"
        announced = state / "emulator.out"
        with open(announced, "w") as out, open(self.log, "a") as log:
            self.process = subprocess.Popen(argv, stdout=out, stderr=log, start_new_session=True)
        (state / "emulator.pid").write_text(str(self.process.pid))
        # the emulator prints "ready" once every listener is up
        while self.process.poll() is None:
            if "ready\n" in announced.read_text().splitlines(keepends=True):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the emulator exited: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)
        (self.state / "emulator.pid").unlink(missing_ok=True)


def stop(state: Path) -> None:
    """Stop the emulator `start` left running (it stops its etcd and Kubernetes first)."""
    pid_file = state / "emulator.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    except ProcessLookupError:
        pass
    pid_file.unlink()


def power(state: Path, node: str, on: bool) -> str:
    """Switch an emulated machine on or off through the emulator's control socket."""
    action = "power-on" if on else "power-off"
    with socket.socket(socket.AF_UNIX) as control:
        control.connect(str(state / "machines" / "control.sock"))
        control.sendall(f"POST /{action}?node={node} HTTP/1.0\r\nHost: emulator\r\n\r\n".encode())
        reply = b""
        while chunk := control.recv(4096):
            reply += chunk
    head, _, body = reply.decode().partition("\r\n\r\n")
    if " 200 " not in head.splitlines()[0]:
        raise RuntimeError(f"{action} {node}: {body.strip()}")
    return body.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop", "power-on", "power-off"])
    parser.add_argument("node", nargs="?", help="the machine's name or address (power-on, power-off)")
    parser.add_argument("--state", type=Path, default=Path(os.environ.get("TESTBED_STATE", DEMO_STATE)))
    parser.add_argument("--nodes", type=Path, default=LOCAL_MACHINES, help="the machines' description (start)")
    args = parser.parse_args()
    try:
        if args.action == "start":
            Machines(args.nodes, args.state)
            print(f"emulated machines of {args.nodes.name} ready; state in {args.state}")
        elif args.action == "stop":
            stop(args.state)
        elif not args.node:
            parser.error(f"{args.action} needs a NODE")
        else:
            print(power(args.state, args.node, args.action == "power-on"))
    except (OSError, RuntimeError) as error:
        sys.exit(f"{args.action}: {error}")


if __name__ == "__main__":
    main()
