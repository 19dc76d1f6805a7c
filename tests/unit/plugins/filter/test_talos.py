"""Unit tests for the talos filter plugin: contract-aware network documents and disk selectors."""

from __future__ import annotations

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible.parsing.vault import EncryptedString, VaultLib, VaultSecret, VaultSecretsContext
from ansible_collections.solanaops.talos.plugins.filter import talos
from ansible_collections.solanaops.talos.plugins.module_utils import contract, resources

CLUSTER = {
    "subnet": "10.0.1.0/24",
    "gateway": "10.0.1.1",
    "nameservers": ["10.0.1.2", "1.1.1.1"],
    "ntp_servers": ["time.cloudflare.com"],
}


def cp_node(**overrides):
    return {"hostname": "cp-1", "ip": "10.0.1.11", "link": {"name": "enp1s0"}, "mtu": 9000, "vip": "10.0.1.10",
            **overrides}


# --- v1.10: one legacy machine document ---------------------------------------------------------


def test_v1_10_single_machine_document_with_interface_name():
    documents = talos.node_documents(cp_node(), CLUSTER, "v1.10.6")
    assert documents == [{
        "machine": {
            "network": {
                "hostname": "cp-1",
                "interfaces": [{
                    "interface": "enp1s0",
                    "dhcp": False,
                    "addresses": ["10.0.1.11/24"],
                    "routes": [{"network": "0.0.0.0/0", "gateway": "10.0.1.1"}],
                    "mtu": 9000,
                    "vip": {"ip": "10.0.1.10"},
                }],
                "nameservers": ["10.0.1.2", "1.1.1.1"],
            },
            "time": {"servers": ["time.cloudflare.com"]},
        },
    }]


def test_v1_10_mac_link_uses_device_selector():
    node = cp_node(link={"mac": "aa:bb:cc:dd:ee:01"}, vip=None, mtu=None)
    (document,) = talos.node_documents(node, CLUSTER, "v1.10")
    (interface,) = document["machine"]["network"]["interfaces"]
    assert interface == {
        "deviceSelector": {"hardwareAddr": "aa:bb:cc:dd:ee:01"},
        "dhcp": False,
        "addresses": ["10.0.1.11/24"],
        "routes": [{"network": "0.0.0.0/0", "gateway": "10.0.1.1"}],
    }


@pytest.mark.parametrize(
    ("subnet", "ip", "address"),
    [("10.0.1.0/24", "10.0.1.20", "10.0.1.20/24"), ("10.0.0.0/16", "10.0.7.9", "10.0.7.9/16"),
     ("192.168.4.0/22", "192.168.5.1", "192.168.5.1/22")],
)
@pytest.mark.parametrize("version", ["v1.10", "v1.13.9"])
def test_address_prefix_comes_from_the_subnet(subnet, ip, address, version):
    documents = talos.node_documents(cp_node(ip=ip), {**CLUSTER, "subnet": subnet}, version)
    if contract.uses_multidoc_network(version):
        (link_config,) = [d for d in documents if d.get("kind") == "LinkConfig"]
        assert link_config["addresses"] == [{"address": address}]
    else:
        assert documents[0]["machine"]["network"]["interfaces"][0]["addresses"] == [address]


def test_v1_10_minimal_cluster_omits_optional_fields():
    node = {"hostname": "w-1", "ip": "10.0.1.20", "link": {"name": "eno1"}}
    assert talos.node_documents(node, {"subnet": "10.0.1.0/24", "gateway": "", "nameservers": [],
                                       "ntp_servers": []}, "v1.10") == [
        {"machine": {"network": {"hostname": "w-1", "interfaces": [
            {"interface": "eno1", "dhcp": False, "addresses": ["10.0.1.20/24"]}]}}}
    ]


# --- v1.13: separate documents --------------------------------------------------------------------


def test_v1_13_documents_with_named_link():
    documents = talos.node_documents(cp_node(mtu="9000"), CLUSTER, "v1.13.9")
    assert documents == [
        {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "hostname": "cp-1", "auto": "off"},
        {"apiVersion": "v1alpha1", "kind": "LinkConfig", "name": "enp1s0", "up": True,
         "addresses": [{"address": "10.0.1.11/24"}], "mtu": 9000, "routes": [{"gateway": "10.0.1.1"}]},
        {"apiVersion": "v1alpha1", "kind": "Layer2VIPConfig", "name": "10.0.1.10", "link": "enp1s0"},
        {"apiVersion": "v1alpha1", "kind": "ResolverConfig",
         "nameservers": [{"address": "10.0.1.2"}, {"address": "1.1.1.1"}]},
        {"apiVersion": "v1alpha1", "kind": "TimeSyncConfig", "ntp": {"servers": ["time.cloudflare.com"]}},
    ]


@pytest.mark.parametrize(
    ("link", "alias"),
    [({"mac": "AA:BB:CC:DD:EE:01"}, "net0"), ({"mac": "aa:bb:cc:dd:ee:01", "name": "uplink"}, "uplink")],
)
def test_v1_13_mac_link_gets_an_alias_with_lowercase_cel_selector(link, alias):
    documents = talos.node_documents(cp_node(link=link, vip=None), CLUSTER, "v1.12.0")
    kinds = [d["kind"] for d in documents]
    assert kinds == ["HostnameConfig", "LinkAliasConfig", "LinkConfig", "ResolverConfig", "TimeSyncConfig"]
    assert documents[1] == {"apiVersion": "v1alpha1", "kind": "LinkAliasConfig", "name": alias,
                            "selector": {"match": 'mac(link.permanent_addr) == "aa:bb:cc:dd:ee:01"'}}
    assert documents[2]["name"] == alias


def test_v1_13_vip_document_only_with_vip():
    without = talos.node_documents(cp_node(vip=None), CLUSTER, "v1.13")
    assert "Layer2VIPConfig" not in [d["kind"] for d in without]
    with_vip = talos.node_documents(cp_node(vip="10.0.1.10", link={"name": "bond0"}), CLUSTER, "v1.13")
    assert [d for d in with_vip if d["kind"] == "Layer2VIPConfig"] == [
        {"apiVersion": "v1alpha1", "kind": "Layer2VIPConfig", "name": "10.0.1.10", "link": "bond0"}]


def test_v1_13_minimal_cluster_omits_optional_documents():
    node = {"hostname": "w-1", "ip": "10.0.1.20", "link": {"name": "eno1"}}
    assert talos.node_documents(node, {"subnet": "10.0.1.0/24"}, "v1.13.9") == [
        {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "hostname": "w-1", "auto": "off"},
        {"apiVersion": "v1alpha1", "kind": "LinkConfig", "name": "eno1", "up": True,
         "addresses": [{"address": "10.0.1.20/24"}]},
    ]


# --- install disk selector --------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1.10.6", "v1.13.9"])
@pytest.mark.parametrize("selector", [{"serial": "S6XNNS0T100001"}, {"model": "SAMSUNG*", "size": ">= 400GB"}])
def test_install_disk_selector_document_comes_first(version, selector):
    documents = talos.node_documents(cp_node(install_disk_selector=selector), CLUSTER, version)
    assert documents[0] == {"machine": {"install": {"disk": {"$patch": "delete"}, "diskSelector": selector}}}
    assert documents[0]["machine"]["install"]["diskSelector"] is not selector
    assert len(documents) == (6 if contract.uses_multidoc_network(version) else 2)
    assert all("install" not in str(d.get("machine", {})) for d in documents[1:])


def test_v1_14_install_disk_selector_is_a_cel_match_of_unattended_install():
    selector = {"serial": "S6XN*", "model": 'SAMSUNG "PM9A3"', "type": "nvme", "busPath": "/pci0000:00/*"}
    documents = talos.node_documents(cp_node(install_disk_selector=selector), CLUSTER, "v1.14.1")
    assert documents[0] == {"apiVersion": "v1alpha1", "kind": "UnattendedInstallConfig", "provisioning": {
        "diskSelector": {"match": 'glob("SAMSUNG \\"PM9A3\\"", disk.model) && glob("S6XN*", disk.serial) && '
                                  'glob("/pci0000:00/*", disk.bus_path) && disk.transport != "" && '
                                  'disk.transport == "nvme" && !disk.readonly && !disk.cdrom'}}}
    assert not any("machine" in d for d in documents)


@pytest.mark.parametrize(("size", "term"), [
    (">= 1TB", "disk.size >= 1000000000000u"), ("960GiB", "disk.size == 1030792151040u"),
    ("< 1.5 tb", "disk.size < 1500000000000u"), ("<=512", "disk.size <= 512u")])
def test_v1_14_install_disk_size_is_compared_in_bytes(size, term):
    documents = talos.node_documents(cp_node(install_disk_selector={"size": size}), CLUSTER, "v1.14.1")
    assert documents[0]["provisioning"]["diskSelector"]["match"] == (
        f'{term} && disk.transport != "" && !disk.readonly && !disk.cdrom')


def test_v1_14_install_disk_selector_by_name_has_no_cel_form():
    with pytest.raises(ValueError, match="name: Talos v1.14 has no CEL form for it"):
        talos.node_documents(cp_node(install_disk_selector={"name": "/dev/sda", "serial": "S"}), CLUSTER, "v1.14.1")


@pytest.mark.parametrize("selector", [None, {}])
@pytest.mark.parametrize("version", ["v1.10", "v1.13", "v1.14"])
def test_no_install_disk_document_without_selector(selector, version):
    documents = talos.node_documents(cp_node(install_disk_selector=selector), CLUSTER, version)
    assert not any("install" in d.get("machine", {}) for d in documents)


# --- contract_layout ---------------------------------------------------------------------------------

PATCH = """
machine:
  certSANs: [10.0.1.10]
  kubelet:
    clusterDNS: [10.96.0.10]
    nodeIP: {validSubnets: [10.0.1.0/24]}
    extraConfig: {cpuManagerPolicy: static}
    extraArgs: {rotate-server-certificates: "true"}
  sysctls: {vm.max_map_count: "1000000"}
  nodeLabels: {solana.io/role: validator}
  nodeTaints: {solana.io/validator: "true:NoSchedule"}
cluster:
  apiServer: {certSANs: [10.0.1.10], extraArgs: {audit-log-maxage: "30"}}
  controllerManager: {extraArgs: {bind-address: 0.0.0.0}}
  etcd: {advertisedSubnets: [10.0.1.0/24]}
  network: {cni: {name: none}}
---
apiVersion: v1alpha1
kind: UserVolumeConfig
name: ledger
"""


def test_contract_layout_moves_kubernetes_sections_into_their_v1_14_documents():
    documents = talos.contract_layout(PATCH, "v1.14.1")
    by_kind = {d.get("kind", "v1alpha1"): d for d in documents}
    assert by_kind["v1alpha1"] == {"machine": {"certSANs": ["10.0.1.10"]},
                                   "cluster": {"etcd": {"advertisedSubnets": ["10.0.1.0/24"]}}}
    assert by_kind["KubeletConfig"] == {"apiVersion": "v1alpha1", "kind": "KubeletConfig", "clusterDNS": ["10.96.0.10"],
                                        "config": {"cpuManagerPolicy": "static"},
                                        "extraArgs": {"rotate-server-certificates": "true"}}
    assert by_kind["KubeNodeConfig"] == {"apiVersion": "v1alpha1", "kind": "KubeNodeConfig",
                                         "nodeIP": {"validSubnets": ["10.0.1.0/24"]},
                                         "labels": {"solana.io/role": "validator"},
                                         "taints": {"solana.io/validator": "true:NoSchedule"}}
    assert by_kind["SysctlConfig"]["params"] == {"vm.max_map_count": "1000000"}
    assert by_kind["KubeAPIServerConfig"] == {"apiVersion": "v1alpha1", "kind": "KubeAPIServerConfig",
                                              "certExtraSANs": ["10.0.1.10"],
                                              "extraArgs": {"audit-log-maxage": "30"}}
    assert by_kind["KubeControllerManagerConfig"]["extraArgs"] == {"bind-address": "0.0.0.0"}
    assert by_kind["KubeFlannelCNIConfig"] == {"apiVersion": "v1alpha1", "kind": "KubeFlannelCNIConfig",
                                               "$patch": "delete"}
    assert by_kind["UserVolumeConfig"]["name"] == "ledger"


def test_contract_layout_leaves_what_has_no_document_and_drops_an_emptied_one():
    documents = talos.contract_layout("machine:\n  kubelet:\n    image: k\n  sysctls: {a: '1'}\n", "v1.14")
    # Talos' own validation then refuses machine.kubelet beside nothing moved: left for it to name
    assert documents[0] == {"machine": {"kubelet": {"image": "k"}}}
    assert talos.contract_layout("machine: {sysctls: {a: '1'}}", "v1.14") == [
        {"apiVersion": "v1alpha1", "kind": "SysctlConfig", "params": {"a": "1"}}]
    assert talos.contract_layout("cluster: {network: {cni: {name: flannel}}}", "v1.14") == [
        {"cluster": {"network": {"cni": {"name": "flannel"}}}}]


@pytest.mark.parametrize("version", ["v1.10.6", "v1.13.9"])
def test_contract_layout_keeps_older_contracts_as_written(version):
    documents = talos.contract_layout(PATCH, version)
    assert documents[0]["machine"]["kubelet"]["extraConfig"] == {"cpuManagerPolicy": "static"}
    assert documents[0]["cluster"]["network"] == {"cni": {"name": "none"}}
    assert [d.get("kind") for d in documents] == [None, "UserVolumeConfig"]


# --- disk_selector ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("disk", "expected"),
    [
        ({"serial": "S6XN"}, 'disk.serial == "S6XN"'),
        ({"model": "SAMSUNG MZQL215THBLA", "serial": "S6XN"},
         'disk.serial == "S6XN" && disk.model == "SAMSUNG MZQL215THBLA"'),
        ({"wwid": "eui.0025388b91c0a001"}, 'disk.wwid == "eui.0025388b91c0a001"'),
        ({"dev_path": "/dev/nvme1n1"}, 'disk.dev_path == "/dev/nvme1n1"'),
        ({"dev_path": "/dev/nvme1n1", "wwid": "w", "model": "m", "serial": "s"},
         'disk.serial == "s" && disk.wwid == "w" && disk.model == "m" && disk.dev_path == "/dev/nvme1n1"'),
    ],
)
def test_disk_selector(disk, expected):
    assert talos.disk_selector(disk) == expected


@pytest.mark.parametrize("disk", [{"size": "15T"}, {"serial": "S6XN", "path": "/dev/nvme1n1"}, {}])
def test_disk_selector_rejects_unknown_or_empty(disk):
    with pytest.raises(ValueError, match="use one or more of serial, wwid, model, dev_path"):
        talos.disk_selector(disk)


# --- the resource filters -------------------------------------------------------------------------------------


def test_filter_reserved_memory_per_numa_splits_the_whole_reservation():
    parts = talos.reserved_memory_per_numa({"memory": "16Gi"}, {"memory": "16Gi"}, {"memory.available": "32Gi"}, 2)
    assert parts == [{"numaNode": 0, "limits": {"memory": "32768Mi"}},
                     {"numaNode": 1, "limits": {"memory": "32768Mi"}}]
    # no systemReserved: Talos reserves 384Mi of its own, and the kubelet counts it
    assert talos.reserved_memory_per_numa(None, None, {"memory.available": "3Mi"}, 2) == [
        {"numaNode": 0, "limits": {"memory": "194Mi"}}, {"numaNode": 1, "limits": {"memory": "193Mi"}}]
    # a merged evictionHard without memory.available gets the kubelet's 100Mi; an unmerged one none
    assert talos.reserved_memory_per_numa({"memory": "1Gi"}, {"memory": "1Gi"}, {}, 1) == [
        {"numaNode": 0, "limits": {"memory": "2148Mi"}}]
    assert talos.reserved_memory_per_numa({"memory": "1Gi"}, {"memory": "1Gi"}, {}, 1, False) == [
        {"numaNode": 0, "limits": {"memory": "2048Mi"}}]


def test_filter_map():
    filters = talos.FilterModule().filters()
    assert set(filters) == {"node_documents", "contract_layout", "rendered_kubelet", "disk_selector",
                            "hugepage_kernel_args", "reserved_memory_per_numa",
                            "kernel_args_target", "installer", "canonical_schematic", "self_set_labels",
                            "merges_default_eviction", "memory_manager_inputs", "schematic_file",
                            "cluster_setting_conflicts", "drift_request", "schematic_file_request", "schematic_body"}
    assert filters["hugepage_kernel_args"] is resources.hugepage_kernel_args
    assert filters["memory_manager_inputs"] is resources.memory_manager_inputs
    assert filters["kernel_args_target"] is contract.kernel_args_target
    assert filters["node_documents"] is talos.node_documents


def test_installer_derives_the_image_from_the_schematic_id():
    validator = talos.installer({"kernel_args": ["hugepagesz=2M", "hugepages=50000"], "extensions": []},
                                "factory.talos.dev", "v1.13.9")
    assert validator["schematic"] == {"customization": {"extraKernelArgs": ["hugepagesz=2M", "hugepages=50000"]}}
    derived = f"factory.talos.dev/metal-installer/{validator['id']}:v1.13.9"
    assert validator["image"] == derived
    control_plane = talos.installer({}, "127.0.1.5:5000", "v1.13.9")
    assert control_plane["id"] == "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
    assert control_plane["image"] == f"127.0.1.5:5000/metal-installer/{control_plane['id']}:v1.13.9"


def test_installer_keeps_a_hand_set_image_and_the_derived_one():
    empty = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
    mirrored = f"mirror.internal/metal-installer/{empty}:v1.13.9"
    result = talos.installer({}, "factory.talos.dev", "v1.13.9", image=mirrored)
    assert result["image"] == mirrored
    assert result["id"] == empty
    derived = talos.installer({}, "factory.talos.dev", "v1.13.9")["image"]
    assert derived == mirrored.replace("mirror.internal", "factory.talos.dev")


def test_schematic_file_names_the_node_id_and_installer_above_the_canonical_text():
    validator = talos.installer({"kernel_args": ["iommu=pt"], "extensions": []}, "127.0.1.5:5000", "v1.14.1")
    text = talos.schematic_file(validator, "solana-validator")
    assert text.splitlines()[:3] == [
        "# Image Factory schematic of solana-validator, rendered by solanaops.talos.",
        f"# schematic ID {validator['id']}",
        f"# installer    {validator['image']}"]
    body = text.split("\n", 3)[3]
    assert body == talos.schematic.canonical_yaml(validator["schematic"]) and text.endswith("iommu=pt\n")
    assert talos.schematic_body(text) == body
    # the body parses back to the schematic its ID names (the header is comments)
    assert talos.schematic.schematic_id(yaml.safe_load(text)) == validator["id"]
    assert talos.schematic.file_id(text) == validator["id"]
    assert talos.schematic.file_id(text.split("\n", 3)[3]) is None


def test_schematic_file_request_names_the_file_beside_the_config():
    validator = talos.installer({"kernel_args": ["iommu=pt"], "extensions": []}, "127.0.1.5:5000", "v1.14.1")
    host = {"inventory_hostname": "solana-validator", "talos_node_ip": "10.0.1.20", "talos_node_installer": validator}
    assert talos.schematic_file_request(host, "out/solana") == {
        "name": "solana-validator", "node": "10.0.1.20", "path": "out/solana/solana-validator.schematic.yaml",
        "installer": validator}


CLUSTER_DEFAULTS = {"talos_cluster_name": "solana", "talos_cluster_wait_step": 30,
                    "talos_cluster_kubeconfig": "{{ talos_cluster_output_dir }}/kubeconfig"}
CLUSTER_SETTINGS = ["talos_cluster_name", "talos_cluster_vip", "talos_cluster_dns_service_ips",
                    "talos_cluster_wait_step", "talos_cluster_kubeconfig"]


class HostVars(dict):
    """Ansible's hostvars as the filter reads them: each host's variables as written (raw_get)."""

    def raw_get(self, host):
        return self[host]


def test_cluster_setting_conflicts_names_each_setting_not_the_same_on_every_host():
    hosts = ["controlplane-1", "controlplane-2", "solana-validator"]
    hostvars = HostVars({
        "controlplane-1": {"talos_cluster_vip": "10.0.0.10", "talos_cluster_dns_service_ips": ["10.96.0.10"]},
        "controlplane-2": {"talos_cluster_vip": "10.0.0.10", "talos_cluster_dns_service_ips": ["10.96.0.10"]},
        "solana-validator": {"talos_cluster_vip": "10.0.0.9", "talos_cluster_dns_service_ips": ["10.96.0.11"],
                             "talos_cluster_wait_step": 10}})
    problems = talos.cluster_setting_conflicts(hostvars, hosts, CLUSTER_SETTINGS, CLUSTER_DEFAULTS)
    assert len(problems) == 3, problems
    # a setting without a default (the VIP) is compared too: each node would render its own
    assert problems[0].startswith('talos_cluster_vip is not the same on every host ("10.0.0.10" on controlplane-1, '
                                  'controlplane-2; "10.0.0.9" on solana-validator)')
    assert problems[1].startswith('talos_cluster_dns_service_ips is not the same on every host (["10.96.0.10"] on '
                                  'controlplane-1, controlplane-2; ["10.96.0.11"] on solana-validator)')
    # a host without the variable has the role default
    assert problems[2].startswith("talos_cluster_wait_step is not the same on every host (30 on "
                                  "controlplane-1, controlplane-2; 10 on solana-validator)")
    assert all("Set it once for every host of the cluster" in problem for problem in problems)
    assert talos.cluster_setting_conflicts(hostvars, hosts[:2], CLUSTER_SETTINGS, CLUSTER_DEFAULTS) == []
    with pytest.raises(AnsibleFilterError, match="its input must be Ansible's hostvars"):
        talos.cluster_setting_conflicts(dict(hostvars), hosts, CLUSTER_SETTINGS, CLUSTER_DEFAULTS)


def test_cluster_setting_conflicts_compares_values_as_written():
    hosts = ["controlplane-1", "solana-validator"]
    # the default written out for one group, quoted or not; a template compared as written (templating it
    # here would see no role default); a setting nobody sets
    hostvars = HostVars({"controlplane-1": {"talos_cluster_wait_step": "30", "talos_cluster_name": "solana",
                                            "talos_cluster_kubeconfig": "{{ talos_cluster_output_dir }}/kubeconfig"},
                         "solana-validator": {}})
    assert talos.cluster_setting_conflicts(hostvars, hosts, CLUSTER_SETTINGS, CLUSTER_DEFAULTS) == []
    hostvars["solana-validator"]["talos_cluster_kubeconfig"] = "{{ talos_cluster_output_dir }}/admin.kubeconfig"
    assert talos.cluster_setting_conflicts(hostvars, hosts, CLUSTER_SETTINGS, CLUSTER_DEFAULTS)[0].startswith(
        'talos_cluster_kubeconfig is not the same on every host ("{{ talos_cluster_output_dir }}/kubeconfig" on '
        'controlplane-1; "{{ talos_cluster_output_dir }}/admin.kubeconfig" on solana-validator)')


def test_cluster_setting_conflicts_compares_vaulted_values_by_their_text_and_never_shows_them():
    secret = VaultSecret(b"test-only")
    VaultSecretsContext.initialize(VaultSecretsContext(secrets=[("default", secret)]))

    def vaulted(text):  # each encryption has its own salt
        return EncryptedString(ciphertext=VaultLib([("default", secret)]).encrypt(text).decode())

    try:
        hosts = ["controlplane-1", "controlplane-2", "solana-validator"]
        hostvars = HostVars({"controlplane-1": {"talos_cluster_name": vaulted("validator-cluster")},
                             "controlplane-2": {"talos_cluster_name": vaulted("validator-cluster")},
                             "solana-validator": {"talos_cluster_name": vaulted("TOPSECRET-name")}})
        problems = talos.cluster_setting_conflicts(hostvars, hosts, CLUSTER_SETTINGS, CLUSTER_DEFAULTS)
        assert len(problems) == 1 and problems[0].startswith(
            "talos_cluster_name is not the same on every host (a vault-encrypted value on controlplane-1, "
            "controlplane-2; a vault-encrypted value on solana-validator)")
        assert "TOPSECRET" not in problems[0] and "validator-cluster" not in problems[0]
    finally:
        VaultSecretsContext._current = None


@pytest.mark.parametrize("layout", ["v1.13.9", "v1.14.1"])
def test_rendered_kubelet_reads_either_layout(layout):
    patch = "machine:\n  kubelet:\n    extraConfig: {cpuManagerPolicy: static}\n    extraArgs: {v: '2'}\n"
    documents = [{"version": "v1alpha1", "machine": {"type": "worker"}}, *talos.contract_layout(patch, layout)]
    text = "---\n".join(yaml.safe_dump(doc) for doc in documents)
    assert talos.rendered_kubelet(text) == {"extraConfig": {"cpuManagerPolicy": "static"}, "extraArgs": {"v": "2"}}


def test_contract_layout_merges_a_section_two_documents_set():
    patch = "machine: {nodeLabels: {a: '1'}}\n---\nmachine: {nodeLabels: {b: '2'}, sysctls: {x: '1'}}\n"
    documents = talos.contract_layout(patch, "v1.14.1")
    assert {d["kind"]: d for d in documents}["KubeNodeConfig"]["labels"] == {"a": "1", "b": "2"}


def test_drift_request_asks_a_worker_through_a_control_plane():
    hosts = {"controlplane-1": {"inventory_hostname": "controlplane-1", "talos_node_ip": "10.0.1.11"},
             "solana-validator": {"inventory_hostname": "solana-validator", "talos_node_ip": "10.0.1.20"}}
    requests = [talos.drift_request(host, "out/solana", "10.0.1.11", ["controlplane-1"]) for host in hosts.values()]
    assert requests == [
        {"name": "controlplane-1", "node": "10.0.1.11", "config_path": "out/solana/controlplane-1.yaml"},
        {"name": "solana-validator", "node": "10.0.1.20", "config_path": "out/solana/solana-validator.yaml",
         "endpoint": "10.0.1.11"}]
