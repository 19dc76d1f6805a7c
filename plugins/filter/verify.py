# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the verify role uses to turn observed cluster state into named check results."""

from __future__ import annotations

DOCUMENTATION = r"""
name: verify
short_description: Verification checks for the validator cluster
version_added: 0.1.0
description:
  - C(kubernetes_checks) compares the Kubernetes objects read with C(kubernetes.core.k8s_info)
    (nodes, priority classes, storage classes, persistent volumes, the control planes' mirror
    pods, the kube-proxy DaemonSet) with what the inventory implies, and returns one result per check.
  - C(talos_checks) compares the kernel view M(solanaops.talos.talos_node_facts) reads with the tuning;
    kernel args, huge pages in C(/proc/meminfo) and per NUMA node, mounted volumes, and the
    kubelet's CPU, topology and memory manager policies and reserved CPUs.
  - C(boot_checks) compares what a node booted (schematic ID, Talos version, UKI, SecureBoot)
    with the installer its config names.
  - C(service_checks) wants apid and kubelet (and etcd on control planes) running and healthy;
    C(etcd_checks) wants one healthy etcd member per control plane, with quorum and one leader.
  - C(ready_nodes) names the Nodes that count as ready, that is Ready or, with the cluster's CNI
    C(none), NotReady only because the container runtime has no CNI (waiting for a CNI).
  - C(node_facts_request) turns a host's variables (an item of C(hostvars)) into what
    M(solanaops.talos.talos_node_facts) reads of it, an item of its O(solanaops.talos.talos_node_facts#module:nodes).
  - C(facts_by_host) turns M(solanaops.talos.talos_node_facts)' result for the cluster into each
    host's facts, and C(node_checks) compares them with each host's installer and tuning
    (C(boot_checks) and C(talos_checks) for every host at once).
  - C(node_services) turns each host's M(solanaops.talos.talos_node_facts) result into its services
    (none when they were not read), the input of C(service_checks).
  - C(component_versions) lists every Kubernetes version the cluster runs, from the control
    planes' mirror pods (kube-apiserver, kube-controller-manager, kube-scheduler), the kube-proxy
    DaemonSet and the Nodes' kubelets; the Kubernetes upgrade plans from it.
  - C(persistent_volume_name) is the naming rule of the validator's local PersistentVolumes.
  - Every result names its check family (C(nodes), C(validator), C(priority class), C(storage),
    C(boot), C(kernel), C(services), C(etcd), C(hosts), C(control plane)); C(family_checks) fails each expected family
    with no result, and C(host_checks) fails each host of the play whose facts were not read.
author:
  - SolanaOps platform team (@solanaops)
"""

from ansible_collections.solanaops.talos.plugins.module_utils import checks


def kubernetes_checks(observed, expected):
    """observed: nodes, priority_classes, storage_classes, persistent_volumes, control_plane_pods, daemonsets
    (object lists).
    expected: nodes (names), controlplanes (names), kubernetes_version, cni, validators, priority_class {name, value},
    storage_class_prefix, volumes_by_node {node: [volume]}."""
    results = checks.tagged(checks.node_checks(observed["nodes"], expected["nodes"], expected.get("kubernetes_version"),
                                               expected.get("cni", "flannel")), "nodes")
    results += checks.tagged(checks.control_plane_checks(
        observed["control_plane_pods"], expected["controlplanes"], expected["kubernetes_version"],
        observed.get("daemonsets", [])), "control plane")
    for validator in expected["validators"]:
        results += checks.tagged(checks.validator_checks(observed["nodes"], validator), "validator")
    results += checks.tagged(checks.priority_class_checks(observed["priority_classes"],
                                                          expected["priority_class"]["name"],
                                                          expected["priority_class"]["value"]), "priority class")
    results += checks.tagged(checks.storage_checks(observed["storage_classes"], expected["volumes_by_node"],
                                                   expected["storage_class_prefix"], observed["persistent_volumes"]),
                             "storage")
    return results


def node_services(facts_by_host):
    """{host: talos_node_facts' result} -> {host: its services, None when they were not read}."""
    return {host: (facts or {}).get("services") for host, facts in facts_by_host.items()}


def node_facts_request(host):
    """A host's variables -> what M(solanaops.talos.talos_node_facts) reads of it (an entry of its
    nodes): what every node booted and its services; a validator's kernel view (its NUMA nodes'
    meminfo, its sysctls, the MTU of its link) and kubelet configuration too."""
    expected = host.get("talos_solana_worker_expected")
    request = {"name": host["inventory_hostname"], "node": host["talos_node_ip"], "gather": ["boot", "services"]}
    if expected is None:
        return request
    # a link selected by MAC has no kernel name the inventory knows: its MTU is not read
    link = (expected.get("link") or {}).get("name")
    return {**request, "gather": ["boot", "services", "kernel", "kubelet"],
            "numa_nodes": (host.get("talos_node_hardware") or {}).get("numa_nodes", 1),
            "sysctls": list(expected["sysctls"]), "links": [link] if link else []}


def facts_by_host(facts_read, hosts, read_hosts):
    """talos_node_facts' result for the cluster -> {host: its facts} for every host of the play:
    a host it read has its facts or its own failure; when the module itself failed, each host it
    was to read has that failure; a host that left the play before has {} (not read)."""
    nodes = facts_read.get("nodes")

    def facts_of(host):
        if host not in read_hosts:
            return {}
        return facts_read if nodes is None else nodes.get(host) or {}

    return {host: facts_of(host) for host in hosts}


def node_checks(facts, hostvars, hosts, talos_version):
    """{host: its facts} -> what each of the hosts booted against its installer, and each
    validator's kernel view against its tuning (its talos_solana_worker_expected), as one list."""
    results = []
    for host in hosts:
        variables, host_facts = hostvars[host], facts.get(host) or {}
        results += checks.tagged(checks.boot_checks(host_facts, {
            "name": host, "installer": variables["talos_node_installer"], "talos_version": talos_version,
            "boot_mode": variables.get("talos_node_boot_mode", "uki"),
            "secureboot": variables.get("talos_node_secureboot", False)}), "boot")
        expected = variables.get("talos_solana_worker_expected")
        if expected is not None:
            results += checks.tagged(checks.talos_checks(host_facts, expected), "kernel")
    return results


def _family(check, family):
    def tagged_check(*args, **kwargs):
        return checks.tagged(check(*args, **kwargs), family)
    return tagged_check


class FilterModule:
    def filters(self):
        return {
            "kubernetes_checks": kubernetes_checks,
            "component_versions": checks.component_versions,
            "talos_checks": _family(checks.talos_checks, "kernel"),
            "service_checks": _family(checks.service_checks, "services"),
            "etcd_checks": _family(checks.etcd_checks, "etcd"),
            "boot_checks": _family(checks.boot_checks, "boot"),
            "family_checks": checks.family_checks,
            "host_checks": _family(checks.host_checks, "hosts"),
            "node_services": node_services,
            "node_facts_request": node_facts_request,
            "facts_by_host": facts_by_host,
            "node_checks": node_checks,
            "persistent_volume_name": checks.persistent_volume_name,
            "parse_taints": checks.parse_taints,
            "ready_nodes": checks.ready_nodes,
        }
