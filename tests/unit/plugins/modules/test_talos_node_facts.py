"""talos_node_facts: parsing what the kernel reports."""

from __future__ import annotations

from ansible_collections.solanaops.talos.plugins.modules import talos_node_facts


def test_parse_meminfo_global_and_per_numa_node():
    text = ("MemTotal:       528416768 kB\nHugePages_Total:   50000\n"
            "Hugepagesize:       2048 kB\nHugetlb: 102400000 kB\n")
    assert talos_node_facts.parse_meminfo(text) == {
        "MemTotal": 528416768, "HugePages_Total": 50000, "Hugepagesize": 2048, "Hugetlb": 102400000}
    numa = "Node 1 MemTotal:       264208384 kB\nNode 1 HugePages_Total: 25000\n"
    assert talos_node_facts.parse_meminfo(numa) == {"MemTotal": 264208384, "HugePages_Total": 25000}
    assert talos_node_facts.parse_meminfo("garbage\n") == {}


def test_parse_mounts():
    text = ("/dev/nvme1n1p1 /var/mnt/ledger xfs rw,nosuid,noatime 0 0\n"
            "proc /proc proc rw 0 0\nshort line\n")
    assert talos_node_facts.parse_mounts(text) == [
        {"device": "/dev/nvme1n1p1", "mountpoint": "/var/mnt/ledger", "fstype": "xfs",
         "options": ["rw", "nosuid", "noatime"]},
        {"device": "proc", "mountpoint": "/proc", "fstype": "proc", "options": ["rw"]}]


SERVICES = """NODE         SERVICE      STATE     HEALTH   LAST CHANGE   LAST EVENT
127.0.1.20   apid         Running   OK       53s ago       Health check successful
127.0.1.20   auditd       Running   ?        53s ago       Service started
127.0.1.11   etcd         Preparing ?        2s ago        Running pre state
"""


def test_parse_services():
    from ansible_collections.solanaops.talos.plugins.modules import talos_node_facts

    assert talos_node_facts.parse_services(SERVICES) == {
        "apid": {"state": "Running", "health": "OK"}, "auditd": {"state": "Running", "health": "?"},
        "etcd": {"state": "Preparing", "health": "?"}}
