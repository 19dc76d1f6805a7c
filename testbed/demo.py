#!/usr/bin/env python3
"""`make demo`: the emulated machines of the testbed's inventory (testbed/inventory) in
maintenance mode, then site.yml against them with the real talosctl, then the emulator stopped.
Machine state is kept in ${XDG_CACHE_HOME:-~/.cache}/solanaops-talos/demo so a second demo is a
no-change re-run; `make demo-reset` starts from blank machines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import gobuild  # noqa: E402
from machines import DEMO_STATE, LOCAL_INVENTORY, LOCAL_MACHINES, Machines  # noqa: E402


def main() -> int:
    talosctl = gobuild.binary_path("talosctl", gobuild.pinned_versions()["TALOSCTL_VERSION"])
    machines = Machines(LOCAL_MACHINES, DEMO_STATE)
    print("emulated machines ready on 127.0.1.11-13 and 127.0.1.20", flush=True)
    try:
        return subprocess.call(["ansible-playbook", "playbooks/site.yml", "-i", str(LOCAL_INVENTORY),
                                "-e", f"talosctl_path={talosctl}", *sys.argv[1:]], cwd=HERE.parent,
                               env={**os.environ, "ANSIBLE_CONFIG": str(HERE.parent / "ansible.cfg")})
    finally:
        machines.stop()


if __name__ == "__main__":
    sys.exit(main())
