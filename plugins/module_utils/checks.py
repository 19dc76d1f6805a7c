# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verification checks: each compares what the inventory implies with what the cluster reports
and yields a named result {name, subject, passed, expected, observed, detail}.

Expected values are computed from the inventory (module_utils/resources.py), never written by
hand, and quantities are compared parsed, so ``100000Mi`` and ``102400000Ki`` are equal while
``100Gi`` (51200 pages) is not.
"""

from __future__ import annotations

import re

from ansible_collections.solanaops.talos.plugins.module_utils import contract, resources


def result(name, subject, passed, expected, observed, detail=""):
    return {"name": name, "subject": subject, "passed": bool(passed),
            "expected": _plain(expected), "observed": _plain(observed), "detail": detail}


def information(name, subject, observed, detail=""):
    """What a check cannot fail on by construction (a built-in object that always exists): shown
    in the report, counted neither as passed nor as failed."""
    return {**result(name, subject, True, "information", observed, detail), "info": True}


def tagged(results, family):
    """The results of one check family, each naming it (the report wants every family present)."""
    return [{**r, "family": family} for r in results]


def family_checks(results, families):
    """One failure per expected check family with no result: a family that ran no check proves
    nothing, so its absence (a skipped or failed read, an empty inventory group) is a failure."""
    present = {r.get("family") for r in results if not r.get("info")}
    return tagged([result("check family", family, False, "at least one check", "none",
                          "no check of this family ran: its facts were not read or its inventory is empty")
                   for family in families if family not in present], "report")


def host_checks(facts_by_host, play_hosts):
    """Every host of the play had its facts read (talos_node_facts' result has what it booted): a
    host whose facts task failed, or that left the play before it, is a failure naming why, never
    silently absent. facts_by_host: {host: the registered talos_node_facts result, or None}."""
    results = []
    for host in play_hosts:
        facts = facts_by_host.get(host) or {}
        read = "boot" in facts
        observed = ("read" if read else f"not read: {facts['msg']}" if facts.get("msg")
                    else "not read (the host left the play before its facts were read)")
        results.append(result("node facts read", host, read, "read", observed))
    return results


def _plain(value):
    """JSON-friendly: Decimals as Kubernetes-style strings, containers recursively."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "normalize"):
        return resources.format_quantity(value)
    return value


def _condition(obj, kind):
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return condition
    return {}


def _quantity(values, name):
    raw = (values or {}).get(name)
    if raw is None:
        return None
    try:
        return resources.parse_quantity(raw)
    except ValueError:
        return None


# the kubelet's Ready message while the container runtime has no CNI (pkg/kubelet/kubelet.go)
_NETWORK_NOT_READY = "container runtime network not ready"
WAITING_FOR_CNI = "waiting for a CNI"


def node_readiness(node, cni="flannel"):
    """'True', WAITING_FOR_CNI (NotReady only because no CNI is installed, accepted only when
    the inventory's CNI is none) or the Ready status with the kubelet's message."""
    ready = _condition(node, "Ready")
    if ready.get("status") == "True":
        return "True"
    if cni == "none" and ready.get("status") == "False" and _NETWORK_NOT_READY in ready.get("message", ""):
        return WAITING_FOR_CNI
    return f"{ready.get('status', 'unknown')} ({ready.get('message') or ready.get('reason') or 'no message'})"


def ready_nodes(nodes, cni="flannel"):
    """Names of the nodes that count as ready: Ready, or with CNI none waiting for a CNI."""
    return [n["metadata"]["name"] for n in nodes if node_readiness(n, cni) in ("True", WAITING_FOR_CNI)]


def node_checks(nodes, expected_names, kubernetes_version=None, cni="flannel"):
    """Every expected node is registered and Ready (with CNI none: Ready or NotReady waiting for
    a CNI, reported as such), its kubelet at the inventory's Kubernetes version; and no Node the
    inventory does not declare."""
    by_name = {n["metadata"]["name"]: n for n in nodes}
    results = []
    for name in expected_names:
        node = by_name.get(name)
        results.append(result("node registered", name, node is not None, "registered",
                              "registered" if node else "missing"))
        if node is not None:
            readiness = node_readiness(node, cni)
            if cni == "none":
                results.append(result("node Ready or waiting for a CNI", name,
                                      readiness in ("True", WAITING_FOR_CNI), f"True or {WAITING_FOR_CNI}", readiness,
                                      "talos_cluster_cni is none: install a CNI (e.g. Cilium) to make nodes Ready"))
            else:
                ready = _condition(node, "Ready")
                results.append(result("node Ready", name, readiness == "True", "True", ready.get("status", "unknown"),
                                      ready.get("message", "")))
            if kubernetes_version:
                wanted = "v" + str(kubernetes_version).lstrip("v")
                running = ((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "unknown")
                results.append(result("kubelet version", name, running == wanted, wanted, running,
                                      "the node's kubelet image (KubeletConfig image; machine.kubelet.image "
                                      "before v1.14) runs another version: playbooks/upgrade_kubernetes.yml "
                                      "upgrades it"))
    for name in sorted(set(by_name) - set(expected_names)):
        results.append(result("no unexpected node", name, False, "not registered", "registered",
                              "a Node the inventory does not declare"))
    return results


def image_version(image):
    """The tag of an image reference ('registry.k8s.io/kube-apiserver:v1.36.3' -> 'v1.36.3'); the
    registry's port is not a tag, a digest is dropped."""
    name = str(image or "").split("@", 1)[0].rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[1] if ":" in name else None


def image_name(image):
    """The last path element of an image reference, without tag or digest ('kube-apiserver')."""
    return str(image or "").split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]


def control_plane_pods(pods):
    """kube-system pods -> {(component, node): version its container's image names}."""
    found = {}
    for pod in pods:
        component = ((pod.get("metadata") or {}).get("labels") or {}).get("k8s-app")
        if component not in contract.CONTROL_PLANE_COMPONENTS:
            continue
        containers = (pod.get("spec") or {}).get("containers") or []
        image = next((c.get("image") for c in containers if c.get("name") == component), None)
        found[(component, (pod.get("spec") or {}).get("nodeName"))] = image_version(image)
    return found


def kube_proxy_version(daemonsets):
    """The version the kube-proxy DaemonSet of Talos' bootstrap manifests runs, None without one
    (kube-proxy disabled, or replaced by the CNI)."""
    for daemonset in daemonsets:
        if (daemonset.get("metadata") or {}).get("name") != "kube-proxy":
            continue
        containers = ((((daemonset.get("spec") or {}).get("template") or {}).get("spec") or {})
                      .get("containers") or [])
        return next((image_version(c.get("image")) for c in containers if c.get("name") == "kube-proxy"), None)
    return None


def control_plane_checks(pods, controlplane_names, kubernetes_version, daemonsets=()):
    """Each control plane runs kube-apiserver, kube-controller-manager and kube-scheduler at the
    inventory's Kubernetes version (their mirror pods' images), and so does the kube-proxy
    DaemonSet when there is one."""
    wanted = "v" + str(kubernetes_version).lstrip("v")
    running = control_plane_pods(pods)

    def detail(component, node):
        if (component, node) not in running:
            return (f"no {component} mirror pod on this node: its static pod is not running "
                    f"(talosctl -n NODE get staticpodstatus; talosctl -n NODE logs {component})")
        return UPGRADE_HINT

    results = [result(f"{component} version", node, running.get((component, node)) == wanted, wanted,
                      running.get((component, node), "no pod"), detail(component, node))
               for node in controlplane_names for component in contract.CONTROL_PLANE_COMPONENTS]
    proxy = kube_proxy_version(daemonsets)
    if proxy is not None:
        results.append(result("kube-proxy version", "kube-system/kube-proxy", proxy == wanted, wanted, proxy,
                              UPGRADE_HINT))
    return results


UPGRADE_HINT = "another version than the inventory's: playbooks/upgrade_kubernetes.yml upgrades it"


def component_versions(pods, nodes, daemonsets=()):
    """Every Kubernetes version the cluster runs: its control-plane pods', the kube-proxy
    DaemonSet's and the kubelets' (Nodes)."""
    kubelets = [((n.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion") for n in nodes]
    return sorted({v for v in [*control_plane_pods(pods).values(), kube_proxy_version(daemonsets), *kubelets] if v})


def validator_checks(nodes, validator):
    """Capacity, allocatable, labels and taints of one validator node.

    validator: name, hardware {cpus, numa_nodes, memory}, hugepages {'2Mi': n, '1Gi': m},
    reserved_system_cpus, kube_reserved, system_reserved, eviction_hard, labels, taints.
    """
    name = validator["name"]
    node = next((n for n in nodes if n["metadata"]["name"] == name), None)
    if node is None:
        return [result("validator node registered", name, False, "registered", "missing")]
    status = node.get("status") or {}
    hugepages = validator.get("hugepages") or {}
    reservations = [validator.get(k) or {} for k in ("kube_reserved", "system_reserved", "eviction_hard")]
    # every expected figure comes from the inventory, never from what the node reports
    expected = resources.expected_node_resources(
        validator["hardware"], hugepages, validator.get("reserved_system_cpus"), *reservations)
    installed = resources.parse_quantity(validator["hardware"]["memory"])
    lowest = installed - resources.kernel_memory_reserve(installed)
    deducted = resources.hugepage_bytes(hugepages) + resources.memory_reservation(*reservations)
    capacity, allocatable = _quantity(status.get("capacity"), "memory"), _quantity(status.get("allocatable"), "memory")
    fmt = resources.format_quantity
    results = [
        result("capacity memory", name, capacity is not None and lowest <= capacity <= installed,
               f"{fmt(lowest)} to {fmt(installed)}", capacity if capacity is not None else "absent",
               f"MemTotal is the installed {fmt(installed)} less at most the kernel's reserve "
               f"(1/64 + 64Mi = {fmt(installed - lowest)})"),
        # the kubelet's rule: allocatable = MemTotal - huge pages - kube/system reserved - hard eviction,
        # every deduction the inventory's; with the capacity held to its window above, allocatable is
        # held to the same window less the deductions
        result("allocatable memory", name,
               allocatable is not None and capacity is not None and allocatable == capacity - deducted,
               f"memory capacity less {fmt(deducted)} (huge pages and reservations)"
               + ("" if capacity is None else f" = {fmt(capacity - deducted)}"),
               allocatable if allocatable is not None else "absent",
               "" if allocatable is None or capacity is None else
               f"the kubelet deducts {fmt(capacity - allocatable)}: its reservations or huge pages differ"),
    ]
    for kind in ("capacity", "allocatable"):
        for resource, wanted in expected[kind].items():
            if resource == "memory":
                continue  # checked above against the installed memory
            observed = _quantity(status.get(kind), resource)
            results.append(result(f"{kind} {resource}", name, observed == wanted, wanted,
                                  observed if observed is not None else "absent",
                                  _hugepage_hint(resource, wanted, observed)))
    labels = node["metadata"].get("labels") or {}
    for key, value in (validator.get("labels") or {}).items():
        results.append(result(f"label {key}", name, labels.get(key) == str(value), str(value),
                              labels.get(key, "absent")))
    taints = {(t["key"], t.get("value", ""), t["effect"]) for t in (node.get("spec") or {}).get("taints") or []}
    for taint in parse_taints(validator.get("taints") or {}):
        wanted = (taint["key"], taint["value"], taint["effect"])
        results.append(result(f"taint {taint['key']}", name, wanted in taints, f"{wanted[0]}={wanted[1]}:{wanted[2]}",
                              ", ".join(f"{k}={v}:{e}" for k, v, e in sorted(taints)) or "none"))
    return results


def _hugepage_hint(resource, wanted, observed):
    if not resource.startswith("hugepages-") or observed is None or observed == wanted:
        return ""
    page = resources.parse_quantity(resource.split("-", 1)[1])
    return f"{int(observed / page)} pages reported, {int(wanted / page)} configured"


def parse_taints(taints):
    """{'key': 'value:Effect'} (the Talos nodeTaints form) -> [{key, value, effect}]."""
    parsed = []
    for key, spec in taints.items():
        value, _sep, effect = str(spec).rpartition(":")
        parsed.append({"key": key, "value": value, "effect": effect})
    return parsed


def priority_class_checks(priority_classes, name, value):
    by_name = {p["metadata"]["name"]: p for p in priority_classes}
    ours = by_name.get(name)
    return [
        result("PriorityClass", name, ours is not None and ours.get("value") == int(value), int(value),
               ours.get("value") if ours else "missing"),
        # every cluster has it (the API server creates it): shown, never counted as a pass
        information("built-in PriorityClass", "system-cluster-critical",
                    "present" if "system-cluster-critical" in by_name else "missing"),
    ]


def storage_checks(storage_classes, volumes_by_node, class_prefix, persistent_volumes):
    """StorageClasses exist as local no-provisioner classes; each local PV is Bound or Available and
    is what postconfig creates from the inventory: its path /var/mnt/<volume>, its capacity, its
    node affinity (kubernetes.io/hostname In [node], nothing else) and its StorageClass."""
    classes = {s["metadata"]["name"]: s for s in storage_classes}
    pvs = {p["metadata"]["name"]: p for p in persistent_volumes}
    results = []
    names = sorted({v["name"] for volumes in volumes_by_node.values() for v in volumes})
    for volume in names:
        klass = classes.get(class_prefix + volume)
        wanted = "kubernetes.io/no-provisioner, WaitForFirstConsumer"
        observed = f"{klass.get('provisioner')}, {klass.get('volumeBindingMode')}" if klass else "missing"
        results.append(result("StorageClass", class_prefix + volume, observed == wanted, wanted, observed))
    for node, volumes in sorted(volumes_by_node.items()):
        for volume in volumes:
            pv_name = persistent_volume_name(node, volume["name"])
            pv = pvs.get(pv_name)
            if pv is None:
                results.append(result("PersistentVolume", pv_name, False, "present", "missing"))
                continue
            results += _persistent_volume_checks(pv_name, pv, node, volume, class_prefix)
    return results


def _persistent_volume_checks(pv_name, pv, node, volume, class_prefix):
    spec = pv.get("spec") or {}
    phase = (pv.get("status") or {}).get("phase") or "unknown"
    local = bool(spec.get("local"))
    path = (spec.get("local") or {}).get("path") or (spec.get("hostPath") or {}).get("path") or "none"
    wanted_path = f"/var/mnt/{volume['name']}"
    storage = _quantity(spec.get("capacity"), "storage")
    wanted_storage = resources.parse_quantity(volume["capacity"]) if volume.get("capacity") is not None else None
    terms = ((spec.get("nodeAffinity") or {}).get("required") or {}).get("nodeSelectorTerms") or []
    affinity = "; ".join(
        ", ".join(f"{e.get('key')} {e.get('operator')} [{', '.join(e.get('values') or [])}]"
                  for e in term.get("matchExpressions") or []) or "empty term"
        for term in terms) or "none"
    wanted_affinity = f"kubernetes.io/hostname In [{node}]"
    klass = spec.get("storageClassName") or "none"
    return [
        result("PersistentVolume phase", pv_name, phase in ("Bound", "Available"), "Bound or Available", phase),
        result("PersistentVolume path", pv_name, path == wanted_path and local, f"local {wanted_path}",
               f"{'local' if local else 'not local'} {path}"),
        result("PersistentVolume capacity", pv_name, storage is not None and storage == wanted_storage,
               wanted_storage if wanted_storage is not None else "an inventory capacity",
               storage if storage is not None else "absent"),
        result("PersistentVolume node affinity", pv_name, affinity == wanted_affinity, wanted_affinity, affinity),
        result("PersistentVolume StorageClass", pv_name, klass == class_prefix + volume["name"],
               class_prefix + volume["name"], klass),
    ]


def persistent_volume_name(node, volume):
    """The one naming rule for the local PVs, used by postconfig and verify alike."""
    return f"{node}-{volume}"


def talos_checks(facts, validator):
    """What the validator's kernel reports (talos_node_facts) against its tuning.

    validator: name, kernel_args, hugepages {'2Mi': n, '1Gi': m}, boot_mode, volumes, sysctls
    {name: value}, link {name}, mtu.
    """
    name, cmdline = validator["name"], facts.get("cmdline") or []
    ignored_hint = ("UKI boots take their kernel args from the installed image: install (or upgrade to) the "
                    f"image of {name}.schematic.yaml" if validator.get("boot_mode") == "uki" else "")
    results = kernel_arg_checks(cmdline, validator.get("kernel_args") or [], name, ignored_hint)
    hugepages = {size: int(count) for size, count in (validator.get("hugepages") or {}).items() if int(count)}
    meminfo = facts.get("meminfo") or {}
    total_kib = resources.hugepage_bytes(hugepages) // 1024
    results.append(result("huge pages reserved (Hugetlb)", name, meminfo.get("Hugetlb") == total_kib,
                          f"{total_kib} kB", f"{meminfo.get('Hugetlb', 'absent')} kB", ignored_hint))
    if hugepages:
        default = max(hugepages, key=lambda size: resources.HUGEPAGE_SIZES[size][0])
        page_kib = resources.HUGEPAGE_SIZES[default][0] // 1024
        results.append(result("Hugepagesize", name, meminfo.get("Hugepagesize") == page_kib, f"{page_kib} kB",
                              f"{meminfo.get('Hugepagesize', 'absent')} kB"))
        results.append(result("HugePages_Total", name, meminfo.get("HugePages_Total") == hugepages[default],
                              hugepages[default], meminfo.get("HugePages_Total", "absent"), ignored_hint))
        hardware = validator.get("hardware") or {}
        split = resources.boot_hugepages_per_node(default, hugepages[default], hardware.get("numa_nodes", 1),
                                                  hardware.get("cpus", 1))
        per_numa = [node.get("HugePages_Total") for node in facts.get("numa") or []]
        results.append(result("HugePages_Total per NUMA node", name, per_numa == split,
                              " + ".join(str(n) for n in split),
                              " + ".join(str(n) for n in per_numa) or "absent",
                              "the kernel spreads boot-time pages round-robin over the NUMA nodes"
                              + ("" if default == "1Gi" else ", each allocation thread's chunk from node 0")))
    kubelet = facts.get("kubelet_config")
    if kubelet is not None:
        for field, key in (("cpuManagerPolicy", "cpu_manager_policy"),
                           ("topologyManagerPolicy", "topology_manager_policy"),
                           ("memoryManagerPolicy", "memory_manager_policy"),
                           ("reservedSystemCPUs", "reserved_system_cpus")):
            if validator.get(key):
                results.append(result(f"kubelet {field}", name, str(kubelet.get(field)) == str(validator[key]),
                                      validator[key], kubelet.get(field, "unset")))
    results += sysctl_checks(facts, validator)
    mounts = {m["mountpoint"]: m["fstype"] for m in facts.get("mounts") or []}
    for volume in validator.get("volumes") or []:
        path, fstype = f"/var/mnt/{volume['name']}", volume.get("filesystem", "xfs")
        results.append(result(f"volume {volume['name']} mounted", name, mounts.get(path) == fstype,
                              f"{path} ({fstype})", f"{path} ({mounts[path]})" if path in mounts else "not mounted"))
    return results


def kernel_arg_checks(cmdline, kernel_args, name, absent_hint=""):
    """Each tuning kernel arg as the kernel reads it: for a key given once, the last value on the
    command line (a later ``iommu=off`` overrides ``iommu=pt``); for a key the tuning repeats
    (``hugepagesz``, ``hugepages``), its values in order at the end of that key's values. A flag
    without ``=`` only needs to be there."""
    def key_of(arg):
        return str(arg).split("=", 1)[0]

    on_cmdline, wanted = {}, {}
    for arg in cmdline:
        on_cmdline.setdefault(key_of(arg), []).append(arg)
    for arg in kernel_args:
        wanted.setdefault(key_of(arg), []).append(str(arg))
    results = []
    for key, args in wanted.items():
        seen = on_cmdline.get(key, [])
        tail = [None] * max(len(args) - len(seen), 0) + seen[-len(args):]
        for arg, observed in zip(args, tail, strict=True):
            passed = bool(seen) if "=" not in arg else observed == arg
            if not seen:
                shown, detail = "absent", absent_hint
            elif passed:
                shown, detail = observed or arg, ""
            else:
                shown = f"{observed or 'absent'} (the last of: {' '.join(seen)})"
                detail = "the kernel uses the last value of a parameter: a later one overrides the tuning"
            results.append(result(f"kernel arg {arg}", name, passed, arg, shown, detail))
    return results


def sysctl_checks(facts, validator):
    """Each configured sysctl as /proc/sys shows it, and the link's MTU as /sys/class/net shows it."""
    name, observed_sysctls = validator["name"], facts.get("sysctls") or {}
    results = []
    for key, value in sorted((validator.get("sysctls") or {}).items()):
        observed = observed_sysctls.get(key)
        results.append(result(f"sysctl {key}", name, observed is not None and kernel_printed(value) == observed,
                              kernel_printed(value), "no such sysctl" if observed is None else observed,
                              "" if observed is not None else "the kernel has no such sysctl: Talos cannot set it"))
    link, mtu = (validator.get("link") or {}).get("name"), validator.get("mtu")
    if link and mtu:
        observed = (facts.get("link_mtu") or {}).get(link)
        results.append(result(f"link {link} MTU", name, observed == int(mtu), int(mtu),
                              "no such link" if observed is None else observed,
                              "" if observed is None else "a NIC refuses an MTU above its maximum and keeps 1500"))
    return results


def kernel_printed(value):
    """A sysctl value as the kernel prints it back: integers in decimal, vectors tab-separated
    (``"4096 131072  268435456"`` -> ``"4096\t131072\t268435456"``)."""
    return "\t".join(str(int(field)) if re.fullmatch(r"-?[0-9]+", field) else field for field in str(value).split())


def service_checks(services_by_node, controlplane_nodes):
    """apid and kubelet Running and healthy on every node, etcd too on control planes.

    services_by_node: {node name: talos_node_facts' services (Talos lists running services only), None
    when they were not read: every wanted service then fails}."""
    results = []
    for node, services in services_by_node.items():
        wanted = ["apid", "kubelet"] + (["etcd"] if node in controlplane_nodes else [])
        for service in wanted:
            state = (services or {}).get(service)
            observed = ("not read" if services is None else "not running" if state is None
                        else "running, " + ("healthy" if state.get("healthy") else "not healthy"))
            healthy = bool(state and state.get("running") and state.get("healthy"))
            results.append(result(f"service {service}", node, healthy, "running, healthy", observed))
    return results


def boot_checks(facts, expected):
    """What a node booted (talos_node_facts' boot) against what its config installs.

    expected: name, installer {id, image}, talos_version, boot_mode, secureboot."""
    name, boot, installer = expected["name"], facts.get("boot") or {}, expected["installer"]
    upgrade = (f"a running node keeps the image it installed: upgrade it to {installer['image']} "
               "for the schematic's kernel args and extensions to take effect")
    observed_schematic = boot.get("schematic") or ("none (not an Image Factory image)" if boot else "not read")

    def flag(name, check, wanted, detail=""):
        # None (not read) never passes
        observed = boot.get(name)
        return result(check, expected["name"], observed is not None and observed == wanted, wanted,
                      "not read" if observed is None else observed, detail)

    return [
        result("booted schematic", name, boot.get("schematic") == installer["id"], installer["id"],
               observed_schematic, upgrade),
        result("Talos version", name, boot.get("talos_version") == expected["talos_version"],
               expected["talos_version"], boot.get("talos_version") or "not read"),
        flag("booted_with_uki", "booted with UKI", expected.get("boot_mode", "uki") == "uki",
             "talos_node_boot_mode must say how the node boots: uki (systemd-boot) or grub"),
        flag("secure_boot", "SecureBoot", bool(expected.get("secureboot"))),
    ]


def etcd_checks(etcd, controlplane_nodes):
    """What etcd said of itself (talos_etcd's status result, talos_node_facts' etcd): one member per
    control plane, all healthy, quorum, one leader."""
    quorum = etcd.get("quorum") or {}
    hostnames = sorted(m["hostname"] for m in etcd.get("members") or [])
    expected = len(controlplane_nodes)
    errors = "; ".join([f"{node}: {s['error']}" for node, s in (etcd.get("status") or {}).items() if "error" in s]
                       + ([etcd["error"]] if etcd.get("error") else []))
    return [
        result("etcd members", "etcd", hostnames == sorted(controlplane_nodes), ", ".join(sorted(controlplane_nodes)),
               ", ".join(hostnames) or "none"),
        result("etcd members healthy", "etcd", quorum.get("responding") == expected, f"{expected} of {expected}",
               f"{quorum.get('responding', 0)} of {quorum.get('members', 0)}", errors),
        result("etcd quorum", "etcd", quorum.get("has_quorum"), f"leader agreed by at least {expected // 2 + 1}",
               f"leader {quorum['leader']}" if quorum.get("has_quorum") else "lost", errors),
    ]


def status(result):
    """A result's word in every report: info (cannot fail), FAIL or ok."""
    return "info" if result.get("info") else "ok" if result["passed"] else "FAIL"


def ordered(results):
    """The order of every report: failures first, then passes, information last."""
    return sorted(results, key=lambda r: (bool(r.get("info")), r["passed"]))


def counts_line(results):
    """'23 passed, 1 failed, 1 information', the last line of every report; no check at all is a
    failure, never "0 passed"."""
    counted = [r for r in results if not r.get("info")]
    failed = sum(not r["passed"] for r in counted)
    informational = len(results) - len(counted)
    return (f"{len(counted) - failed} passed, {failed} failed"
            + (f", {informational} information" if informational else "")
            + ("" if counted else " (no check ran: nothing was verified)"))


def summarize(results):
    """A table a person reads at a glance, failures first, information last, the counts last."""
    rows = [("", "check", "subject", "expected", "observed")] + [
        (status(r), r["name"], r["subject"], _cell(r["expected"]),
         _cell(r["observed"]) + (f" ({r['detail']})" if r["detail"] and not r["passed"] else ""))
        for r in ordered(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row)).rstrip()
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.append(counts_line(results))
    return "\n".join(lines)


def counts(results):
    """(passed, failed, failure lines) over the counted checks; no check at all counts as one failure."""
    counted = [r for r in results if not r.get("info")]
    failures = [f"{r['name']} on {r['subject']}: expected {r['expected']}, observed {r['observed']}"
                + (f" ({r['detail']})" if r.get("detail") else "") for r in counted if not r["passed"]]
    if not counted:
        failures.append("no check ran: nothing was verified")
    return len(counted) - (len(failures) if counted else 0), len(failures), failures


def _cell(value):
    return value if isinstance(value, str) else str(value)
