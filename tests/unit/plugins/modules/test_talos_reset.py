"""talos_reset: the talosctl arguments never wipe more than the partitions named."""

from __future__ import annotations

from ansible_collections.solanaops.talos.plugins.modules import talos_reset


def test_reset_args_name_the_partitions_and_do_not_wait():
    assert talos_reset.reset_args(["EPHEMERAL"], True, True) == [
        "reset", "--wait=false", "--system-labels-to-wipe=EPHEMERAL", "--reboot=true", "--graceful=true"]
    assert talos_reset.reset_args(["EPHEMERAL", "STATE"], False, False) == [
        "reset", "--wait=false", "--system-labels-to-wipe=EPHEMERAL,STATE", "--reboot=false", "--graceful=false"]
