#!/usr/bin/env python3
"""`make demo`: the emulated machines of inventory/local in maintenance mode, then site.yml
against them with the real talosctl, then the emulator stopped. Machine state is kept in
${XDG_CACHE_HOME:-~/.cache}/solanaops-talos/demo so a second demo is a no-change re-run;
`make demo-reset` starts from blank machines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import gobuild  # noqa: E402

STATE = gobuild.cache_root() / "demo"


def main() -> int:
    pins = gobuild.pinned_versions()
    emulator = gobuild.build("talos-emulator", gobuild.default_version("talos-emulator", pins))
    talosctl = gobuild.binary_path("talosctl", pins["TALOSCTL_VERSION"])
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / "emulator.log", "a") as log:
        machines = subprocess.Popen([str(emulator), "--nodes", str(HERE / "local-machines.yaml"),
                                     "--state", str(STATE / "machines")], stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            for line in machines.stdout:
                print(f"emulator {line.strip()}", flush=True)
                if line.strip() == "ready":
                    break
            else:
                sys.exit(f"the emulator exited; see {STATE / 'emulator.log'}")
            return subprocess.call(["ansible-playbook", "playbooks/site.yml", "-i", "inventory/local",
                                    "-e", f"talosctl_path={talosctl}", *sys.argv[1:]], cwd=HERE.parent,
                                   env={**os.environ, "ANSIBLE_CONFIG": str(HERE.parent / "ansible.cfg")})
        finally:
            machines.terminate()
            machines.wait(timeout=20)


if __name__ == "__main__":
    sys.exit(main())
