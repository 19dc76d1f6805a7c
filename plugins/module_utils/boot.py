# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a Talos node booted: its release and Image Factory schematic, read through its API.
Shared by the node facts (verify) and the upgrade, which compares them before and after."""

from __future__ import annotations


def parse_boot(extensions, security, version):
    """``ExtensionStatus``, ``SecurityState`` and ``Version`` resources -> what the node booted.
    Image Factory images list their schematic as an extension named ``schematic``. What was not
    read is None, never a default a check could pass on."""
    metadata = [(r["spec"].get("metadata") or {}) for r in extensions]
    if not security:
        security_flags = {"booted_with_uki": None, "secure_boot": None}
    else:  # bootedWithUKI is omitted when false
        security_flags = {"booted_with_uki": bool(security[0]["spec"].get("bootedWithUKI")),
                          "secure_boot": bool(security[0]["spec"].get("secureBoot"))}
    return {
        "schematic": next((m.get("version") for m in metadata if m.get("name") == "schematic"), None),
        "extensions": [{"name": m.get("name"), "version": m.get("version")}
                       for m in metadata if m.get("name") != "schematic"],
        "talos_version": version[0]["spec"].get("version") if version else None,
        **security_flags,
    }


# the resources parse_boot reads, in its order of arguments
BOOT_RESOURCES = ("extensions", "securitystate", "version")


def read_boot(talosctl, node, endpoint=None):
    """The node's booted image as parse_boot describes it, read with three `talosctl get` calls."""
    return parse_boot(*(talosctl.get(kind, nodes=[node], endpoints=[endpoint or node], node_name=node)
                        for kind in BOOT_RESOURCES))
