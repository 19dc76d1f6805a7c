#!/usr/bin/python
# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_taints
short_description: Set taints on many Kubernetes Nodes in one call, keeping every other taint
version_added: 0.1.0
description:
  - For each Node of O(nodes), every taint listed is there with its value afterwards. A taint is
    its key and effect (as C(kubectl taint) and C(kubernetes.core.k8s_taint) count them); a listed
    one replaces the Node's taint of the same key and effect; the Node's other taints (the node
    lifecycle controller's, an operator's) stay. Nothing is removed that is not replaced.
  - One process for every Node, so a run costs one module start whatever the number of Nodes,
    not one per Node as C(kubernetes.core.k8s_taint); none when O(observed) shows every taint
    there already.
  - C(spec.taints) is an atomic list (a patch replaces it whole), so each change is a JSON patch
    that first tests the Node's C(resourceVersion); a taint another client added after the read is
    never dropped. On such a conflict the Node is read again (five attempts in all).
  - Connects with O(kubeconfig) alone, its current context (the C(K8S_AUTH_*) environment
    variables of C(kubernetes.core) do not apply). Every Node is tried; the failure lists each
    Node that could not be tainted and RV(changed_nodes) the ones that were.
options:
  kubeconfig:
    description: Path of the kubeconfig to reach the API server with.
    type: path
    required: true
  field_manager:
    description: The field manager the Nodes' C(managedFields) record for the taints.
    type: str
    default: solanaops-talos
  nodes:
    description: The Nodes and the taints each must have.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name of the Node.
        type: str
        required: true
      taints:
        description: Its taints.
        type: list
        elements: dict
        required: true
        suboptions:
          key:
            description: Taint key.
            type: str
            required: true
          value:
            description: Taint value; empty for none.
            type: str
            default: ""
          effect:
            description: Taint effect.
            type: str
            required: true
            choices: [NoSchedule, PreferNoSchedule, NoExecute]
  observed:
    description:
      - The Nodes as the API server returned them just before, such as the items of a list of
        Nodes; objects of another C(kind) are ignored, one without a C(kind) is taken for a Node.
        They must come from the cluster O(kubeconfig) names (its current context); a read through
        C(K8S_AUTH_*) environment variables may reach another one.
      - When every Node of O(nodes) is among them with all its taints, the task reads and patches
        nothing and reports no change; on the controller its action plugin answers without
        starting the module. Otherwise every Node is read afresh, as without it.
    type: list
    elements: dict
    default: []
attributes:
  check_mode:
    support: full
    description: Reads each Node and reports what would change; patches nothing.
  diff_mode:
    support: full
    description: Each changed Node's taints before and after.
requirements:
  - kubernetes (the Python client kubernetes.core needs too)
author:
  - SolanaOps platform team (@solanaops)
"""

EXAMPLES = r"""
- name: Keep every other workload off the validators
  solanaops.talos.node_taints:
    kubeconfig: /srv/talos/solana-cluster/kubeconfig
    nodes:
      - name: solana-validator-1
        taints: [{key: solana.io/validator, value: "true", effect: NoSchedule}]
      - name: solana-validator-2
        taints: [{key: solana.io/validator, value: "true", effect: NoSchedule}]
  run_once: true
"""

RETURN = r"""
changed_nodes:
  description: The Nodes whose taints were changed (in check mode, would be), also when others failed.
  returned: always
  type: list
  elements: str
  sample: [solana-validator-1]
"""

import json

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.solanaops.talos.plugins.module_utils.node_taints import (
    ARGUMENT_SPEC,
    all_observed_tainted,
    merged_taints,
    taints_of,
)

try:
    from kubernetes import config
    from kubernetes.client import CoreV1Api
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException
    from urllib3.exceptions import HTTPError
except ImportError:
    config = None

# the API server answers a JSON patch whose test operation failed with 422 (k8s.io/apiserver
# pkg/endpoints/handlers/patch.go) and a write that lost the race to another with 409
CONFLICT_STATUSES = (409, 422)
ATTEMPTS = 5


class NodeTaintError(Exception):
    """One Node could not be tainted; the others still are."""


class NodeTaints:
    def __init__(self, kubeconfig, field_manager, check_mode):
        self.api = CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
        self.field_manager, self.check_mode = field_manager, check_mode

    def read(self, name):
        """The Node as the API server returns it (plain JSON, taints as they are)."""
        try:
            return json.loads(self.api.read_node(name, _preload_content=False).data)
        except ApiException as error:
            if error.status == 404:
                raise NodeTaintError(f"Node {name} is not registered in Kubernetes: has its kubelet joined? "
                                     "(kubectl get nodes)") from error
            raise NodeTaintError(f"reading Node {name}: {error.status} {error.reason}: {error.body}") from error

    def ensure(self, name, wanted):
        """(before, after) of a Node whose taints change, None when they are already right."""
        refused = None
        for _attempt in range(ATTEMPTS):
            node = self.read(name)
            version = node["metadata"]["resourceVersion"]
            if refused and refused[0] == version:
                # refused although nobody changed the Node: not a lost race
                raise NodeTaintError(f"tainting Node {name}: {refused[1]}")
            before = taints_of(node)
            after = merged_taints(before, wanted)
            if after is None or self.check_mode:
                return None if after is None else (before, after)
            patch = [{"op": "test", "path": "/metadata/resourceVersion", "value": version},
                     {"op": "add", "path": "/spec/taints", "value": after}]
            try:
                self.api.patch_node(name, patch, field_manager=self.field_manager,
                                    _content_type="application/json-patch+json")
                return before, after
            except ApiException as error:
                refused = version, f"{error.status} {error.reason}: {error.body}"
                if error.status not in CONFLICT_STATUSES:
                    raise NodeTaintError(f"tainting Node {name}: {refused[1]}") from error
        raise NodeTaintError(f"tainting Node {name}: it changed under each of {ATTEMPTS} attempts ({refused[1]})")


def _diff(name, before, after):
    return {"before_header": f"Node {name} taints", "after_header": f"Node {name} taints",
            "before": json.dumps(before, indent=2) + "\n", "after": json.dumps(after, indent=2) + "\n"}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    if all_observed_tainted(params["nodes"], params["observed"]):
        module.exit_json(changed=False, changed_nodes=[])
    if config is None:
        module.fail_json(msg=missing_required_lib("kubernetes"))
    changes, failures = {}, []
    try:
        client = NodeTaints(params["kubeconfig"], params["field_manager"], module.check_mode)
        # every Node is tried: one that fails leaves the others tainted, and the result says which
        for node in params["nodes"] or []:
            try:
                changes[node["name"]] = client.ensure(node["name"], node["taints"] or [])
            except NodeTaintError as error:
                failures.append(str(error))
    except (ConfigException, HTTPError) as error:
        # the API server cannot be reached at all: nothing node-specific to try
        module.fail_json(msg=f"reaching the API server with {params['kubeconfig']}: {error}",
                         changed_nodes=[name for name, change in changes.items() if change])
    changed = [name for name, change in changes.items() if change]
    result = {"changed": bool(changed), "changed_nodes": changed}
    if module._diff:
        result["diff"] = [_diff(name, *changes[name]) for name in changed]
    if failures:
        module.fail_json(msg="; ".join(failures), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
