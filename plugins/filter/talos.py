# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the roles use to render Talos patches: contract-aware network documents and the
validator's resource arithmetic (from module_utils, the one place for those facts).

Each filter is documented on its own, in plugins/filter/<filter name>.yml
(`ansible-doc -t filter solanaops.talos.<filter name>`)."""

from __future__ import annotations

import ipaddress

from ansible_collections.solanaops.talos.plugins.module_utils import contract, node_restriction, resources, schematic


def node_documents(node, cluster, talos_version):
    """Patch documents for a node's identity: hostname, network, VIP and install disk.

    node: hostname, ip, link ({name: enp1s0} or {mac: aa:bb:..}), optional mtu, vip and
    install_disk_selector ({serial|wwid|model: value}, replacing machine.install.disk).
    cluster: subnet, gateway, nameservers, ntp_servers.
    """
    documents = []
    if node.get("install_disk_selector"):
        # a device path can change between boots; the selector replaces it entirely
        documents.append({"machine": {"install": {"disk": {"$patch": "delete"},
                                                  "diskSelector": dict(node["install_disk_selector"])}}})
    prefix = ipaddress.ip_network(cluster["subnet"]).prefixlen
    address = f"{node['ip']}/{prefix}"
    link = node.get("link") or {}
    if contract.uses_multidoc_network(talos_version):
        return documents + _multidoc_network(node, cluster, link, address)
    interface = ({"deviceSelector": {"hardwareAddr": link["mac"].lower()}} if "mac" in link
                 else {"interface": link["name"]})
    interface.update({"dhcp": False, "addresses": [address]})
    if cluster.get("gateway"):
        interface["routes"] = [{"network": "0.0.0.0/0", "gateway": cluster["gateway"]}]
    if node.get("mtu"):
        interface["mtu"] = int(node["mtu"])
    if node.get("vip"):
        interface["vip"] = {"ip": node["vip"]}
    machine = {"network": {"hostname": node["hostname"], "interfaces": [interface]}}
    if cluster.get("nameservers"):
        machine["network"]["nameservers"] = list(cluster["nameservers"])
    if cluster.get("ntp_servers"):
        machine["time"] = {"servers": list(cluster["ntp_servers"])}
    return documents + [{"machine": machine}]


def _multidoc_network(node, cluster, link, address):
    documents = [{"apiVersion": "v1alpha1", "kind": "HostnameConfig", "hostname": node["hostname"], "auto": "off"}]
    link_name = link.get("name", "net0")
    if "mac" in link:
        # a stable alias, since enp* names depend on the PCI slot the NIC sits in
        documents.append({"apiVersion": "v1alpha1", "kind": "LinkAliasConfig", "name": link_name,
                          "selector": {"match": f'mac(link.permanent_addr) == "{link["mac"].lower()}"'}})
    link_config = {"apiVersion": "v1alpha1", "kind": "LinkConfig", "name": link_name, "up": True,
                   "addresses": [{"address": address}]}
    if node.get("mtu"):
        link_config["mtu"] = int(node["mtu"])
    if cluster.get("gateway"):
        link_config["routes"] = [{"gateway": cluster["gateway"]}]
    documents.append(link_config)
    if node.get("vip"):
        documents.append({"apiVersion": "v1alpha1", "kind": "Layer2VIPConfig", "name": node["vip"], "link": link_name})
    if cluster.get("nameservers"):
        documents.append({"apiVersion": "v1alpha1", "kind": "ResolverConfig",
                          "nameservers": [{"address": server} for server in cluster["nameservers"]]})
    if cluster.get("ntp_servers"):
        documents.append({"apiVersion": "v1alpha1", "kind": "TimeSyncConfig",
                          "ntp": {"servers": list(cluster["ntp_servers"])}})
    return documents


def disk_selector(disk):
    """A UserVolumeConfig CEL match from {serial|wwid|model|dev_path: value}, e.g.
    {'serial': 'S6XN'} -> 'disk.serial == "S6XN"'."""
    unknown = set(disk) - set(contract.VOLUME_DISK_FIELDS)
    if unknown or not disk:
        raise ValueError(f"disk selector {disk!r}: use one or more of {', '.join(contract.VOLUME_DISK_FIELDS)}")
    return " && ".join(f'disk.{field} == "{disk[field]}"' for field in contract.VOLUME_DISK_FIELDS if field in disk)


def reserved_memory_per_numa(kube_reserved, system_reserved, eviction_hard, numa_nodes, merge_default_eviction=True):
    total = resources.memory_reservation(kube_reserved or {}, system_reserved or {}, eviction_hard or {},
                                         merge_default_eviction)
    return resources.reserved_memory_per_numa(total, numa_nodes)


def installer(inputs, factory, talos_version, secureboot=False, image=""):
    """The installer a node boots, from its schematic inputs ({kernel_args, extensions}):
    {schematic, id, image}. A hand-set ``image`` replaces the derived reference (preflight has
    checked that it names the same schematic)."""
    derived = schematic.installer(inputs.get("kernel_args") or [], inputs.get("extensions") or [], factory,
                                  talos_version, secureboot)
    return {**derived, "image": image or derived["image"]}


class FilterModule:
    def filters(self):
        return {
            "node_documents": node_documents,
            "disk_selector": disk_selector,
            "hugepage_kernel_args": resources.hugepage_kernel_args,
            "reserved_memory_per_numa": reserved_memory_per_numa,
            "memory_manager_inputs": resources.memory_manager_inputs,
            "kernel_args_target": contract.kernel_args_target,
            "merges_default_eviction": contract.merges_default_eviction,
            "installer": installer,
            "canonical_schematic": schematic.canonical_yaml,
            "self_set_labels": node_restriction.self_set_labels,
        }
