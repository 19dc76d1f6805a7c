# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a node may write to its own Node object, as the API server's NodeRestriction admission
decides (kubernetes plugin/pkg/admission/noderestriction/admission.go getForbiddenLabels, and
the kubelet's own labels, k8s.io/kubelet pkg/apis/well_known_labels.go).

Talos writes a worker's machine.nodeLabels and nodeTaints with the kubelet's identity, in one
update of the whole Node: a label outside this rule, or any taint not already set when the
kubelet registered, makes the API server refuse the whole update."""

from __future__ import annotations

# labels a kubelet sets on itself, and the namespaces reserved for kubelets
KUBELET_LABELS = frozenset({
    "kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch",
    "beta.kubernetes.io/os", "beta.kubernetes.io/arch", "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type", "topology.kubernetes.io/zone", "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
})
KUBELET_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


def _in(namespace, domain):
    return namespace == domain or namespace.endswith("." + domain)


def node_may_set(label):
    """Whether a node may set this label on itself."""
    namespace = label.split("/", 1)[0] if "/" in label else ""
    if _in(namespace, "node-restriction.kubernetes.io"):
        return False
    if not (_in(namespace, "kubernetes.io") or _in(namespace, "k8s.io")):
        return True
    return label in KUBELET_LABELS or any(_in(namespace, allowed) for allowed in KUBELET_NAMESPACES)


def self_set_labels(labels):
    """The labels a node may set on itself; the others need the Kubernetes API as an admin."""
    return {key: value for key, value in (labels or {}).items() if node_may_set(key)}
