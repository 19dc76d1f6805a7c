"""The collection's offline schematic IDs against the Image Factory's own package, running in
testbed/imagefactory (github.com/siderolabs/image-factory/pkg/schematic): its `id` command, its
HTTP API (register as a user would upload) and the installer pull the emulated machines use."""

from __future__ import annotations

import json
import random
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from ansible_collections.solanaops.talos.plugins.module_utils import schematic
from conftest import PINS, REPO, free_port, gobuild

TESTDATA = REPO / "testbed/imagefactory/testdata"
# fixtures with fields or strings the collection never renders: it must refuse them, not hash them wrongly
REFUSED = {"meta-secureboot.yaml", "tricky-strings-spaces.yaml", "tricky-strings.yaml"}


@pytest.fixture(scope="module")
def factory_binary() -> Path:
    return gobuild.build("image-factory", gobuild.default_version("image-factory", PINS))


@pytest.fixture(scope="module")
def factory(factory_binary, tmp_path_factory):
    """The testbed factory on a free loopback port; its base URL."""
    address = f"127.0.0.1:{free_port('127.0.0.1')}"
    process = subprocess.Popen([str(factory_binary), "serve", "--listen", address,
                                "--state", str(tmp_path_factory.mktemp("factory"))],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout.readline().startswith("ready: "), "the factory did not start"
        yield f"http://{address}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def package_id(factory_binary: Path, text: str) -> str:
    return subprocess.run([str(factory_binary), "id"], input=text, capture_output=True, text=True,
                          check=True).stdout.strip()


def register(factory: str, text: str) -> str:
    request = urllib.request.Request(f"{factory}/schematics", data=text.encode(), method="POST",
                                     headers={"Content-Type": "application/yaml"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.load(reply)["id"]


FIXTURES = sorted(TESTDATA.glob("*.yaml"))


def test_the_fixtures_and_their_recorded_ids_are_all_there():
    recorded = dict(line.split() for line in (TESTDATA / "ids.txt").read_text().splitlines() if line.strip())
    assert set(recorded) == {path.name for path in FIXTURES}
    assert {"empty.yaml", "kernel-args.yaml", "extensions.yaml", "kernel-args-extensions.yaml",
            "numa-hugepages.yaml"} <= set(recorded)
    assert recorded["empty.yaml"] == schematic.EMPTY_ID


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_offline_id_equals_the_factory_package(path, factory_binary):
    """A fixture the collection can render hashes alike; one it refuses (unsupported fields,
    strings no kernel arg holds, strings go-yaml reads as numbers) is refused, and each of its
    args the collection accepts hashes alike on its own."""
    recorded = dict(line.split() for line in (TESTDATA / "ids.txt").read_text().splitlines() if line.strip())
    text = path.read_text()
    assert package_id(factory_binary, text) == recorded[path.name]
    document = yaml.safe_load(text)
    if path.name not in REFUSED:
        assert schematic.schematic_id(document) == recorded[path.name]
        return
    with pytest.raises(schematic.SchematicError):
        schematic.schematic_id(document)
    accepted = []
    for arg in document["customization"].get("extraKernelArgs", []):
        single = schematic.build([arg])
        try:
            accepted.append((arg, schematic.schematic_id(single), package_id(factory_binary, json.dumps(single))))
        except schematic.SchematicError:
            continue
    assert all(ours == theirs for _arg, ours, theirs in accepted), accepted
    if path.name == "tricky-strings.yaml":
        assert len(accepted) >= 30, "the quoting rules are exercised by the accepted strings"


def test_random_kernel_args_and_extensions_hash_alike(factory_binary):
    """300 schematics of printable-ASCII args (every quoting rule go-yaml has for them)."""
    alphabet = [chr(c) for c in range(0x21, 0x7f)]
    words = ["yes", "no", "on", "1", "0x1F", "1e3", "null", "~", "-", "true", "2026-01-01", "1:30", "hugepages=1"]
    rng = random.Random(8)

    def word():
        if rng.random() < 0.2:
            return rng.choice(words)
        return "".join(rng.choice(alphabet) for _position in range(rng.randint(1, 6)))

    documents = []
    for _document in range(300):
        args = [word() for _arg in range(rng.randint(0, 4))]
        extensions = [f"siderolabs/{rng.choice(words)}" for _extension in range(rng.randint(0, 2))]
        documents.append(schematic.build(args, extensions, include_well_known_certificates=rng.random() < 0.1))
    accepted = []
    for document in documents:
        try:
            accepted.append((document, schematic.schematic_id(document)))
        except schematic.SchematicError as error:
            assert "starts like a number" in str(error)
    assert len(accepted) > 200
    # JSON is YAML: the package reads each document as the factory would read an upload
    mismatched = [d for d, ours in accepted if package_id(factory_binary, json.dumps(d)) != ours]
    assert mismatched == []


def test_the_factory_registers_by_id_and_serves_the_installer_pull(factory):
    validator = schematic.build(["hugepagesz=2M", "hugepages=50000", "default_hugepagesz=2M", "iommu=pt"])
    identifier = register(factory, yaml.safe_dump(validator))
    assert identifier == schematic.schematic_id(validator)
    assert register(factory, yaml.safe_dump(validator)) == identifier, "registering twice is the same"
    with urllib.request.urlopen(f"{factory}/v2/metal-installer/{identifier}/manifests/v1.13.9", timeout=10) as reply:
        pulled = json.load(reply)
    assert pulled["schematic"] == identifier
    assert pulled["extra_kernel_args"] == validator["customization"]["extraKernelArgs"]
    unknown = schematic.schematic_id(schematic.build(["nosmt"]))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{factory}/v2/metal-installer/{unknown}/manifests/v1.13.9", timeout=10)
    assert refused.value.code == 404
