# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inventory checks that run before any file is written or any node is touched.

``check_cluster`` returns every problem at once (errors) and what merely deserves attention
(warnings). Each message names the inventory field and the fix.
"""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.solanaops.talos.plugins.module_utils import contract, resources, schematic

_HOSTNAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# kernel args Talos rejects or that defeat validator pinning; value = what to do instead
_BAD_KERNEL_ARGS = {
    "numa_balancing=1": "drop it or use numa_balancing=disable (pinned validators want it off)",
    "numa_balancing=enable": "drop it or use numa_balancing=disable (pinned validators want it off)",
    "amd_iommu=on": "drop it: 'on' is not a valid value and AMD IOMMU is on by default (keep iommu=pt)",
}
_FILESYSTEMS = ("xfs", "ext4")


def check_cluster(cluster, nodes=None, worker=None, installer=None):
    """Check the cluster settings, the node topology (``nodes``), one tuned ``worker`` and the
    ``installer`` one node boots.

    Returns (errors, warnings), lists of strings.
    """
    errors, warnings = [], []
    _check_versions(cluster, errors)
    if nodes is not None:
        _check_image_settings(cluster, errors)
        network = _check_network(cluster, nodes, errors)
        _check_nodes(cluster, nodes, network, errors, warnings)
    if worker is not None:
        _check_tuning(cluster, worker, errors, warnings)
    if installer is not None:
        _check_installer(cluster, installer, errors)
    return errors, warnings


def _check_versions(cluster, errors):
    talos_version = cluster.get("talos_version")
    if contract.parse_version(talos_version or "") is None:
        errors.append(f"talos_cluster_talos_version: {talos_version!r} is not a version; use e.g. v1.13.9")
        return
    problem = contract.kubernetes_support_error(talos_version, cluster.get("kubernetes_version"))
    if problem:
        errors.append(f"talos_cluster_kubernetes_version: {problem}")


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
    node_ips = {str(node.get("ip")) for node in nodes}
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
        if str(address) in node_ips:
            errors.append(f"talos_cluster_{field}: {address} is also a node's IP; "
                          "the VIP and gateway must be addresses no node owns")
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
        try:
            address = ipaddress.ip_address(node.get("ip"))
        except (TypeError, ValueError):
            errors.append(f"{name}: talos_node_ip {node.get('ip')!r} is not an IP address")
            continue
        if network is not None and address not in network:
            errors.append(f"{name}: talos_node_ip {address} is outside talos_cluster_subnet {network}")
        disk = str(node.get("install_disk") or "")
        if disk and node.get("install_disk_selector"):
            errors.append(f"{name}: set talos_node_install_disk or talos_node_install_disk_selector, not both")
        elif re.match(r"^/dev/nvme\d+n\d+$", disk):
            warnings.append(f"{name}: talos_node_install_disk {disk}: NVMe names can change between boots; "
                            "prefer talos_node_install_disk_selector (serial, wwid or model)")


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
    try:
        hugepage_bytes = resources.hugepage_bytes(tuning.get("hugepages") or {})
        reservation = resources.memory_reservation(
            tuning.get("kube_reserved") or {}, tuning.get("system_reserved") or {},
            tuning.get("eviction_hard") or {}, contract.merges_default_eviction(cluster.get("kubernetes_version")))
    except (KeyError, ValueError) as exc:
        errors.append(f"{prefix}hugepages_2mi/hugepages_1gi/kube_reserved/system_reserved/eviction_hard: {exc}; "
                      "use page counts and absolute quantities such as 16Gi (percentages cannot be reserved "
                      "per NUMA node)")
        return
    pools = [size for size, count in (tuning.get("hugepages") or {}).items() if int(count)]
    if len(pools) > 1:
        errors.append(
            f"{prefix}hugepages_2mi and talos_solana_worker_hugepages_1gi: both pools cannot be allocated at "
            "boot on Talos. Talos builds the kernel command line with go-procfs, which groups repeated args, so "
            "'hugepagesz=2M hugepages=N hugepagesz=1G hugepages=M' boots as 'hugepagesz=2M hugepagesz=1G "
            "hugepages=N hugepages=M': the kernel gives the 1 GiB pool N pages and ignores M. Set one of the "
            "two to 0 (the firedancer profile uses 1 GiB pages only)")
    if hugepage_bytes + reservation >= memory:
        errors.append(
            f"{prefix}hugepages: {_gib(hugepage_bytes)} of huge pages plus {_gib(reservation)} reserved "
            f"do not fit in {_gib(memory)} of memory; lower the page counts or the reservations")
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


def _check_volumes(cluster, node, prefix, errors, warnings):
    names = set()
    for volume in node["tuning"].get("volumes") or []:
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
        if not disk:
            errors.append(f"{where}.disk: select the disk by serial, wwid, model or dev_path")
        elif set(disk) == {"dev_path"}:
            warnings.append(f"{where}.disk: dev_path {disk['dev_path']} can change between boots; "
                            "prefer serial or wwid")
        try:
            resources.parse_quantity(volume.get("capacity"))
        except ValueError:
            errors.append(f"{where}.capacity: {volume.get('capacity')!r} is not a quantity such as 15T")


def _gib(byte_count):
    return f"{float(byte_count) / resources.GI:.1f} GiB"
