# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a Node's pods really run. kwok (the testbed's kubelets) marks the Nodes it serves with
an annotation and reports their pods Running, Ready and even Completed without starting any
container: a benchmark or a process's own view read there would be made up. A playbook that
needs a container's output stops on such a node with a "needs real nodes" result."""

from __future__ import annotations

from ansible_collections.solanaops.talos.plugins.module_utils.checks import information

# kwok takes the Nodes annotated with it (kwok --manage-nodes-with-annotation-selector)
KWOK_ANNOTATION = "kwok.x-k8s.io/node"


def needs_real_node(node):
    """'' for a Node a kubelet runs; otherwise why nothing can run on it."""
    annotations = (node.get("metadata") or {}).get("annotations") or {}
    if KWOK_ANNOTATION in annotations:
        return (f"kwok-managed ({KWOK_ANNOTATION}={annotations[KWOK_ANNOTATION]}): kwok runs no containers, "
                "so nothing ran there; needs real nodes")
    return ""


def not_run(check, subject, reason):
    """The report's entry for a check that could not run on such a node: information, never a pass."""
    return information(check, subject, f"not run: {reason}")
