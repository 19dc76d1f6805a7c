#!/usr/bin/python
# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_kubeconfig
short_description: Fetch the cluster's admin kubeconfig from a control-plane node
version_added: 0.1.0
description:
  - Runs C(talosctl kubeconfig) against one control-plane node and writes the result to O(path)
    with mode 0600 (atomically, the credentials never appear in the output).
  - Talos issues a new client certificate on every request, so an existing file is kept (no
    change) while it points at the same server, trusts the same cluster CA and its certificate
    stays valid for more than O(min_valid_days) days.
  - O(server) points the kubeconfig at another API address, for example the VIP.
options:
  node:
    description: Control-plane node to fetch from (also the endpoint).
    type: str
    required: true
  path:
    description: Where to write the kubeconfig.
    type: path
    required: true
  server:
    description: API server URL to write instead of the one Talos returns (C(cluster.controlPlane.endpoint)).
    type: str
  ca:
    description:
      - The cluster's Kubernetes CA certificate, base64 of its PEM as a secrets bundle's C(certs.k8s.crt),
        when the cluster is known to run it (every control plane runs a configuration rendered from that
        bundle). With O(server), a file that names both and stays valid is kept without a fetch.
      - Without it, the file is compared with a fetched kubeconfig.
    type: str
  min_valid_days:
    description: Renew the file when its client certificate expires within this many days.
    type: int
    default: 30
extends_documentation_fragment:
  - solanaops.talos.talosctl
attributes:
  check_mode:
    support: full
    description: Reports whether the file would be written, without writing it.
  diff_mode:
    support: partial
    description: The diff shows the server and the CA fingerprint, never the credentials.
author:
  - SolanaOps platform team (@solanaops)
"""

EXAMPLES = r"""
- name: Fetch the kubeconfig, pointed at the VIP
  solanaops.talos.talos_kubeconfig:
    node: 10.0.1.11
    path: /srv/talos/solana-cluster/kubeconfig
    server: https://10.0.1.10:6443
    talosconfig: /srv/talos/solana-cluster/talosconfig
"""

RETURN = r"""
path:
  description: The kubeconfig written (or kept).
  returned: success
  type: str
server:
  description: The API server URL the kubeconfig names.
  returned: success
  type: str
  sample: https://10.0.1.10:6443
expires:
  description: When the client certificate in the file expires (ISO 8601, UTC).
  returned: success
  type: str
talosctl_version:
  description: Version of the talosctl that ran.
  returned: success
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.solanaops.talos.plugins.module_utils.kubeconfig import (
    KUBECONFIG_ARGSPEC,
    KubeconfigError,
    keeps,
    kept_without_fetch,
    summarize,
    with_server,
    yaml,
)
from ansible_collections.solanaops.talos.plugins.module_utils.secret_files import read_text, write_private
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    Talosctl,
    TalosError,
    fail_json_from,
)


def main():
    module = AnsibleModule(argument_spec=KUBECONFIG_ARGSPEC, supports_check_mode=True)
    if yaml is None:
        module.fail_json(msg="talos_kubeconfig needs PyYAML and cryptography on the controller")
    params = module.params
    path = params["path"]
    result = {"changed": False, "path": path}
    kept = kept_without_fetch(params, read_text(path))
    if kept:
        module.exit_json(**kept)
    try:
        talosctl = Talosctl(module)
        result["talosctl_version"] = talosctl.version
        _rc, fetched, _stderr = talosctl.run(["kubeconfig", "-", "--merge=false"], nodes=[params["node"]],
                                             endpoints=[params["node"]], node_name=params["node"])
        if params["server"]:
            fetched = with_server(fetched, params["server"])
        server, ca, expires = summarize(fetched)
        result.update(server=server, expires=expires.isoformat())

        before = None
        if os.path.exists(path):
            try:
                before = summarize(read_text(path))
            except KubeconfigError:
                before = ("(unreadable)", "", None)
            if keeps(before, server, ca, params["min_valid_days"]):
                result["expires"] = before[2].isoformat()
                module.exit_json(**result)

        result["changed"] = True
        if module._diff:
            describe = "server: {0}\nca sha256: {1}\n"
            result["diff"] = {"before": describe.format(*before[:2]) if before else "",
                              "after": describe.format(server, ca), "before_header": path, "after_header": path}
        if not module.check_mode:
            write_private(path, fetched)
    except TalosError as error:
        fail_json_from(module, error, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
