"""Start and stop the Talos node emulator (testbed/emulator) serving the machines of a
description file, for `make demo` and the tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import gobuild  # noqa: E402

LOCAL_MACHINES = HERE / "local-machines.yaml"


class Machines:
    """The emulator process; returns from start once every node's listener is up."""

    def __init__(self, description: Path, state: Path):
        binary = gobuild.build("talos-emulator", gobuild.default_version("talos-emulator", gobuild.pinned_versions()))
        state.mkdir(parents=True, exist_ok=True)
        self.log = state / "emulator.log"
        with open(self.log, "a") as log:
            argv = [str(binary), "--nodes", str(description), "--state", str(state / "machines")]
            self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True)
        for line in self.process.stdout:
            if line.strip() == "ready":
                return
        raise RuntimeError(f"the emulator exited: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)
