#!/usr/bin/python
# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_preflight
short_description: Check a Talos cluster description before anything is written or sent
version_added: 0.1.0
description:
  - Checks the whole inventory at once and fails listing every problem, each naming the
    inventory field and the fix.
  - "Checks: an odd number of control-plane nodes; unique hostnames and IPs; the VIP and
    gateway inside the node subnet and owned by no node; valid CIDRs and versions; a
    Kubernetes version the Talos version supports; huge pages plus reservations that fit the
    node's memory; reserved CPUs that exist; kernel args Talos rejects; volume requests Talos
    cannot honour (btrfs, free-form mount options, machine.disks); the installer image each node
    boots (a control plane's schematic without validator tuning, a hand-set image naming the
    rendered schematic and Talos version)."
  - Runs on the controller and contacts nothing.
options:
  cluster:
    description:
      - The cluster-wide settings.
      - "Keys: C(talos_version), C(kubernetes_version), C(vip), C(subnet), C(gateway),
        C(image_factory) (registry host of the installers), C(install_image) (the removed
        cluster-wide image, refused when set), C(endpoint), C(dns_service_ips), C(nameservers),
        C(ntp_servers), C(silence) (variables whose warnings are dropped)."
    type: dict
    required: true
  nodes:
    description:
      - Every node of the cluster, for the topology checks.
      - "Keys: C(name), C(ip), C(role) (C(controlplane) or C(worker)), C(link), C(mtu),
        C(install_disk), C(install_disk_selector), C(variables) (the names its inventory sets),
        C(settings) (its own C(talos_node_*) values, checked against O(node_settings)), and
        optionally C(worker) (C(hardware), C(tuning)), C(installer) and C(etcd_args) (a control
        plane's etcd flags) for the checks of worker, installer and etcd."
    type: list
    elements: dict
  known_variables:
    description:
      - Every variable name the collection's roles read; a node's C(variables) outside it are
        reported as typos with the closest known name.
    type: list
    elements: str
  node_settings:
    description:
      - The argument spec of each node's own settings (C(settings) of O(nodes)), as a role's
        C(meta/argument_specs.yml) writes its options.
      - Every node's values are checked against it at once (types, choices), as a role entry
        point's argument spec checks the one host that includes it; names outside it are ignored.
      - When a value is refused, only these errors are reported, as the argument spec would have
        stopped the run first (the other checks would misread a value of the wrong type).
    type: dict
  worker:
    description:
      - One tuned worker, for the resource and volume checks.
      - "Keys: C(name), C(hardware) (C(cpus), C(numa_nodes), C(memory)) and C(tuning)."
    type: dict
  installer:
    description:
      - The installer one node boots, for the image checks.
      - "Keys: C(name), C(role), C(kernel_args) and C(extensions) (its schematic), C(secureboot),
        C(boot_mode) and C(image) (a hand-set C(talos_node_install_image), empty when derived)."
    type: dict
attributes:
  check_mode:
    support: full
    description: Check mode reports what would change and writes nothing.
  diff_mode:
    support: none
    description: No diff is produced.
author:
  - SolanaOps platform team (@solanaops)
"""

EXAMPLES = r"""
- name: Check the inventory
  solanaops.talos.talos_preflight:
    cluster:
      talos_version: v1.13.9
      kubernetes_version: 1.36.3
      vip: 10.0.1.10
      subnet: 10.0.1.0/24
      gateway: 10.0.1.1
    nodes:
      - {name: cp-1, ip: 10.0.1.11, role: controlplane}
      - {name: cp-2, ip: 10.0.1.12, role: controlplane}
      - {name: cp-3, ip: 10.0.1.13, role: controlplane}
"""

RETURN = r"""
warnings_found:
  description: Problems that do not stop the run.
  returned: always
  type: list
  elements: str
  sample: ["solana-validator: talos_install_disk /dev/nvme0n1: NVMe names can change between boots"]
errors:
  description: Every problem that stops the run.
  returned: failure
  type: list
  elements: str
  sample: ["talos_cluster_vip: 10.0.2.10 is outside talos_cluster_subnet 10.0.1.0/24"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.solanaops.talos.plugins.module_utils.preflight import (
    ARGUMENT_SPEC,
    REQUIRED_ONE_OF,
    run_checks,
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, required_one_of=REQUIRED_ONE_OF, supports_check_mode=True)
    result, warnings = run_checks(module.params)
    for warning in warnings:
        module.warn(warning)
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
