"""The testbed as pytest drives it, shared by the harness' own tests (testbed/tests) and the
collection's integration tests (tests/integration) so neither holds a copy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


class ControlPlane:
    """The testbed's real control plane (testbed/controlplane.py), for one test session."""

    def __init__(self, state: Path):
        self.state = state
        self.kubeconfig = state / "admin.kubeconfig"
        self.script = HERE / "controlplane.py"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """`controlplane.py ACTION` (the state directory is passed by the caller)."""
        done = subprocess.run([sys.executable, str(self.script), *args], capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            pytest.fail(f"controlplane.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done

    def register_node(self, description: dict) -> None:
        path = self.state / f"node-{description['name']}.json"
        path.write_text(json.dumps(description))
        self.run("node", str(self.state), str(path))

    def api(self):
        """A Kubernetes API client authenticated as the admin."""
        from kubernetes import config

        return config.new_client_from_config(str(self.kubeconfig))
