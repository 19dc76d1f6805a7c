# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inventory checks that run before any file is written or any node is touched.

``check_cluster`` returns every problem at once (errors) and what merely deserves attention
(warnings). Each message names the inventory field and the fix.
"""

from __future__ import annotations

import difflib
import ipaddress
import re

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.solanaops.talos.plugins.module_utils import contract, resources, schematic

_HOSTNAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# kernel args Talos rejects or that defeat validator pinning; value = what to do instead
_BAD_KERNEL_ARGS = {
    "numa_balancing=1": "drop it or use numa_balancing=disable (pinned validators want it off)",
    "numa_balancing=enable": "drop it or use numa_balancing=disable (pinned validators want it off)",
    "amd_iommu=on": "drop it: 'on' is not a valid value and AMD IOMMU is on by default (keep iommu=pt)",
}
_FILESYSTEMS = ("xfs", "ext4")


# talos_preflight's options (its action plugin validates them too)
ARGUMENT_SPEC = {
    "cluster": {"type": "dict", "required": True},
    "nodes": {"type": "list", "elements": "dict"},
    "worker": {"type": "dict"},
    "installer": {"type": "dict"},
    "known_variables": {"type": "list", "elements": "str"},
    "node_settings": {"type": "dict"},
}
REQUIRED_ONE_OF = [("nodes", "worker", "installer")]


def run_checks(params):
    """talos_preflight's result (failed, listing every problem, when there is one) and its warnings."""
    errors, warnings = check_cluster(params["cluster"], params["nodes"], params["worker"],
                                     params["installer"], params["known_variables"], params["node_settings"])
    if errors:
        return {"failed": True, "msg": f"the inventory has {len(errors)} problem(s):\n- " + "\n- ".join(errors),
                "errors": errors, "warnings_found": warnings}, warnings
    return {"changed": False, "warnings_found": warnings}, warnings


def check_cluster(cluster, nodes=None, worker=None, installer=None, known_variables=None, node_settings=None):
    """Check the cluster settings, the node topology (``nodes``), one tuned ``worker`` and the
    ``installer`` one node boots. A node of ``nodes`` may carry its own ``worker`` (hardware
    and tuning), ``installer``, ``etcd_args``, ``variables`` (the names its inventory sets,
    checked against ``known_variables``) and ``settings`` (its own talos_node_* values, checked
    against the argument spec ``node_settings``), so one call checks the whole inventory. Settings
    refused by their argument spec are reported alone, as the spec itself would stop the run: the
    other checks would misread a value of the wrong type.

    Returns (errors, warnings), lists of strings; warnings naming a variable listed in
    ``cluster["silence"]`` are dropped.
    """
    errors, warnings = [], []
    if nodes is not None and node_settings:
        refused = _refused_node_settings(nodes, node_settings)
        if refused:
            return refused, warnings
    _check_versions(cluster, errors)
    if nodes is not None:
        _check_image_settings(cluster, errors)
        _check_cluster_services(cluster, errors, warnings)
        network = _check_network(cluster, nodes, errors)
        _check_nodes(cluster, nodes, network, errors, warnings)
        if known_variables is not None:
            _check_variable_names(nodes, known_variables, errors)
        for node in nodes:
            if any(node.get(field) is not None for field in _ARGS_VARIABLES):
                _check_component_args(node, errors)
            if node.get("etcd_args") is not None:
                _check_etcd(node, errors)
            if node.get("worker"):
                _check_tuning(cluster, {"name": node["name"], **node["worker"]}, errors, warnings)
            if node.get("installer"):
                _check_installer(cluster, {"name": node["name"], **node["installer"]}, errors)
    if worker is not None:
        _check_tuning(cluster, worker, errors, warnings)
    if installer is not None:
        _check_installer(cluster, installer, errors)
    silenced = [str(name) for name in cluster.get("silence") or []]
    warnings = [w for w in dict.fromkeys(warnings) if not any(name in w for name in silenced)]
    return list(dict.fromkeys(errors)), warnings


def _check_versions(cluster, errors):
    talos_version = cluster.get("talos_version")
    if not re.fullmatch(r"v\d+\.\d+\.\d+", str(talos_version or "")):
        errors.append(f"talos_cluster_talos_version: {talos_version!r} is not a Talos release tag such as v1.13.9 "
                      "(the installer images are tagged with it, 'v' and patch level included)")
        return
    if contract.contract(talos_version) not in contract.RENDERED:
        errors.append(f"talos_cluster_talos_version: {talos_version} is not a release whose config this collection "
                      f"renders ({contract.known_contracts()})")
        return
    kubernetes_version = cluster.get("kubernetes_version")
    problem = contract.kubernetes_support_error(talos_version, kubernetes_version)
    if problem:
        errors.append(f"talos_cluster_kubernetes_version: {problem}")
    elif contract.parse_version(kubernetes_version)[2] is None:
        errors.append(f"talos_cluster_kubernetes_version: {kubernetes_version!r} has no patch level; the "
                      "control-plane image tags are rendered from it and registry.k8s.io has no "
                      f"kube-apiserver:v{str(kubernetes_version).lstrip('v')}; use a full version such as 1.36.3")


def _check_image_settings(cluster, errors):
    if cluster.get("install_image"):
        errors.append(f"talos_cluster_install_image: {cluster['install_image']!r} is no longer used: one image for "
                      "every node would boot the validator's kernel args on the control planes. Each node's "
                      "installer is derived from its own schematic; remove it, point talos_cluster_image_factory "
                      "at your factory or mirror, or set talos_node_install_image on a host")
    factory = str(cluster.get("image_factory") or "")
    if not factory or "://" in factory or factory.endswith("/") or " " in factory:
        errors.append(f"talos_cluster_image_factory: {factory!r} must be the registry host (and port) installers "
                      "are pulled from, without a scheme, e.g. factory.talos.dev")


def _check_installer(cluster, node, errors):
    """The node's schematic renders, a control plane's carries no validator tuning, and a
    hand-set image names the rendered schematic for this Talos version."""
    name, role = node["name"], node.get("role")
    inputs = "talos_controlplane_kernel_args/extensions" if role == "controlplane" else \
        "talos_solana_worker_kernel_args/extensions"
    kernel_args = node.get("kernel_args") or []
    secureboot = bool(node.get("secureboot"))
    try:
        expected = schematic.installer(kernel_args, node.get("extensions") or [], cluster.get("image_factory") or "",
                                       cluster.get("talos_version"), secureboot)
    except schematic.SchematicError as exc:
        errors.append(f"{name}: {inputs}: {exc}")
        return
    tuning = schematic.validator_only_args(kernel_args)
    if role == "controlplane" and tuning:
        errors.append(f"{name}: talos_controlplane_kernel_args: {' '.join(tuning)} belong on the validator only; "
                      "a control plane booting them loses its memory to huge pages or its power management. "
                      "Remove them (control planes boot the empty schematic by default)")
    if secureboot and node.get("boot_mode") != "uki":
        errors.append(f"{name}: talos_node_secureboot needs talos_node_boot_mode uki (SecureBoot boots a signed UKI)")
    image = node.get("image")
    if not image:
        return
    parsed = schematic.parse_installer_image(image)
    if parsed is None:
        errors.append(f"{name}: talos_node_install_image: {image!r} is not an Image Factory installer "
                      "(<registry>/metal-installer/<schematic id>:<talos version>), so nothing can tell which "
                      f"kernel args it boots; remove it to install {expected['image']}, or name a mirror that "
                      "keeps the factory's paths")
        return
    if parsed["id"] != expected["id"]:
        errors.append(f"{name}: talos_node_install_image: {image} installs schematic {parsed['id']}, but this "
                      f"node's rendered schematic is {expected['id']}; use {expected['image']} (or remove the "
                      "override)")
    if parsed["tag"] != cluster.get("talos_version"):
        errors.append(f"{name}: talos_node_install_image: {image} is tagged {parsed['tag']}, but the cluster "
                      f"runs Talos {cluster.get('talos_version')} (talos_cluster_talos_version)")
    if parsed["secureboot"] != secureboot:
        errors.append(f"{name}: talos_node_install_image: {image} is the {parsed['flavour']} flavour but "
                      f"talos_node_secureboot is {secureboot}; use {expected['image']}")


# Talos' default pod and service networks (machinery constants DefaultIPv4PodNet and
# DefaultIPv4ServiceNet); the collection does not change them
_POD_NET = ipaddress.ip_network("10.244.0.0/16")
_SERVICE_NET = ipaddress.ip_network("10.96.0.0/12")


def _check_cluster_services(cluster, errors, warnings):
    """Cluster DNS inside the service network, the endpoint on the VIP, resolvers and time servers."""
    for address in cluster.get("dns_service_ips") or []:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            errors.append(f"talos_cluster_dns_service_ips: {address!r} is not an IP address")
            continue
        if ip not in _SERVICE_NET:
            errors.append(f"talos_cluster_dns_service_ips: {ip} is outside the service network {_SERVICE_NET}, "
                          "so no Service answers there and pods resolve nothing; use 10.96.0.10")
    endpoint = str(cluster.get("endpoint") or "")
    match = re.fullmatch(r"https://(\[[^]]+\]|[^:/]+):(\d+)/?", endpoint)
    if "endpoint" not in cluster:
        pass  # a partial description (the module's unit use)
    elif not match:
        errors.append(f"talos_cluster_endpoint: {endpoint!r} must be https://<VIP or name>:<port>, "
                      f"e.g. https://{cluster.get('vip')}:6443")
    else:
        host = match[1].strip("[]")
        if match[2] in ("50000", "50001"):
            errors.append(f"talos_cluster_endpoint: {endpoint} is Talos' API port ({match[2]}), not the Kubernetes "
                          "API; use port 6443")
        try:
            if ipaddress.ip_address(host) != ipaddress.ip_address(cluster.get("vip")):
                errors.append(f"talos_cluster_endpoint: {endpoint} names {host}, not the VIP "
                              f"{cluster.get('vip')}: the API would be reached through one node and lost with it; "
                              f"use https://{cluster.get('vip')}:6443")
        except ValueError:
            warnings.append(f"talos_cluster_endpoint: {endpoint} is a name: make sure it resolves to the VIP "
                            f"{cluster.get('vip')} from every node and client")
    for field, fallback in (("nameservers", "1.1.1.1 and 8.8.8.8"), ("ntp_servers", "time.cloudflare.com")):
        servers = cluster.get(field) or []
        if not servers:
            errors.append(f"talos_cluster_{field}: empty, so Talos falls back to {fallback}, which a validator "
                          "network behind a firewall may not reach (with static addressing nothing else is "
                          f"learnt); list your own, or those public ones explicitly to accept them")
        for server in servers:
            try:
                ip = ipaddress.ip_address(server)
            except ValueError:
                if field == "nameservers":
                    errors.append(f"talos_cluster_nameservers: {server!r} is not an IP address (resolvers are "
                                  "addresses)")
                continue
            if field == "nameservers" and ip.is_global:
                warnings.append(f"talos_cluster_nameservers: {ip} is a public resolver: node names and "
                                "registries resolve through a third party; prefer the site's resolvers "
                                "(silence with talos_cluster_preflight_silence: [talos_cluster_nameservers])")


def _check_variable_names(nodes, known_variables, errors):
    """A variable with one of the collection's prefixes that no role knows is most likely a typo:
    the role default applies silently."""
    known = sorted(set(known_variables))
    for node in nodes:
        for variable in node.get("variables") or []:
            if variable in known:
                continue
            close = difflib.get_close_matches(variable, known, n=1, cutoff=0.75)
            hint = f"did you mean {close[0]}?" if close else "no role reads it"
            errors.append(f"{node.get('name')}: {variable} is not a variable of this collection ({hint}); "
                          "the default applies instead. Rename or remove it")


def _refused_node_settings(nodes, spec):
    """Each node's own settings against their argument spec: what an entry point's argument spec
    checks of the one host that includes it, checked of every node at once (types, choices).
    The errors, each naming its node."""
    validator = ArgumentSpecValidator(spec)
    refused = []
    for node in nodes:
        settings = {name: value for name, value in (node.get("settings") or {}).items() if name in spec}
        refused += [f"{node.get('name')}: {message}" for message in validator.validate(settings).error_messages]
    return refused


# extra args Talos refuses ('extra arg "x" is not allowed'): it sets them itself
# (internal/app/machined/pkg/system/services/etcd.go, controllers/k8s/control_plane_static_pod.go)
_DENIED_ARGS = {
    "etcd_args": ("name", "auto-tls", "peer-auto-tls", "data-dir", "listen-peer-urls", "listen-client-urls",
                  "client-cert-auth", "cert-file", "key-file", "trusted-ca-file", "peer-client-cert-auth",
                  "peer-cert-file", "peer-key-file", "peer-trusted-ca-file", "initial-cluster",
                  "initial-cluster-state", "initial-advertise-peer-urls", "advertise-client-urls"),
    "apiserver_args": ("etcd-servers", "client-ca-file", "requestheader-client-ca-file", "proxy-client-cert-file",
                       "proxy-client-key-file", "encryption-provider-config", "etcd-cafile", "etcd-certfile",
                       "etcd-keyfile", "kubelet-client-certificate", "kubelet-client-key", "service-account-key-file",
                       "service-account-signing-key-file", "tls-cert-file", "tls-private-key-file",
                       "authorization-config"),
    "controller_manager_args": ("cluster-signing-cert-file", "cluster-signing-key-file", "authentication-kubeconfig",
                                "authorization-kubeconfig", "root-ca-file", "service-account-private-key-file"),
}
_ARGS_VARIABLES = {"etcd_args": "talos_controlplane_etcd_extra_args",
                   "apiserver_args": "talos_controlplane_apiserver_extra_args",
                   "controller_manager_args": "talos_controlplane_controller_manager_extra_args"}
# admission plugins removed from kube-apiserver (PodSecurityPolicy 1.25, PodPreset 1.20,
# SecurityContextDeny 1.30)
_REMOVED_ADMISSION_PLUGINS = {"PodSecurityPolicy", "PodPreset", "SecurityContextDeny"}
_GO_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")


def _check_component_args(node, errors):
    """Flags the components do not have, flags Talos owns, and durations without a unit."""
    for field, variable in _ARGS_VARIABLES.items():
        args = node.get(field) or {}
        prefix = f"{node.get('name')}: {variable}"
        for key, value in args.items():
            if "_" in key or key.startswith("-"):
                errors.append(f"{prefix}: {key!r} is not a flag name (flags are written with '-' and no leading "
                              f"dashes, e.g. {key.lstrip('-').replace('_', '-')})")
            elif key in _DENIED_ARGS[field]:
                errors.append(f"{prefix}: {key} is set by Talos itself, which refuses it as an extra arg "
                              "('extra arg is not allowed'); remove it")
            elif key == "enable-admission-plugins" and _REMOVED_ADMISSION_PLUGINS & set(str(value).split(",")):
                removed = sorted(_REMOVED_ADMISSION_PLUGINS & set(str(value).split(",")))
                errors.append(f"{prefix}: {key}: {', '.join(removed)} no longer exist; kube-apiserver refuses to "
                              "start with an unknown admission plugin. Remove them")
            elif field == "controller_manager_args" and key.endswith(("period", "timeout", "duration")) \
                    and not _GO_DURATION.match(str(value)):
                errors.append(f"{prefix}: {key} {value!r} is a duration and needs a unit, e.g. {value}s")


def _check_etcd(node, errors):
    """etcd refuses to start with an election timeout under 5 heartbeats or above 50 s
    (server/etcdmain/config.go, server/config/config.go)."""
    args = node.get("etcd_args") or {}
    prefix = f"{node.get('name')}: talos_controlplane_etcd_extra_args"
    try:
        heartbeat = int(args.get("heartbeat-interval", 100))
        election = int(args.get("election-timeout", 1000))
    except (TypeError, ValueError):
        errors.append(f"{prefix}: heartbeat-interval and election-timeout are whole milliseconds, "
                      f"got {args.get('heartbeat-interval')!r} and {args.get('election-timeout')!r}")
        return
    if heartbeat <= 0 or election < 5 * heartbeat:
        errors.append(f"{prefix}: election-timeout {election} must be at least 5 x heartbeat-interval "
                      f"({heartbeat}): etcd refuses to start; e.g. 5000 with 500")
    if election > 50000:
        errors.append(f"{prefix}: election-timeout {election} is above etcd's limit of 50000 ms")


def _has_disable_access_time(cluster):
    """Whether the contract has mount.disableAccessTime; True when the version is malformed
    (already reported) so no second, misleading error follows."""
    if contract.parse_version(cluster.get("talos_version") or "") is None:
        return True
    return contract.supports_disable_access_time(cluster["talos_version"])


def _check_network(cluster, nodes, errors):
    try:
        network = ipaddress.ip_network(cluster.get("subnet"), strict=True)
    except (TypeError, ValueError) as exc:
        errors.append(f"talos_cluster_subnet: {cluster.get('subnet')!r} is not a network CIDR ({exc}); "
                      "use e.g. 10.0.1.0/24")
        return None
    for name, other in (("pod", _POD_NET), ("service", _SERVICE_NET)):
        if network.overlaps(other):
            errors.append(f"talos_cluster_subnet: {network} overlaps Kubernetes' {name} network {other} "
                          "(Talos' default): node and cluster addresses would collide (the DNS service IP "
                          "10.96.0.10 could be a node's or the VIP); use another node subnet")
    if cluster.get("vip") and cluster.get("vip") == cluster.get("gateway"):
        errors.append(f"talos_cluster_vip: {cluster['vip']} is also the gateway; pick a free address in the subnet")
    for field in ("vip", "gateway"):
        value = cluster.get(field)
        if value in (None, "") and field == "gateway":
            continue
        try:
            address = ipaddress.ip_address(value)
        except (TypeError, ValueError):
            errors.append(f"talos_cluster_{field}: {value!r} is not an IP address")
            continue
        if address not in network:
            errors.append(f"talos_cluster_{field}: {address} is outside talos_cluster_subnet {network}")
        elif _network_or_broadcast(address, network):
            errors.append(f"talos_cluster_{field}: {address} is the network or broadcast address of "
                          f"{network}; pick a host address")
    return network


def _check_nodes(cluster, nodes, network, errors, warnings):
    controlplanes = [n for n in nodes if n.get("role") == "controlplane"]
    if not controlplanes:
        errors.append("talos_controlplane group: no control-plane node; add 3 hosts to it")
    elif len(controlplanes) % 2 == 0:
        errors.append(f"talos_controlplane group: {len(controlplanes)} control-plane nodes; etcd needs an "
                      "odd number (3 or 5) to keep quorum through a failure")
    elif len(controlplanes) < 3:
        warnings.append("talos_controlplane group: a single control-plane node has no failover; use 3")
    for field, label in (("name", "hostname"), ("ip", "IP")):
        seen = {}
        for node in nodes:
            seen.setdefault(str(node.get(field)), []).append(node.get("name"))
        for value, owners in seen.items():
            if len(owners) > 1:
                errors.append(f"talos_node_ip/hostnames: {label} {value} is used by {', '.join(owners)}; "
                              "each node needs its own")
    for node in nodes:
        name = str(node.get("name"))
        if not _HOSTNAME.fullmatch(name):
            errors.append(f"{name}: the inventory hostname is not a valid Kubernetes node name "
                          "(lowercase letters, digits and '-', at most 63)")
        if node.get("link") is None:
            errors.append(f"{name}: talos_node_link is not set; give the node's network link in its host vars, "
                          "{name: enp1s0} or {mac: aa:bb:cc:dd:ee:ff}")
        if node.get("ip") in (None, ""):
            errors.append(f"{name}: talos_node_ip is not set; give the node's static address in its host vars")
            continue
        try:
            address = ipaddress.ip_address(node.get("ip"))
        except (TypeError, ValueError):
            errors.append(f"{name}: talos_node_ip {node.get('ip')!r} is not an IP address")
            continue
        disk = str(node.get("install_disk") or "")
        if network is not None and address not in network:
            errors.append(f"{name}: talos_node_ip {address} is outside talos_cluster_subnet {network}")
        elif network is not None and _network_or_broadcast(address, network):
            errors.append(f"{name}: talos_node_ip {address} is the network or broadcast address of {network}; "
                          "pick a host address")
        for field in ("vip", "gateway"):
            if str(address) == str(cluster.get(field) or ""):
                errors.append(f"{name}: talos_node_ip {address} is also talos_cluster_{field}; the VIP and gateway "
                              "must be addresses no node owns: change one of them")
        _check_link(node, errors)
        _check_mtu(name, "talos_node_mtu", node.get("mtu"), errors)
        if disk and not disk.startswith("/dev/"):
            errors.append(f"{name}: talos_node_install_disk {disk!r} is not a device path; use e.g. /dev/{disk} "
                          "or, better, talos_node_install_disk_selector")
        _check_install_disk_selector(name, node.get("install_disk_selector") or {}, cluster, errors)
        if _link_needs_ifnames(node):
            errors.append(f"{name}: talos_node_link.name {node['link']['name']}: Talos names links predictably "
                          "(enp1s0, eno1, ...); ethN exists only with the net.ifnames=0 kernel arg. Use the "
                          "predictable name (talosctl get links) or select the link by mac")
        if disk and node.get("install_disk_selector"):
            errors.append(f"{name}: set talos_node_install_disk or talos_node_install_disk_selector, not both")
        elif re.match(r"^/dev/nvme\d+n\d+$", disk):
            warnings.append(f"{name}: talos_node_install_disk {disk}: NVMe names can change between boots; "
                            "prefer talos_node_install_disk_selector (serial, wwid or model)")


def _check_install_disk_selector(name, selector, cluster, errors):
    unknown = sorted(set(selector) - set(contract.INSTALL_DISK_SELECTOR_FIELDS))
    if unknown:
        errors.append(f"{name}: talos_node_install_disk_selector: {', '.join(unknown)} is not a field of Talos' "
                      f"install disk selector; use {', '.join(contract.INSTALL_DISK_SELECTOR_FIELDS)}")
    if "type" in selector and selector["type"] not in contract.INSTALL_DISK_TYPE_CEL:
        errors.append(f"{name}: talos_node_install_disk_selector.type {selector['type']!r} is not a disk type Talos "
                      f"knows; use one of {', '.join(contract.INSTALL_DISK_TYPE_CEL)}")
    if "size" in selector and contract.install_disk_size(selector["size"]) is None:
        errors.append(f"{name}: talos_node_install_disk_selector.size {selector['size']!r} is not a size condition "
                      "Talos reads; use e.g. '>= 1TB' or '960GiB' (an operator >=, <=, >, <, ==, then a number "
                      "and a unit)")
    version = cluster.get("talos_version")
    without_cel = [field for field in selector if contract.INSTALL_DISK_SELECTOR_CEL.get(field, "") is None]
    if without_cel and contract.parse_version(version) and contract.uses_multidoc_kubernetes(version):
        usable = [field for field, cel in contract.INSTALL_DISK_SELECTOR_CEL.items() if cel]
        errors.append(f"{name}: talos_node_install_disk_selector: {', '.join(without_cel)} cannot select the "
                      f"system disk from Talos v1.14 (its UnattendedInstallConfig selects by a CEL match that "
                      f"has no form for it); use {', '.join(usable)}")


def _link_needs_ifnames(node):
    """A link named ethN on a node that does not boot net.ifnames=0."""
    link = node.get("link") if isinstance(node.get("link"), dict) else {}
    kernel_args = (node.get("installer") or {}).get("kernel_args") or []
    return bool(re.fullmatch(r"eth\d+", str(link.get("name") or ""))) and "net.ifnames=0" not in kernel_args


def _network_or_broadcast(address, network):
    return network.prefixlen < network.max_prefixlen - 1 and address in (network.network_address,
                                                                         network.broadcast_address)


_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_LINK_NAME = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9_.]{0,14}$")
# what Talos and common NICs accept: 1280 (the IPv6 minimum Kubernetes networking needs) up
# to 9216 (the largest jumbo frame of datacenter NICs and switches)
MTU_RANGE = (1280, 9216)


def _check_link(node, errors):
    name, link = node.get("name"), node.get("link")
    if link is None:
        return  # reported as not set
    if not isinstance(link, dict) or not (link.get("name") or link.get("mac")):
        errors.append(f"{name}: talos_node_link {link!r} must be {{name: enp1s0}} or {{mac: aa:bb:cc:dd:ee:ff}}")
        return
    if link.get("mac") and not _MAC.match(str(link["mac"])):
        errors.append(f"{name}: talos_node_link.mac {link['mac']!r} is not a MAC address (six ':'-separated hex "
                      "pairs, e.g. aa:bb:cc:dd:ee:ff): no link would match and the node would have no address")
    if link.get("name") and not _LINK_NAME.match(str(link["name"])):
        errors.append(f"{name}: talos_node_link.name {link['name']!r} is not a Linux interface name "
                      "(at most 15 letters, digits, '-', '_' or '.')")


def _check_mtu(name, variable, mtu, errors):
    if mtu in (None, ""):
        return
    try:
        fits = MTU_RANGE[0] <= int(mtu) <= MTU_RANGE[1]
    except (TypeError, ValueError):
        fits = False
    if not fits:
        errors.append(f"{name}: {variable} {mtu!r} is outside {MTU_RANGE[0]}-{MTU_RANGE[1]} (Kubernetes needs "
                      "1280, NICs and switches stop at 9216); use 9000 for jumbo frames or 1500")


# the kubelet's manager policies (pkg/kubelet/apis/config/validation/validation.go, cm/cpumanager,
# cm/memorymanager): a value outside these stops the kubelet
_KUBELET_POLICIES = {
    "cpu_manager_policy": ("none", "static"),
    "topology_manager_policy": ("none", "best-effort", "restricted", "single-numa-node"),
    "topology_manager_scope": ("container", "pod"),
    "memory_manager_policy": ("None", "Static"),
}


def _check_kubelet_managers(tuning, reserved_cpus, prefix, errors):
    """What the kubelet refuses to start with, before the memory arithmetic."""
    for field, allowed in _KUBELET_POLICIES.items():
        if field in tuning and tuning[field] not in allowed:
            errors.append(f"{prefix}{field}: {tuning[field]!r} stops the kubelet; use one of {', '.join(allowed)} "
                          "(the values are case-sensitive)")
    if tuning.get("cpu_manager_policy") == "static":
        try:
            cpu_reservation = resources.effective_cpu_reservation(
                reserved_cpus, tuning.get("kube_reserved") or {}, tuning.get("system_reserved") or {})
        except ValueError:
            return  # reported with the quantities
        if cpu_reservation <= 0:
            errors.append(f"{prefix}cpu_manager_policy static needs CPUs kept from pods: the kubelet refuses to "
                          "start without; set talos_solana_worker_reserved_system_cpus (e.g. 0-3) or a cpu entry "
                          "in talos_solana_worker_kube_reserved/system_reserved")


def _check_tuning(cluster, node, errors, warnings):
    name, tuning = node["name"], node["tuning"]
    hardware = node.get("hardware") or {}
    prefix = f"{name}: talos_solana_worker_"
    try:
        cpus = int(hardware["cpus"])
        numa_nodes = int(hardware.get("numa_nodes", 1))
        memory = resources.parse_quantity(hardware["memory"])
        if cpus < 1 or numa_nodes < 1:
            raise ValueError("cpus and numa_nodes must be at least 1")
    except (KeyError, TypeError, ValueError):
        errors.append(f"{name}: talos_node_hardware: needs cpus, numa_nodes and memory (e.g. 512Gi) "
                      "to check the tuning")
        return
    try:
        reserved = resources.parse_cpuset(tuning.get("reserved_system_cpus", ""))
    except ValueError as exc:
        errors.append(f"{prefix}reserved_system_cpus: {exc}")
        reserved = set()
    outside = sorted(cpu for cpu in reserved if cpu >= cpus)
    if outside:
        errors.append(f"{prefix}reserved_system_cpus: CPUs {outside} do not exist on a {cpus}-CPU node "
                      f"(valid: 0-{cpus - 1})")
    if reserved and len(reserved) >= cpus:
        errors.append(f"{prefix}reserved_system_cpus: reserves all {cpus} CPUs; leave some for the validator")
    for field in ("kube_reserved", "system_reserved"):
        if reserved and "cpu" in (tuning.get(field) or {}):
            warnings.append(f"{prefix}{field}.cpu is ignored: reserved_system_cpus replaces it "
                            f"(effective CPU reservation: {len(reserved)})")
    _check_kubelet_managers(tuning, ",".join(str(cpu) for cpu in sorted(reserved)), prefix, errors)
    _check_hugepage_inputs(tuning, prefix, errors)
    _check_kubelet_inputs(tuning, prefix, errors)
    _check_labels_and_taints(tuning, prefix, errors)
    _check_sysctls(tuning, memory, prefix, errors)
    if tuning.get("mtu") not in (None, ""):
        _check_mtu(name, "talos_solana_worker_mtu", tuning.get("mtu"), errors)
    try:
        hugepage_bytes = resources.hugepage_bytes(tuning.get("hugepages") or {})
        reservation = resources.memory_reservation(
            tuning.get("kube_reserved") or {}, tuning.get("system_reserved") or {},
            tuning.get("eviction_hard") or {}, contract.merges_default_eviction(cluster.get("kubernetes_version")))
    except (KeyError, ValueError) as exc:
        culprits = [field for field in ("kube_reserved", "system_reserved", "eviction_hard")
                    if _unparsable(tuning.get(field))] or ["hugepages_2mi/talos_solana_worker_hugepages_1gi"]
        for field in culprits:
            errors.append(f"{prefix}{field}: {exc}; use absolute quantities in binary units such as 16Gi "
                          "(percentages cannot be reserved per NUMA node)")
        return
    pools = [size for size, count in (tuning.get("hugepages") or {}).items() if int(count)]
    if len(pools) > 1:
        errors.append(
            f"{prefix}hugepages_2mi and talos_solana_worker_hugepages_1gi: both pools cannot be allocated at "
            "boot on Talos. Talos builds the kernel command line with go-procfs, which groups repeated args, so "
            "'hugepagesz=2M hugepages=N hugepagesz=1G hugepages=M' boots as 'hugepagesz=2M hugepagesz=1G "
            "hugepages=N hugepages=M': the kernel gives the 1 GiB pool N pages and ignores M. Set one of the "
            "two to 0 (the firedancer profile uses 1 GiB pages only)")
    usable = resources.usable_memory(memory)
    if hugepage_bytes + reservation >= usable:
        errors.append(
            f"{prefix}hugepages_2mi/talos_solana_worker_hugepages_1gi: {_gib(hugepage_bytes)} of huge pages plus "
            f"{_gib(reservation)} reserved "
            f"do not fit in the {_gib(usable)} the kernel leaves of {_gib(memory)} installed (MemTotal is less "
            "than installed, and the kernel keeps 2 GiB from the pools); lower the page counts or the "
            "reservations")
    if tuning.get("memory_manager_policy") == "Static":
        if reservation == 0:
            errors.append(f"{prefix}memory_manager_policy Static needs a memory reservation "
                          "(kube_reserved, system_reserved or eviction_hard memory)")
        elif reservation % resources.MI:
            errors.append(f"{prefix}kube_reserved/system_reserved/eviction_hard: the memory reservations add up "
                          f"to {reservation} bytes, not a whole number of MiB, so reservedMemory cannot be split "
                          "per NUMA node; use binary units such as 16Gi")
    if numa_nodes > 8 and tuning.get("topology_manager_policy") not in (None, "none"):
        errors.append(f"{prefix}topology_manager_policy: {numa_nodes} NUMA nodes exceed the topology "
                      "manager's limit of 8")
    for arg in tuning.get("kernel_args") or []:
        if arg in _BAD_KERNEL_ARGS:
            errors.append(f"{prefix}kernel_args: {arg}: {_BAD_KERNEL_ARGS[arg]}")
    _check_volumes(cluster, node, prefix, errors, warnings)
    if tuning.get("legacy_disks"):
        errors.append(f"{prefix}disks: machine.disks is deprecated and always formats XFS; describe each disk "
                      "in talos_solana_worker_volumes (rendered as UserVolumeConfig documents)")
    if tuning.get("boot_mode") not in ("uki", "grub"):
        errors.append(f"{name}: talos_node_boot_mode {tuning.get('boot_mode')!r} must be 'uki' or 'grub' "
                      "(check `talosctl get securitystate`, field bootedWithUKI)")


_HUGEPAGE_ARGS = ("hugepages=", "hugepagesz=", "default_hugepagesz=", "hugetlb_cma=")


def _unparsable(reservations):
    try:
        for value in (reservations or {}).values():
            resources.parse_quantity(value)
    except (TypeError, ValueError):
        return True
    return False


# what the kubelet lets kube/system reserved name (pkg/kubelet/apis/config/validation) and the
# eviction signals it knows (pkg/kubelet/eviction/api)
_RESERVABLE = ("cpu", "memory", "ephemeral-storage", "pid")
_EVICTION_SIGNALS = ("memory.available", "allocatableMemory.available", "nodefs.available", "nodefs.inodesFree",
                     "imagefs.available", "imagefs.inodesFree", "containerfs.available", "containerfs.inodesFree",
                     "pid.available")


def _check_kubelet_inputs(tuning, prefix, errors):
    cpus = str(tuning.get("reserved_system_cpus") or "")
    if re.search(r"\s", cpus):
        errors.append(f"{prefix}reserved_system_cpus: {cpus!r} contains spaces; the kubelet's cpuset parser does "
                      "not trim them and refuses to start. Write it as " + repr(re.sub(r"\s", "", cpus)))
    for field in ("kube_reserved", "system_reserved"):
        unknown = sorted(set(tuning.get(field) or {}) - set(_RESERVABLE))
        if unknown:
            errors.append(f"{prefix}{field}: the kubelet cannot reserve {', '.join(unknown)} and refuses to start; "
                          f"use {', '.join(_RESERVABLE)}")
    unknown = sorted(set(tuning.get("eviction_hard") or {}) - set(_EVICTION_SIGNALS))
    if unknown:
        errors.append(f"{prefix}eviction_hard: {', '.join(unknown)} is not an eviction signal the kubelet knows "
                      f"(it refuses to start); use one of {', '.join(_EVICTION_SIGNALS)}")


def _check_hugepage_inputs(tuning, prefix, errors):
    """Page counts are whole and not negative, the client gets pages at all, and only the counts
    (never the free-form kernel args) set the pools."""
    counts = tuning.get("hugepages") or {}
    for size, variable in (("2Mi", "hugepages_2mi"), ("1Gi", "hugepages_1gi")):
        try:
            count = int(counts.get(size, 0))
        except (TypeError, ValueError):
            errors.append(f"{prefix}{variable}: {counts.get(size)!r} is not a page count")
            continue
        if count < 0:
            errors.append(f"{prefix}{variable}: {count} is negative; the kernel would boot with no pages. "
                          "Use a count such as 50000 (2 MiB) or 32 (1 GiB), or 0")
    try:
        total = sum(int(count) for count in counts.values())
    except (TypeError, ValueError):
        total = None
    if tuning.get("client") == "firedancer" and total == 0:
        errors.append(f"{prefix}hugepages_1gi: firedancer allocates almost all its memory from huge pages and "
                      "does not start without; set talos_solana_worker_hugepages_1gi (e.g. 32)")
    given = [arg for arg in tuning.get("extra_kernel_args") or [] if str(arg).startswith(_HUGEPAGE_ARGS)]
    if given:
        errors.append(f"{prefix}kernel_args: {' '.join(given)} set huge pages behind the counts' back (Talos "
                      "groups repeated args, so the pools would not be what either says); remove them and set "
                      "talos_solana_worker_hugepages_2mi / talos_solana_worker_hugepages_1gi")


# kernel defaults a validator's sysctls must never lower (fs.file-max: the kernel sizes it to
# about one file per 10 KiB of memory, files_maxfiles_init in fs/file_table.c)
_KERNEL_DEFAULTS = {
    "fs.nr_open": 1048576,
    "vm.max_map_count": 65530,
    "net.core.rmem_max": 212992,
    "net.core.wmem_max": 212992,
    "net.core.rmem_default": 212992,
    "net.core.wmem_default": 212992,
}


def _kernel_default(key, memory):
    """The kernel's default for a sysctl a validator must not lower, or None."""
    return memory // 10240 if key == "fs.file-max" else _KERNEL_DEFAULTS.get(key)


# sysctls whose values are words, not numbers
_TEXT_SYSCTLS = ("net.ipv4.tcp_congestion_control", "net.core.default_qdisc", "kernel.core_pattern",
                 "net.ipv4.tcp_allowed_congestion_control", "kernel.hostname", "kernel.domainname")


def _check_sysctls(tuning, memory, prefix, errors):
    sysctls = tuning.get("sysctls") or {}
    for key in ("vm.nr_hugepages", "vm.nr_overcommit_hugepages"):
        if key in sysctls:
            errors.append(f"{prefix}sysctls: {key} sets huge pages after boot, beside the boot-time pools of "
                          "talos_solana_worker_hugepages_2mi/_1gi (and fragments memory first); remove it")
    minimums = tuning.get("profile_sysctls") or {}
    for key, value in sysctls.items():
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            errors.append(f"{prefix}sysctls: {key} {value!r} is not a string; YAML turned it into "
                          f"{type(value).__name__}, which renders as {value!s}. Quote it, e.g. \"1\"")
            continue
        if key not in _TEXT_SYSCTLS and not re.fullmatch(r"-?\d+(\s+-?\d+)*", str(value).strip()):
            errors.append(f"{prefix}sysctls: {key} {value!r} is not a number the kernel accepts (no units: "
                          "write bytes or counts, e.g. 134217728)")
            continue
        try:
            number = int(str(value).split()[0])
        except (ValueError, IndexError):
            continue
        default = _kernel_default(key, memory)
        if default is not None and number < default:
            errors.append(f"{prefix}sysctls: {key} {value} lowers the kernel's default "
                          f"({default} on this node); remove it or raise it")
        elif key in minimums and number < int(minimums[key]):
            errors.append(f"{prefix}sysctls: {key} {value} is below the {tuning.get('client')} client's documented "
                          f"minimum {minimums[key]}; remove the override or raise it")


_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _label_key_problem(key):
    """Why Kubernetes refuses a label or taint key (apimachinery IsQualifiedName), or None."""
    prefix, _slash, name = str(key).rpartition("/")
    if not _LABEL_NAME.match(name):
        return "the name part must be at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric"
    if _slash and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return "the prefix before '/' must be a lowercase DNS subdomain"
    return None


def _check_labels_and_taints(tuning, prefix, errors):
    """What `talosctl validate` and the API server refuse in nodeLabels and nodeTaints."""
    for key, value in (tuning.get("labels") or {}).items():
        problem = _label_key_problem(key)
        if problem:
            errors.append(f"{prefix}labels: {key!r}: {problem}")
        if value not in (None, "") and not _LABEL_NAME.match(str(value)):
            errors.append(f"{prefix}labels: {key}={value!r}: a label value is at most 63 letters, digits, '-', '_' "
                          "or '.', starting and ending alphanumeric")
    for key, spec in (tuning.get("taints") or {}).items():
        problem = _label_key_problem(key)
        if problem:
            errors.append(f"{prefix}taints: {key!r}: {problem}")
        value, _sep, effect = str(spec).rpartition(":")
        if effect not in _TAINT_EFFECTS:
            errors.append(f"{prefix}taints: {key}: {spec!r} must be 'value:Effect' with Effect one of "
                          f"{', '.join(_TAINT_EFFECTS)} (case-sensitive), e.g. \"true:NoSchedule\"")
        elif value and not _LABEL_NAME.match(value):
            errors.append(f"{prefix}taints: {key}: the value {value!r} is not a valid label value")


def _check_volumes(cluster, node, prefix, errors, warnings):
    names, disks = set(), {}
    install = node["tuning"].get("install_disk") or {}
    for volume in node["tuning"].get("volumes") or []:
        selector = volume.get("disk") or {}
        key = tuple(sorted((str(k), str(v)) for k, v in selector.items()))
        if key and key in disks:
            errors.append(f"{prefix}volumes[{volume.get('name', '?')}].disk: the same disk as volume "
                          f"{disks[key]}; each volume needs its own disk (Talos gives a user volume a disk)")
        disks.setdefault(key, volume.get("name", "?"))
        if any(install.get(k) == v for k, v in selector.items() if k in ("serial", "wwid", "dev_path")):
            errors.append(f"{prefix}volumes[{volume.get('name', '?')}].disk: {selector} is the install disk "
                          "(talos_node_install_disk/_selector); the ledger would share it with the system. Use "
                          "another disk")
        vname = volume.get("name", "?")
        where = f"{prefix}volumes[{vname}]"
        if vname in names:
            errors.append(f"{where}: the volume name is used twice")
        names.add(vname)
        if not re.match(r"^[a-z0-9][-a-z0-9]{0,30}$", str(vname)):
            errors.append(f"{where}: name must be lowercase letters, digits and '-' (it mounts at /var/mnt/<name>)")
        filesystem = volume.get("filesystem", "xfs")
        if filesystem not in _FILESYSTEMS:
            errors.append(f"{where}.filesystem: {filesystem} is not supported by Talos user volumes "
                          "(btrfs and its zstd compression are unavailable); use xfs or ext4")
        if volume.get("mount_options"):
            alternative = ("set noatime: true (mount.disableAccessTime)"
                           if _has_disable_access_time(cluster)
                           else "noatime needs Talos v1.13 (mount.disableAccessTime)")
            errors.append(f"{where}.mount_options: user volumes take no free-form mount options "
                          f"({', '.join(volume['mount_options'])}); nobarrier risks corruption on power loss; "
                          f"{alternative}")
        if volume.get("noatime") and not _has_disable_access_time(cluster):
            errors.append(f"{where}.noatime: needs Talos v1.13 (mount.disableAccessTime); remove it for "
                          f"{cluster['talos_version']}")
        disk = volume.get("disk") or {}
        unknown = sorted(set(disk) - set(contract.VOLUME_DISK_FIELDS)) if isinstance(disk, dict) else ["?"]
        if not disk or unknown:
            errors.append(f"{where}.disk: select the disk by {', '.join(contract.VOLUME_DISK_FIELDS)}"
                          + (f" ({', '.join(map(str, unknown))} is not one)" if unknown and disk else ""))
        elif set(disk) == {"dev_path"}:
            warnings.append(f"{where}.disk: dev_path {disk['dev_path']} can change between boots; "
                            "prefer serial or wwid")
        try:
            resources.parse_quantity(volume.get("capacity"))
        except ValueError:
            errors.append(f"{where}.capacity: {volume.get('capacity')!r} is not a quantity such as 15T")


def _gib(byte_count):
    return f"{float(byte_count) / resources.GI:.1f} GiB"
