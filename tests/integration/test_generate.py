"""playbooks/generate.yml with the real talosctl on both inventories and both contracts."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible_collections.solanaops.talos.plugins.module_utils import contract as collection_contract
from ansible_collections.solanaops.talos.plugins.module_utils import resources, schematic, secret_files
from conftest import LOCAL_INVENTORY, leaked_secrets

REPO = Path(__file__).resolve().parents[2]
# extra vars per contract besides the inventories' own (v1.14), and the talosctl fixture that renders it
CONTRACTS = {"v1.10": (REPO / "tests/integration/vars/contract-v1.10.yml", "talosctl_legacy"),
             "v1.13": (REPO / "tests/integration/vars/contract-v1.13.yml", "talosctl_previous"),
             "v1.14": (None, "talosctl")}
CONTROLPLANES = ("controlplane-1", "controlplane-2", "controlplane-3")
WORKER = "solana-validator"
# the users' example and the testbed's loopback copy of it, by test id
INVENTORIES = {"prod": REPO / "inventory/prod", "local": LOCAL_INVENTORY}


def documents(path: Path) -> dict:
    """The config's documents: 'v1alpha1' for the main one, else 'Kind' or 'Kind/name'."""
    found = {}
    for doc in yaml.safe_load_all(path.read_text()):
        if "kind" not in doc:
            found["v1alpha1"] = doc
        else:
            found[doc["kind"] + (f"/{doc['name']}" if "name" in doc else "")] = doc
    return found


class Config:
    """A rendered config's settings wherever its contract keeps them: v1.14 moved the kubelet,
    the Node, sysctls and the install into documents of their own."""

    def __init__(self, path: Path, contract: str):
        # the collection's own fact of which contracts use the v1.14 documents
        self.docs, self.multidoc = documents(path), collection_contract.uses_multidoc_kubernetes(contract)
        self.machine = self.docs["v1alpha1"]["machine"]

    @property
    def kubelet(self) -> dict:
        """KubeletConfig's fields under their v1alpha1 names (config is extraConfig)."""
        if not self.multidoc:
            return self.machine.get("kubelet", {})
        document = {**self.docs["KubeletConfig"], "extraConfig": self.docs["KubeletConfig"].get("config", {})}
        return {key: value for key, value in document.items() if key != "config"}

    def node(self, field: str):
        """nodeLabels, nodeTaints (KubeNodeConfig's labels, taints)."""
        if not self.multidoc:
            return self.machine.get(field)
        return self.docs["KubeNodeConfig"].get({"nodeLabels": "labels", "nodeTaints": "taints"}[field])

    @property
    def sysctls(self) -> dict:
        return self.docs["SysctlConfig"]["params"] if self.multidoc else self.machine["sysctls"]

    @property
    def endpoint(self) -> str:
        if self.multidoc:
            return self.docs["KubeClusterConfig"]["endpoint"]
        return self.docs["v1alpha1"]["cluster"]["controlPlane"]["endpoint"]

    @property
    def install_image(self) -> str:
        if self.multidoc:
            return self.docs["UnattendedInstallConfig"]["installer"]["image"]
        return self.machine["install"]["image"]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class Deployment:
    """One inventory rendered into a private output folder."""

    def __init__(self, playbook, inventory, contract, talosctl, out):
        self.playbook, self.inventory, self.contract, self.out = playbook, inventory, contract, out
        self.args = ["-i", str(INVENTORIES[inventory]), "-e", f"talos_cluster_output_dir={out}",
                     "-e", f"talosctl_path={talosctl}", "-e", "talos_cluster_create_secrets=true"]
        self.vars = yaml.safe_load((INVENTORIES[inventory] / "group_vars/all/cluster.yml").read_text())
        contract_vars = CONTRACTS[contract][0]
        if contract_vars:
            self.args += ["-e", f"@{contract_vars}"]
            self.vars.update(yaml.safe_load(contract_vars.read_text()))

    def config(self, node: str) -> Config:
        return Config(self.out / f"{node}.yaml", self.contract)

    def run(self, *extra):
        return self.playbook("playbooks/generate.yml", *self.args, *extra)


# Both inventories on every contract; a second run changes nothing on each (the record names the
# contract's talosctl). The record's other tests (hand edits, a changed input, a vaulted bundle)
# run on the default contract only: what they check is decided before any contract's templates,
# and their five runs cost more than the first render.
DEFAULT_CONTRACT = "v1.14"
DEPLOYMENTS = [(inventory, contract) for contract in CONTRACTS for inventory in INVENTORIES]
ON_THE_DEFAULT_CONTRACT = pytest.mark.parametrize(
    "deployment", [d for d in DEPLOYMENTS if d[1] == DEFAULT_CONTRACT], indirect=True, ids="-".join)


@pytest.fixture(scope="module", params=DEPLOYMENTS, ids="-".join)
def deployment(request, playbook, tmp_path_factory):
    inventory, contract = request.param
    talosctl = request.getfixturevalue(CONTRACTS[contract][1])
    deployment = Deployment(playbook, inventory, contract, talosctl, tmp_path_factory.mktemp("out"))
    deployment.first = deployment.run()
    assert deployment.first.rc == 0, deployment.first.failure_messages() or deployment.first.stderr
    return deployment


def test_first_run_writes_everything_private(deployment):
    out = deployment.out
    assert deployment.first.changed > 0
    assert mode_of(out) == 0o700
    per_node = [f"{node}.{kind}" for node in (*CONTROLPLANES, WORKER) for kind in ("yaml", "record.json")]
    for name in ("secrets.yaml", "talosconfig", *per_node):
        assert mode_of(out / name) == 0o600, name
    talosconfig = yaml.safe_load((out / "talosconfig").read_text())
    endpoints = talosconfig["contexts"][deployment.vars["talos_cluster_name"]]["endpoints"]
    assert len(endpoints) == 3 and deployment.vars["talos_cluster_vip"] not in endpoints


def test_controlplane_configs(deployment):
    vip = deployment.vars["talos_cluster_vip"]
    for name in CONTROLPLANES:
        docs = documents(deployment.out / f"{name}.yaml")
        main = docs["v1alpha1"]
        assert main["machine"]["type"] == "controlplane"
        assert deployment.config(name).endpoint == f"https://{vip}:6443"
        etcd = main["cluster"]["etcd"]
        assert etcd["extraArgs"]["election-timeout"] == "5000"
        assert etcd["extraArgs"]["heartbeat-interval"] == "500"
        assert etcd["advertisedSubnets"] == [deployment.vars["talos_cluster_subnet"]]
        if deployment.contract == "v1.14":
            assert docs["KubeAPIServerConfig"]["certExtraSANs"] == [vip]
            assert "apiServer" not in main["cluster"] and "kubelet" not in main["machine"]
        else:
            assert vip in main["cluster"]["apiServer"]["certSANs"]
        if deployment.contract != "v1.10":
            assert docs["HostnameConfig"]["hostname"] == name
            assert docs[f"Layer2VIPConfig/{vip}"]["link"] == "enp1s0"
            assert "network" not in main["machine"] or "hostname" not in main["machine"]["network"]
        else:
            network = main["machine"]["network"]
            assert network["hostname"] == name
            assert network["interfaces"][0]["vip"] == {"ip": vip}


def test_worker_kubelet_and_resources(deployment):
    kubelet = deployment.config(WORKER).kubelet
    config = kubelet["extraConfig"]
    assert config["cpuManagerPolicy"] == "static"
    assert config["topologyManagerPolicy"] == "single-numa-node"
    assert config["topologyManagerScope"] == "pod"
    assert config["memoryManagerPolicy"] == "Static"
    assert config["reservedSystemCPUs"] == "0-3"
    # the memory manager refuses to start unless reservedMemory adds up exactly
    reserved = sum(resources.parse_quantity(n["limits"]["memory"]) for n in config["reservedMemory"])
    assert reserved == resources.parse_quantity("64Gi")
    assert [n["numaNode"] for n in config["reservedMemory"]] == [0, 1]
    assert "featureGates" not in config and "extraArgs" not in kubelet
    assert config.get("mergeDefaultEvictionSettings") is True  # every contract uses Kubernetes >= 1.33


def test_worker_sysctls_labels_and_no_unsupported_settings(deployment):
    config = deployment.config(WORKER)
    sysctls, machine = config.sysctls, config.machine
    assert all(isinstance(value, str) for value in sysctls.values())
    assert int(sysctls["vm.max_map_count"]) >= 1_000_000
    assert int(sysctls["net.core.rmem_max"]) >= 134_217_728
    assert "vm.nr_hugepages" not in sysctls
    assert config.node("nodeTaints") == {"solana.io/validator": "true:NoSchedule"}
    # the same taint at registration: the kubelet may not add it later (NodeRestriction)
    registered = config.kubelet["extraConfig"]["registerWithTaints"]
    assert registered == [{"key": "solana.io/validator", "value": "true", "effect": "NoSchedule"}]
    assert config.node("nodeLabels")["solana.io/role"] == "validator"
    assert "disks" not in machine and "files" not in machine
    assert "extensions" not in machine.get("install", {})
    if deployment.contract == "v1.14":  # Talos refuses the v1alpha1 sections beside their documents
        assert not {"kubelet", "sysctls", "nodeLabels", "nodeTaints", "install"} & set(machine)


def test_worker_volumes(deployment):
    docs = documents(deployment.out / f"{WORKER}.yaml")
    for name in ("ledger", "accounts", "snapshots"):
        volume = docs[f"UserVolumeConfig/{name}"]
        assert volume["filesystem"]["type"] == "xfs"
        assert volume["provisioning"]["diskSelector"]["match"].startswith("disk.")
        noatime = volume.get("mount", {}).get("disableAccessTime")
        # both inventories ask for noatime; v1.10 has no way to express it (preflight refuses it there)
        assert noatime is (None if deployment.contract == "v1.10" else True)


def test_worker_kernel_args_go_where_the_boot_mode_reads_them(deployment):
    install = deployment.config(WORKER).machine.get("install", {})
    schematic = deployment.out / f"{WORKER}.schematic.yaml"
    expected = {"hugepagesz=2M", "hugepages=50000", "iommu=pt", "numa_balancing=disable"}
    if deployment.contract == "v1.10":  # GRUB: the install section; the schematic has none
        assert expected <= set(install["extraKernelArgs"])
        assert yaml.safe_load(schematic.read_text()) == {"customization": {}}
    else:  # UKI: the Image Factory schematic
        assert "extraKernelArgs" not in install
        assert expected <= set(yaml.safe_load(schematic.read_text())["customization"]["extraKernelArgs"])
    for bad in ("numa_balancing=1", "amd_iommu=on"):
        assert bad not in (deployment.out / f"{WORKER}.yaml").read_text()


def test_each_node_installs_the_image_of_its_own_schematic(deployment):
    """Control planes boot the empty schematic, never the validator's; every image is
    <factory>/metal-installer/<id of the schematic written beside the config>:<talos version>."""
    factory, version = deployment.vars["talos_cluster_image_factory"], deployment.vars["talos_cluster_talos_version"]
    images = {}
    for name in (*CONTROLPLANES, WORKER):
        text = (deployment.out / f"{name}.schematic.yaml").read_text()
        identifier = schematic.schematic_id(yaml.safe_load(text))
        image = f"{factory}/metal-installer/{identifier}:{version}"
        assert f"# schematic ID {identifier}\n" in text and f"# installer    {image}\n" in text
        assert deployment.config(name).install_image == image
        images[name] = image
    assert {images[name] for name in CONTROLPLANES} == {f"{factory}/metal-installer/{schematic.EMPTY_ID}:{version}"}
    assert (images[WORKER] == images[CONTROLPLANES[0]]) is (deployment.contract == "v1.10")
    shown = [line for line in deployment.first.stdout.splitlines() if " boots " in line]
    assert any(f"{WORKER} boots {images[WORKER]}" in line for line in shown), shown


def test_a_tuning_change_in_check_mode_says_the_validator_needs_an_upgrade(deployment):
    if deployment.contract == "v1.10":
        pytest.skip("v1.10 with GRUB takes its kernel args from the install section, not the image")
    before = (deployment.out / f"{WORKER}.schematic.yaml").read_text()
    run = deployment.run("--check", "--diff", "-e", "talos_solana_worker_hugepages_2mi=40000")
    assert run.rc == 0, run.failure_messages()
    assert (deployment.out / f"{WORKER}.schematic.yaml").read_text() == before, "check mode wrote nothing"
    new_id = schematic.schematic_id(yaml.safe_load(before.replace("hugepages=50000", "hugepages=40000")))
    output = " ".join(run.stdout.split())
    assert f"{WORKER}: its installer changes from schematic {schematic.schematic_id(yaml.safe_load(before))} to " \
           f"{new_id}" in output
    assert "take effect only after an upgrade (talosctl upgrade -n" in output
    assert "its installer changes" not in output.replace(f"{WORKER}: its installer changes", "")


def test_worker_network(deployment):
    docs = documents(deployment.out / f"{WORKER}.yaml")
    if deployment.contract != "v1.10":
        link = docs["LinkConfig/enp1s0"]
        assert link["mtu"] == 9000 and link["addresses"][0]["address"].endswith("/24")
        assert docs["HostnameConfig"]["hostname"] == WORKER
    else:
        interface = docs["v1alpha1"]["machine"]["network"]["interfaces"][0]
        assert interface["mtu"] == 9000 and interface["dhcp"] is False


def test_no_secret_in_playbook_output(deployment):
    out = deployment.out
    texts = [(out / name).read_text() for name in ("secrets.yaml", "talosconfig",
                                                   *(f"{node}.yaml" for node in (*CONTROLPLANES, WORKER)))]
    assert len(set().union(*map(secret_files.secret_values, texts))) > 5
    assert leaked_secrets(deployment.first.stdout + deployment.first.stderr, *texts) == []


def records(out):
    """Each node's render record and when it was written: a render rewrites it."""
    return {path.name: path.stat().st_mtime_ns for path in out.glob("*.record.json")}


def test_second_run_changes_nothing(deployment):
    written = records(deployment.out)
    assert len(written) == len((*CONTROLPLANES, WORKER))
    again = deployment.run()
    assert again.unchanged, again.stats
    assert records(deployment.out) == written, "nothing changed: no node was rendered again"


@ON_THE_DEFAULT_CONTRACT
def test_a_re_run_renders_again_what_changed_since_the_record(deployment):
    """A node's render is skipped only while its record matches: a hand-edited config is
    rendered again (and restored), a changed input is seen (here in check mode, which writes nothing)."""
    config = deployment.out / f"{WORKER}.yaml"
    rendered = config.read_text()
    config.write_text(rendered + "# edited by hand\n")
    restored = deployment.run()
    assert restored.rc == 0, restored.failure_messages()
    assert restored.stats[WORKER]["changed"] == 1 and restored.changed == 1, restored.stats
    assert config.read_text() == rendered
    # a node whose config is up to date skips writing its schematic only while the file holds it
    schematic_file = deployment.out / f"{CONTROLPLANES[0]}.schematic.yaml"
    schematic_text, written = schematic_file.read_text(), records(deployment.out)
    schematic_file.write_text(schematic_text + "# edited by hand\n")
    rewritten = deployment.run()
    assert rewritten.stats[CONTROLPLANES[0]]["changed"] == 1 and rewritten.changed == 1, rewritten.stats
    assert schematic_file.read_text() == schematic_text and records(deployment.out) == written
    major_minor, _dot, patch = str(deployment.vars["talos_cluster_kubernetes_version"]).rpartition(".")
    earlier_patch = f"{major_minor}.{int(patch) - 1}"  # supported by the contract like the inventory's
    changed_input = deployment.run("--check", "-e", f"talos_cluster_kubernetes_version={earlier_patch}")
    assert changed_input.rc == 0, changed_input.failure_messages()
    assert all(changed_input.stats[node]["changed"] >= 1 for node in (*CONTROLPLANES, WORKER)), changed_input.stats
    assert config.read_text() == rendered and deployment.run().unchanged


@ON_THE_DEFAULT_CONTRACT
def test_vault_encrypted_secrets_render_the_same_configs(deployment, tmp_path):
    secrets = deployment.out / "secrets.yaml"
    password = tmp_path / "vault-pass"
    password.write_text("s3cret-pass\n")
    subprocess.run(["ansible-vault", "encrypt", "--vault-password-file", str(password), str(secrets)], check=True)
    for record in deployment.out.glob("*.record.json"):  # render from the decrypted bundle, not skip
        record.unlink()
    try:
        again = deployment.run("--vault-password-file", str(password))
        assert again.unchanged, again.failure_messages() or again.stats
        assert len(records(deployment.out)) == len((*CONTROLPLANES, WORKER)), "every node was rendered"
    finally:
        subprocess.run(["ansible-vault", "decrypt", "--vault-password-file", str(password), str(secrets)], check=True)


def test_check_mode_on_a_fresh_folder_writes_nothing(playbook, talosctl, tmp_path):
    out = tmp_path / "fresh"
    run = playbook("playbooks/generate.yml", "-i", str(LOCAL_INVENTORY), "--check",
                   "-e", f"talos_cluster_output_dir={out}", "-e", f"talosctl_path={talosctl}")
    assert run.rc == 0, run.failure_messages() or run.stderr
    assert run.changed > 0
    assert not out.exists()


def bad_inventory(tmp_path, controlplanes):
    inventory = tmp_path / "inventory"
    shutil.copytree(REPO / "inventory/prod/group_vars", inventory / "group_vars")
    (inventory / "hosts.yml").write_text(json.dumps({"talos_cluster": {"children": {
        "talos_controlplane": {"hosts": controlplanes},
        "talos_solana_worker": {"hosts": {WORKER: {"talos_node_ip": "10.0.1.20"}}}}}}))
    return inventory


def test_bad_topology_stops_before_anything_is_written(playbook, talosctl, tmp_path):
    twins = {"cp-1": {"talos_node_ip": "10.0.1.11"}, "cp-2": {"talos_node_ip": "10.0.1.11"}}
    inventory = bad_inventory(tmp_path, twins)
    out = tmp_path / "out"
    run = playbook("playbooks/generate.yml", "-i", str(inventory),
                   "-e", f"talos_cluster_output_dir={out}", "-e", f"talosctl_path={talosctl}")
    assert run.rc != 0
    message = "\n".join(run.failure_messages())
    assert "odd number" in message
    assert "10.0.1.11 is used by cp-1, cp-2" in message
    assert not out.exists()


def test_missing_node_settings_are_named_by_the_inventory_check(playbook, talosctl, tmp_path):
    """Without talos_node_link and the validator's talos_node_hardware, the inventory check names
    the link of every node and the validator's hardware, before any task reads them (none may fail
    first on an undefined variable)."""
    inventory = bad_inventory(tmp_path, {f"cp-{i}": {"talos_node_ip": f"10.0.1.1{i}"} for i in (1, 2, 3)})
    for name, setting in [("all/nodes.yml", "talos_node_link"), ("talos_solana_worker.yml", "talos_node_hardware")]:
        path = inventory / "group_vars" / name
        settings = yaml.safe_load(path.read_text())
        del settings[setting]
        path.write_text(yaml.safe_dump(settings))
    out = tmp_path / "out"
    run = playbook("playbooks/generate.yml", "-i", str(inventory),
                   "-e", f"talos_cluster_output_dir={out}", "-e", f"talosctl_path={talosctl}")
    assert run.rc != 0
    message = "\n".join(run.failure_messages())
    for node in ("cp-1", "cp-2", "cp-3", WORKER):
        assert f"{node}: talos_node_link is not set" in message, message
    assert f"{WORKER}: talos_node_hardware: needs cpus, numa_nodes and memory" in message, message
    assert "is undefined" not in message, message
    assert not out.exists()


def test_bad_tuning_stops_before_anything_is_written(playbook, talosctl, tmp_path):
    inventory = bad_inventory(tmp_path, {f"cp-{i}": {"talos_node_ip": f"10.0.1.1{i}"} for i in (1, 2, 3)})
    out = tmp_path / "out"
    run = playbook("playbooks/generate.yml", "-i", str(inventory), "-e", "talos_solana_worker_hugepages_2mi=300000",
                   "-e", '{"talos_solana_worker_reserved_system_cpus": "0-3,64-65"}',
                   "-e", f"talos_cluster_output_dir={out}", "-e", f"talosctl_path={talosctl}")
    assert run.rc != 0
    message = "\n".join(run.failure_messages())
    assert "do not fit in the 501.9 GiB the kernel leaves of 512.0 GiB installed" in message
    assert "CPUs [64, 65] do not exist on a 64-CPU node" in message
    assert not out.exists()


@pytest.mark.parametrize(("extra", "fragments"), [
    ({"talos_node_install_image": f"factory.talos.dev/metal-installer/{'ab' * 32}:v1.13.9"},
     ["cp-1: talos_node_install_image", f"installs schematic {'ab' * 32}",
      f"rendered schematic is {schematic.EMPTY_ID}"]),
    ({"talos_controlplane_kernel_args": ["hugepages=50000"]},
     ["cp-1: talos_controlplane_kernel_args: hugepages=50000 belong on the validator only"]),
    ({"talos_cluster_install_image": "ghcr.io/our-org/installer:custom-solana-v1.13.9"},
     ["talos_cluster_install_image", "no longer used"]),
], ids=["a control plane given another schematic's image", "huge pages on control planes",
        "the removed cluster-wide image"])
def test_a_wrong_installer_stops_before_anything_is_written(playbook, talosctl, tmp_path, extra, fragments):
    inventory = bad_inventory(tmp_path, {f"cp-{i}": {"talos_node_ip": f"10.0.1.1{i}"} for i in (1, 2, 3)})
    out = tmp_path / "out"
    run = playbook("playbooks/generate.yml", "-i", str(inventory), "-e", json.dumps(extra),
                   "-e", f"talos_cluster_output_dir={out}", "-e", f"talosctl_path={talosctl}")
    assert run.rc != 0
    message = "\n".join(run.failure_messages())
    for fragment in fragments:
        assert fragment in message, message
    assert not out.exists()


def test_the_validator_image_on_a_control_plane_is_refused(playbook, talosctl, tmp_path):
    """The mistake issue 8 found: the validator's installer given to a control plane."""
    inventory = bad_inventory(tmp_path, {f"cp-{i}": {"talos_node_ip": f"10.0.1.1{i}"} for i in (1, 2, 3)})
    good = tmp_path / "good"
    assert playbook("playbooks/generate.yml", "-i", str(inventory), "-e", f"talos_cluster_output_dir={good}",
                    "-e", f"talosctl_path={talosctl}", "-e", "talos_cluster_create_secrets=true").rc == 0
    validator_image = Config(good / f"{WORKER}.yaml", "v1.14").install_image
    hosts = json.loads((inventory / "hosts.yml").read_text())
    hosts["talos_cluster"]["children"]["talos_controlplane"]["hosts"]["cp-2"]["talos_node_install_image"] = \
        validator_image
    (inventory / "hosts.yml").write_text(json.dumps(hosts))
    out = tmp_path / "out"
    run = playbook("playbooks/generate.yml", "-i", str(inventory), "-e", f"talos_cluster_output_dir={out}",
                   "-e", f"talosctl_path={talosctl}")
    assert run.rc != 0
    message = "\n".join(run.failure_messages())
    assert f"cp-2: talos_node_install_image: {validator_image} installs schematic" in message, message
    version = yaml.safe_load((inventory / "group_vars/all/cluster.yml").read_text())["talos_cluster_talos_version"]
    assert f"use factory.talos.dev/metal-installer/{schematic.EMPTY_ID}:{version}" in message
    assert not out.exists()


@pytest.mark.parametrize(("extra", "fragment"), [
    ({"talos_cluster_cni": "cilium"}, "value of talos_cluster_cni must be one of: flannel, none, got: cilium"),
    ({"talos_solana_worker_hugepages_2mi": "lots"}, "'talos_solana_worker_hugepages_2mi' is of type str"),
], ids=["unknown CNI", "non-numeric page count"])
def test_role_argument_specs_run_before_anything_is_written(playbook, talosctl, tmp_path, extra, fragment):
    """The playbooks name each role entry point as meta/argument_specs.yml does (tasks_from:
    preflight, not preflight.yml): only then does Ansible validate its argument spec."""
    out = tmp_path / "out"
    run = playbook("playbooks/generate.yml", "-i", "inventory/prod", "-e", json.dumps(extra),
                   "-e", f"talos_cluster_output_dir={out}", "-e", f"talosctl_path={talosctl}")
    assert run.rc != 0
    assert fragment in "\n".join(run.failure_messages())
    assert not out.exists()


def test_a_missing_secrets_bundle_is_refused_unless_a_new_identity_is_asked_for(playbook, talosctl, tmp_path):
    """A lost bundle (a reinstall, a wiped directory) must stop the run: a new one would render
    configs with a CA the running nodes do not trust."""
    out = tmp_path / "out"
    args = ["-i", "inventory/prod", "-e", f"talos_cluster_output_dir={out}", "-e", f"talosctl_path={talosctl}"]
    refused = playbook("playbooks/generate.yml", *args)
    assert refused.rc != 0
    (message,) = refused.failure_messages()
    assert f"talos_cluster_secrets_file {out}/secrets.yaml does not exist" in message, message
    assert "-e talos_cluster_create_secrets=true" in message
    assert not out.exists()
    created = playbook("playbooks/generate.yml", *args, "-e", "talos_cluster_create_secrets=true")
    assert created.rc == 0, created.failure_messages()
    assert (out / "secrets.yaml").is_file()
    # once it exists, the default (no new identity) renders from it and changes nothing
    again = playbook("playbooks/generate.yml", *args)
    assert again.unchanged, again.failure_messages() or again.stats


def test_the_state_defaults_to_beside_the_inventory(playbook, talosctl, tmp_path):
    inventory = tmp_path / "inventory"
    shutil.copytree(LOCAL_INVENTORY, inventory, ignore=shutil.ignore_patterns("state"))
    run = playbook("playbooks/generate.yml", "-i", str(inventory), "--check", "-e", f"talosctl_path={talosctl}",
                   "-e", "talos_cluster_create_secrets=false")
    # in check mode nothing is written; the refusal names where the bundle is looked for
    assert run.rc != 0
    assert f"talos_cluster_secrets_file {inventory}/state/solana-local/secrets.yaml does not exist" in \
        "\n".join(run.failure_messages())


def test_v1_14_refuses_a_patch_that_keeps_a_section_its_documents_replaced(playbook, talosctl, tmp_path):
    """Talos v1.14 refuses machine.kubelet beside KubeletConfig (and nodeLabels beside
    KubeNodeConfig): talosctl's validation stops the run before any file is written."""
    out = tmp_path / "out"
    patch = {"machine": {"kubelet": {"extraArgs": {"max-pods": "250"}}, "nodeLabels": {"team": "validators"}}}
    run = playbook("playbooks/generate.yml", "-i", str(INVENTORIES["prod"]),
                   "-e", json.dumps({"talos_solana_worker_patches": [patch]}),
                   "-e", f"talos_cluster_output_dir={out}", "-e", f"talosctl_path={talosctl}",
                   "-e", "talos_cluster_create_secrets=true")
    assert run.rc != 0
    message = "\n".join(run.failure_messages())
    for fragment in ("kubelet config is already set in v1alpha1 config (.machine.kubelet)",
                     ".machine.nodeLabels is already set in v1alpha1 config", "talos_solana_worker_patches"):
        assert fragment in message, message
    assert not any(out.glob("*.yaml")), "nothing is written"


def test_v1_14_selects_the_system_disk_by_a_cel_match(playbook, talosctl, tmp_path):
    """talos_node_install_disk_selector becomes UnattendedInstallConfig's CEL match, which
    talosctl v1.14 accepts; name, which has no CEL form, is refused by preflight."""
    out = tmp_path / "out"
    args = ["-i", str(INVENTORIES["prod"]),
            "-e", f"talos_cluster_output_dir={out}", "-e", f"talosctl_path={talosctl}",
            "-e", "talos_cluster_create_secrets=true"]
    selector = {"talos_node_install_disk": "",
                "talos_node_install_disk_selector": {"model": "SAMSUNG*", "type": "nvme", "size": ">= 1TB"}}
    run = playbook("playbooks/generate.yml", *args, "-e", json.dumps(selector))
    assert run.rc == 0, run.failure_messages()
    install = documents(out / f"{WORKER}.yaml")["UnattendedInstallConfig"]
    assert install["provisioning"]["diskSelector"]["match"] == (
        'disk.size >= 1000000000000u && glob("SAMSUNG*", disk.model) && disk.transport != "" && '
        'disk.transport == "nvme" && !disk.readonly && !disk.cdrom')
    by_name = {"talos_node_install_disk": "", "talos_node_install_disk_selector": {"name": "/dev/sda"}}
    refused = playbook("playbooks/generate.yml", *args, "-e", json.dumps(by_name))
    assert refused.rc != 0
    assert "name cannot select the system disk from Talos v1.14" in "\n".join(refused.failure_messages())
