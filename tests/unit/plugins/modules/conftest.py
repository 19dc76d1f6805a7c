"""What the module tests share: a module's main() run with a stand-in AnsibleModule whose
run_command is a fake talosctl, returning the result it exited or failed with."""

from __future__ import annotations

import pytest


class _Exit(Exception):
    pass


@pytest.fixture
def run_module(monkeypatch):
    """run_module(module, talos, defaults, check_mode=False, **params) -> the result dict, with
    ``failed``; ``talos(argv)`` answers each command as (rc, stdout, stderr)."""

    def run(module, talos, defaults, check_mode=False, **params):
        outcome = {}

        class Module:
            def __init__(self, argument_spec, **_kwargs):
                spec_defaults = {name: spec.get("default") for name, spec in argument_spec.items()}
                self.params = {**spec_defaults, "talosctl_path": "/bin/true", **defaults, **params}
                self.check_mode = check_mode
                self.no_log_values = set()
                self._diff = False

            def run_command(self, argv, **_kwargs):
                return talos(argv)

            def get_bin_path(self, name):
                return None

            def exit_json(self, **result):
                outcome.update(result, failed=False)
                raise _Exit

            def fail_json(self, **result):
                outcome.update(result, failed=True)
                raise _Exit

        monkeypatch.setattr(module, "AnsibleModule", Module)
        with pytest.raises(_Exit):
            module.main()
        return outcome

    return run
