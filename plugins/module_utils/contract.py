# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each Talos machine-config contract supports: the one place for version facts.

Sources: pkg/machinery/compatibility/talos1xx (Kubernetes ranges) and the config types of
each release (multi-document network config from v1.12, grubUseUKICmdline from v1.12).
"""

from __future__ import annotations

import re

# Talos minor -> (oldest, newest) Kubernetes minor it runs (machinery v1.14.1
# compatibility/talos1XX Minimum/MaximumKubernetesVersion)
KUBERNETES_RANGE = {
    (1, 8): ((1, 26), (1, 31)),
    (1, 9): ((1, 27), (1, 32)),
    (1, 10): ((1, 28), (1, 33)),
    (1, 11): ((1, 29), (1, 34)),
    (1, 12): ((1, 30), (1, 35)),
    (1, 13): ((1, 31), (1, 36)),
    (1, 14): ((1, 32), (1, 37)),
}
# The control-plane components Talos runs as static pods on each control plane; their mirror pods
# in kube-system carry the label k8s-app=<component> and a container of that name (machined's
# controllers/k8s/control_plane_static_pod.go), which is also how talosctl upgrade-k8s finds them
CONTROL_PLANE_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
# Every image a config names whose tag is the Kubernetes version (talosctl gen config --kubernetes-version)
KUBERNETES_IMAGES = ("kubelet", *CONTROL_PLANE_COMPONENTS, "kube-proxy")
# the contracts whose configs the collection renders (v1.10 is the oldest it validates)
RENDERED = tuple(minor for minor in KUBERNETES_RANGE if minor >= (1, 10))

# the disk fields a user volume is selected by (rendered as a UserVolumeConfig CEL match) and
# those of machine.install.diskSelector (pkg/machinery/config/types/v1alpha1 InstallDiskSelector)
VOLUME_DISK_FIELDS = ("serial", "wwid", "model", "dev_path")
# machine.install.diskSelector (machinery v1alpha1 InstallDiskSelector) field -> the disk's field
# in the CEL match of a v1.14 UnattendedInstallConfig, with the meaning Talos gives the old selector
# (v1alpha1 InstallConfig.DiskMatchExpression): size compared, type by INSTALL_DISK_TYPE_CEL, the
# others glob patterns; None: Talos has no CEL form for it
INSTALL_DISK_SELECTOR_CEL = {"size": "size", "name": None, "model": "model", "serial": "serial",
                             "modalias": "modalias", "uuid": "uuid", "wwid": "wwid", "type": "transport",
                             "busPath": "bus_path"}
INSTALL_DISK_SELECTOR_FIELDS = tuple(INSTALL_DISK_SELECTOR_CEL)
INSTALL_DISK_TYPE_CEL = {"nvme": 'disk.transport == "nvme"', "sd": 'disk.transport == "mmc"',
                         "hdd": "disk.rotational", "ssd": "!disk.rotational"}
# go-humanize ParseBytes' units (case-insensitive), which the selector's size is read with
_BYTE_UNITS = {"": 1, "b": 1, **{p + s: 1000 ** i for i, p in enumerate("kmgtpe", 1) for s in ("", "b")},
               **{p + s: 1024 ** i for i, p in enumerate("kmgtpe", 1) for s in ("i", "ib")}}
_DISK_SIZE = re.compile(r"^\s*(>=|<=|>|<|==)?\s*([0-9][0-9,]*(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


# Where a v1.14+ contract reads what older ones read from v1alpha1: section path -> (document,
# field). Talos refuses a config that sets both (machinery v1.14.1 config/types/k8s/*.go,
# V1Alpha1ConflictValidate; sysctls merge, the document winning: runtime/sysctl.go).
MULTIDOC_KUBERNETES_FIELDS = {
    ("machine", "kubelet", "clusterDNS"): ("KubeletConfig", "clusterDNS"),
    ("machine", "kubelet", "extraConfig"): ("KubeletConfig", "config"),
    ("machine", "kubelet", "extraArgs"): ("KubeletConfig", "extraArgs"),
    ("machine", "kubelet", "nodeIP"): ("KubeNodeConfig", "nodeIP"),
    ("machine", "nodeLabels"): ("KubeNodeConfig", "labels"),
    ("machine", "nodeTaints"): ("KubeNodeConfig", "taints"),
    ("machine", "nodeAnnotations"): ("KubeNodeConfig", "annotations"),
    ("machine", "sysctls"): ("SysctlConfig", "params"),
    ("cluster", "apiServer", "certSANs"): ("KubeAPIServerConfig", "certExtraSANs"),
    ("cluster", "apiServer", "extraArgs"): ("KubeAPIServerConfig", "extraArgs"),
    ("cluster", "controllerManager", "extraArgs"): ("KubeControllerManagerConfig", "extraArgs"),
}
# v1.14 deploys a CNI only when its document is present: cni none deletes flannel's
CNI_DOCUMENT = "KubeFlannelCNIConfig"

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?$")


def install_disk_size(condition):
    """The selector's size condition ('>= 1TB', '960GiB') as (CEL operator, bytes), None when
    Talos could not read it (InstallDiskSizeMatcher: an operator, then go-humanize ParseBytes)."""
    match = _DISK_SIZE.match(str(condition))
    unit = match and _BYTE_UNITS.get(match.group(3).lower())
    if not unit:
        return None
    return match.group(1) or "==", int(float(match.group(2).replace(",", "")) * unit)


def parse_version(text):
    """'v1.13.9' or '1.36.3' or 'v1.10' -> (major, minor, patch or None); None if malformed."""
    match = _VERSION.match(str(text).strip())
    if not match:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch) if patch is not None else None


def contract(talos_version):
    """The config contract (major, minor) a Talos version generates, e.g. (1, 13)."""
    parsed = parse_version(talos_version)
    if parsed is None:
        raise ValueError(f"not a Talos version: {talos_version!r} (expected vX.Y or vX.Y.Z)")
    return parsed[:2]


def known_contracts():
    return ", ".join(f"v{major}.{minor}" for major, minor in RENDERED)


def kubernetes_support_error(talos_version, kubernetes_version):
    """An error message if Talos cannot run this Kubernetes version, else None."""
    talos = contract(talos_version)
    kubernetes = parse_version(kubernetes_version)
    if kubernetes is None:
        return f"not a Kubernetes version: {kubernetes_version!r} (expected X.Y.Z)"
    if talos not in RENDERED:
        return f"Talos v{talos[0]}.{talos[1]} is not a contract this collection knows ({known_contracts()})"
    oldest, newest = KUBERNETES_RANGE[talos]
    if not oldest <= kubernetes[:2] <= newest:
        return (f"Kubernetes {kubernetes_version} is not supported by Talos v{talos[0]}.{talos[1]} "
                f"(supported: {oldest[0]}.{oldest[1]} to {newest[0]}.{newest[1]})")
    return None


def uses_multidoc_network(talos_version):
    """v1.12+ contracts configure hostname, links, VIP, resolvers and NTP as separate documents."""
    return contract(talos_version) >= (1, 12)


def uses_multidoc_kubernetes(talos_version):
    """v1.14+ contracts configure the kubelet, the Node, sysctls, the install and the control
    plane's components as separate documents, which conflict with their v1alpha1 sections."""
    return contract(talos_version) >= (1, 14)


def kernel_args_target(talos_version, boot_mode):
    """Where extra kernel args must go to take effect: 'install' or 'schematic'.

    GRUB reads machine.install.extraKernelArgs at install/upgrade time, but v1.12+ configs set
    grubUseUKICmdline (the two together fail validation); UKI/systemd-boot ignores the install
    section entirely and takes its command line from the Image Factory schematic.
    """
    if boot_mode == "grub" and not uses_multidoc_network(talos_version):
        return "install"
    return "schematic"


def supports_disable_access_time(talos_version):
    """UserVolumeConfig.mount.disableAccessTime (noatime) exists from v1.13."""
    return contract(talos_version) >= (1, 13)


def merges_default_eviction(kubernetes_version):
    """Whether the worker's kubelet config sets mergeDefaultEvictionSettings (the field exists from
    Kubernetes 1.33): one evictionHard signal would otherwise drop the kubelet's other defaults."""
    parsed = parse_version(kubernetes_version)
    return parsed is not None and parsed[:2] >= (1, 33)


def rendered_kubelet(documents):
    """The kubelet settings of a rendered config in either layout: {'extraConfig': {...},
    'extraArgs': {...}} from machine.kubelet or v1.14's KubeletConfig (whose extraConfig is
    called config)."""
    settings = {"extraConfig": {}, "extraArgs": {}}
    for doc in documents:
        if not isinstance(doc, dict):
            continue
        if doc.get("kind") == "KubeletConfig":
            source = {"extraConfig": doc.get("config"), "extraArgs": doc.get("extraArgs")}
        elif "kind" not in doc and isinstance(doc.get("machine"), dict):
            source = doc["machine"].get("kubelet") or {}
        else:
            continue
        for key, value in settings.items():
            value.update(source.get(key) or {})
    return settings
