#!/usr/bin/python
# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_schematic_files
short_description: Write many nodes' Image Factory schematic files at once
version_added: 0.1.0
description:
  - For each of O(nodes), writes the schematic file of its installer to O(nodes[].path), that is a
    header naming the node, the schematic ID and the installer image, then the canonical text the ID
    is computed over (P(solanaops.talos.schematic_file#filter) gives the same text).
  - A file that already holds its text is left as it is. Any other is written atomically with
    mode 0644 (a schematic holds no secret).
  - Reports, under RV(replaced), each node whose file named another schematic before. Applying its
    new config does not change the running kernel, only an upgrade to the new image does.
  - One module run for every node, where a copy task would start a worker and two module runs per node.
  - Nothing is sent to any node or to the Image Factory.
options:
  nodes:
    description: The nodes whose schematic files to write.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The node's name, for the header and the results.
        type: str
        required: true
      node:
        description: Address of the node, for the upgrade command in RV(replaced).
        type: str
        required: true
      path:
        description: Where to write the node's schematic file.
        type: path
        required: true
      installer:
        description:
          - The node's installer as P(solanaops.talos.installer#filter) returns it, with C(schematic),
            C(id) and C(image).
        type: dict
        required: true
author:
  - SolanaOps platform team (@solanaops)
attributes:
  check_mode:
    support: full
    description: Reports what would be written, and RV(replaced), without writing.
  diff_mode:
    support: full
    description: Shows each written file's text before and after.
"""

EXAMPLES = r"""
- name: Write each node's Image Factory schematic beside its config
  solanaops.talos.talos_schematic_files:
    nodes: >-
      {{ ansible_play_batch | map('extract', hostvars)
         | map('solanaops.talos.schematic_file_request', talos_cluster_output_dir) | list }}
  register: schematics
  run_once: true
"""

RETURN = r"""
written:
  description: The nodes whose file was written (would be, in check mode), in the order of O(nodes).
  returned: always
  type: list
  elements: str
  sample: [solana-validator]
replaced:
  description:
    - Each written node whose file named another schematic before, with C(node) (its address),
      C(from) and C(to) (the schematic IDs) and C(image) (the installer to upgrade to).
  returned: always
  type: dict
  sample: {"solana-validator": {"node": 10.0.1.20, "from": "376567...", "to": "9b2f0c...",
                                "image": "factory.talos.dev/metal-installer/9b2f0c...:v1.14.1"}}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.solanaops.talos.plugins.module_utils import schematic
from ansible_collections.solanaops.talos.plugins.module_utils.files import write_atomically
from ansible_collections.solanaops.talos.plugins.module_utils.secret_files import read_text

MODE = 0o644


def main():
    module = AnsibleModule(
        argument_spec={
            "nodes": {"type": "list", "elements": "dict", "required": True, "options": {
                "name": {"type": "str", "required": True},
                "node": {"type": "str", "required": True},
                "path": {"type": "path", "required": True},
                "installer": {"type": "dict", "required": True},
            }},
        },
        supports_check_mode=True,
    )
    written, replaced, diffs = [], {}, []
    for node in module.params["nodes"]:
        name, path, installer = node["name"], node["path"], node["installer"]
        try:
            text = schematic.file_text(installer, name)
        except (KeyError, TypeError, ValueError) as error:  # SchematicError is a ValueError
            module.fail_json(msg=f"nodes[{name}].installer is not an installer (schematic, id, image): {error}",
                             changed=bool(written), written=written, replaced=replaced)
        try:
            current = read_text(path)
        except (OSError, UnicodeDecodeError) as error:
            module.fail_json(msg=f"reading {path}: {error}", changed=bool(written), written=written, replaced=replaced)
        if current == text:
            continue
        written.append(name)
        previous = schematic.file_id(current)
        if previous not in (None, installer["id"]):
            replaced[name] = {"node": node["node"], "from": previous, "to": installer["id"],
                              "image": installer["image"]}
        if module._diff:
            diffs.append({"before_header": path, "after_header": path, "before": current or "", "after": text})
        if not module.check_mode:
            try:
                write_atomically(path, text, module.atomic_move)
                os.chmod(path, MODE)
            except OSError as error:
                replaced.pop(name, None)
                module.fail_json(msg=f"writing {path}: {error}", changed=bool(written[:-1]), written=written[:-1],
                                 replaced=replaced)
    result = {"changed": bool(written), "written": written, "replaced": replaced}
    if diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
