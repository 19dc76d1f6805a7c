# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the roles use to render Talos patches: contract-aware network documents and the
validator's resource arithmetic (from module_utils, the one place for those facts).

Each filter is documented on its own, in plugins/filter/<filter name>.yml
(`ansible-doc -t filter solanaops.talos.<filter name>`)."""

from __future__ import annotations

import ipaddress
import json

import yaml
from ansible.errors import AnsibleFilterError
from ansible.parsing.vault import VaultHelper
from ansible_collections.solanaops.talos.plugins.module_utils import contract, node_restriction, resources, schematic


def node_documents(node, cluster, talos_version):
    """Patch documents for a node's identity: hostname, network, VIP and install disk.

    node: hostname, ip, link ({name: enp1s0} or {mac: aa:bb:..}), optional mtu, vip and
    install_disk_selector ({serial|wwid|model: value}, replacing machine.install.disk).
    cluster: subnet, gateway, nameservers, ntp_servers.
    """
    documents = []
    selector = node.get("install_disk_selector")
    # v1.14: talosctl gen config writes the installer image into UnattendedInstallConfig only with
    # an install disk (its --install-disk default /dev/sda); this match then replaces that disk
    if selector and contract.uses_multidoc_kubernetes(talos_version):
        documents.append({"apiVersion": "v1alpha1", "kind": "UnattendedInstallConfig",
                          "provisioning": {"diskSelector": {"match": install_disk_match(selector)}}})
    elif selector:
        # a device path can change between boots; the selector replaces it entirely
        documents.append({"machine": {"install": {"disk": {"$patch": "delete"}, "diskSelector": dict(selector)}}})
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


def install_disk_match(selector):
    """machine.install.diskSelector as the CEL match of a v1.14 UnattendedInstallConfig, with the
    meaning Talos gives the old selector (contract.INSTALL_DISK_SELECTOR_CEL): a real transport,
    writable, no CD-ROM. Preflight has refused what has no CEL form."""
    terms = []
    for field, name in contract.INSTALL_DISK_SELECTOR_CEL.items():
        if field not in selector:
            continue
        if name is None:
            raise ValueError(f"install disk selector {field}: Talos v1.14 has no CEL form for it")
        if field == "size":
            operator, size = contract.install_disk_size(selector["size"])
            terms.append(f"disk.size {operator} {size}u")
        elif field != "type":
            terms.append(f"glob({_cel_string(selector[field])}, disk.{name})")
    terms.append('disk.transport != ""')
    if "type" in selector:
        terms.append(contract.INSTALL_DISK_TYPE_CEL[selector["type"]])
    return " && ".join(terms + ["!disk.readonly", "!disk.cdrom"])


def _cel_string(value):
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def contract_layout(patch, talos_version):
    """A patch written in the v1alpha1 layout (YAML text, one or more documents) as the list of
    documents the contract reads. From v1.14 the sections of contract.MULTIDOC_KUBERNETES_FIELDS
    move into their own documents (Talos refuses both) and cni none deletes flannel's document;
    older contracts get the documents as written."""
    documents = [doc for doc in yaml.safe_load_all(patch) if doc]
    if not contract.uses_multidoc_kubernetes(talos_version):
        return documents
    moved = {}
    for doc in documents:
        if "kind" in doc:
            continue
        for path, (kind, field) in contract.MULTIDOC_KUBERNETES_FIELDS.items():
            value = _pop(doc, path)
            if value is not None:
                document = moved.setdefault(kind, {"apiVersion": "v1alpha1", "kind": kind})
                # two v1alpha1 documents of one patch may both set a mapping: merged, as Talos merges them
                both = isinstance(value, dict) and isinstance(document.get(field), dict)
                document[field] = {**document[field], **value} if both else value
        if _dig(doc, ("cluster", "network", "cni", "name")) == "none":
            _pop(doc, ("cluster", "network", "cni", "name"))
            moved[contract.CNI_DOCUMENT] = {"apiVersion": "v1alpha1", "kind": contract.CNI_DOCUMENT,
                                            "$patch": "delete"}
    return [doc for doc in documents if doc] + list(moved.values())


def _dig(tree, path):
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _pop(tree, path):
    """Remove tree[path...] and return it, dropping the parents it leaves empty; None if absent."""
    parent = _dig(tree, path[:-1])
    if not isinstance(parent, dict) or path[-1] not in parent:
        return None
    value = parent.pop(path[-1])
    if not parent and len(path) > 1:
        _pop(tree, path[:-1])
    return value


def rendered_kubelet(config):
    """The kubelet settings ({extraConfig, extraArgs}) of a rendered config file's text, either layout."""
    return contract.rendered_kubelet(list(yaml.safe_load_all(config)))


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


def schematic_file(installer_, node):
    """The schematic file generate.yml writes beside a node's config (module_utils/schematic.py)."""
    return schematic.file_text(installer_, node)


def schematic_body(text):
    """A schematic file's text as register.yml posts it to the Image Factory (module_utils/schematic.py)."""
    return schematic.file_body(text)


def schematic_file_request(host, output_dir):
    """A host's variables -> what talos_schematic_files writes for it: its installer's schematic
    file beside its rendered config."""
    name = host["inventory_hostname"]
    return {"name": name, "node": host["talos_node_ip"], "path": f"{output_dir}/{name}.schematic.yaml",
            "installer": host["talos_node_installer"]}


def drift_request(host, output_dir, endpoint, controlplanes):
    """A host's variables -> what talos_config_drift asks of it: its rendered config's dry run, a
    control plane's on its own API, a worker's through the given control-plane endpoint."""
    name = host["inventory_hostname"]
    request = {"name": name, "node": host["talos_node_ip"], "config_path": f"{output_dir}/{name}.yaml"}
    return request if name in controlplanes else {**request, "endpoint": endpoint}


def cluster_setting_conflicts(hostvars, hosts, names, defaults):
    """One problem per cluster setting whose value is not the same on every host: a per-host or
    per-group value would be ignored, since the first host's values are the cluster's.

    hostvars: the hosts' variables (Ansible's hostvars); hosts: the cluster's hosts, in order;
    names: the settings; defaults: the role's defaults, for a host without the variable. Values
    are compared as written, before templating: templating a host's value here would see neither
    the role's defaults nor the play, and a value written as its default is the default."""
    def written(host_vars, name):
        """(what makes two values one, how the value is shown)"""
        value = host_vars.get(name, defaults.get(name))
        if VaultHelper.get_ciphertext(value, with_tags=False) is not None:
            # compared by its plain text (two encryptions of one value differ), never shown
            return str(value), "a vault-encrypted value"
        shown = json.dumps(value, sort_keys=True, default=str)
        # a scalar written with or without quotes ("30" or 30) is one value
        scalar = isinstance(value, (str, int, float)) and not isinstance(value, bool)
        return (str(value) if scalar else shown), shown

    if not hasattr(hostvars, "raw_get"):
        raise AnsibleFilterError("cluster_setting_conflicts: its input must be Ansible's hostvars (it reads each "
                                 "host's variables as written, through hostvars.raw_get)")
    hosts_by_value = {name: {} for name in names}
    for host in hosts:
        host_vars = hostvars.raw_get(host)  # as written in the inventory, not templated
        for name in names:
            key, shown = written(host_vars, name)
            hosts_by_value[name].setdefault(key, (shown, []))[1].append(host)
    problems = []
    for name in names:
        if len(hosts_by_value[name]) > 1:
            listed = "; ".join(f"{shown} on {', '.join(named)}" for shown, named in hosts_by_value[name].values())
            problems.append(
                f"{name} is not the same on every host ({listed}): a setting of the whole cluster has one value (a "
                f"per-host value would be ignored, or make the nodes' configs disagree). Set it once for every host "
                f"of the cluster (group_vars/all or the cluster's group), not per host or per role group")
    return problems


class FilterModule:
    def filters(self):
        return {
            "node_documents": node_documents,
            "contract_layout": contract_layout,
            "rendered_kubelet": rendered_kubelet,
            "disk_selector": disk_selector,
            "hugepage_kernel_args": resources.hugepage_kernel_args,
            "reserved_memory_per_numa": reserved_memory_per_numa,
            "memory_manager_inputs": resources.memory_manager_inputs,
            "kernel_args_target": contract.kernel_args_target,
            "merges_default_eviction": contract.merges_default_eviction,
            "installer": installer,
            "canonical_schematic": schematic.canonical_yaml,
            "schematic_file": schematic_file,
            "cluster_setting_conflicts": cluster_setting_conflicts,
            "drift_request": drift_request,
            "schematic_file_request": schematic_file_request,
            "schematic_body": schematic_body,
            "self_set_labels": node_restriction.self_set_labels,
        }
