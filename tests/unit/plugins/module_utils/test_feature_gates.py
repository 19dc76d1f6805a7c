"""The kubelet feature-gate table's refusals, as component-base's SetFromMap makes them."""

from __future__ import annotations

from ansible_collections.solanaops.talos.plugins.module_utils import feature_gates
from ansible_collections.solanaops.talos.plugins.module_utils.kubelet_feature_gates import KUBELET

MINOR = max(KUBELET, key=lambda minor: tuple(int(part) for part in minor.split(".")))
KNOWN = KUBELET[MINOR]


def test_the_table_has_the_registrys_special_gates():
    # every registry holds the two "all alpha/beta" switches, unlocked and off
    assert KNOWN["AllAlpha"] == (False, False)
    assert KNOWN["AllBeta"] == (False, False)


def test_known_gates_at_any_value_are_accepted():
    unlocked = next(name for name, (_default, locked) in sorted(KNOWN.items()) if not locked)
    assert feature_gates.kubelet_refusals(f"v{MINOR}.0", {unlocked: True, "AllAlpha": False}) == []


def test_an_unknown_gate_is_refused_by_name():
    (refusal,) = feature_gates.kubelet_refusals(f"{MINOR}.1", {"NoSuchGateEver": True})
    assert refusal.startswith("feature gate NoSuchGateEver is unknown to the kubelet of Kubernetes " + MINOR)
    assert '"unrecognized feature gate: NoSuchGateEver"' in refusal


def test_a_locked_gate_is_refused_only_against_its_default():
    name, (default, _locked) = next((n, spec) for n, spec in sorted(KNOWN.items()) if spec[1])
    assert feature_gates.kubelet_refusals(MINOR, {name: default}) == []
    (refusal,) = feature_gates.kubelet_refusals(MINOR, {name: not default})
    assert refusal.startswith(f"feature gate {name} is locked to {str(default).lower()} in Kubernetes {MINOR}")


def test_a_minor_without_a_table_is_not_judged():
    assert feature_gates.kubelet_refusals("v1.20.0", {"Anything": True}) is None
