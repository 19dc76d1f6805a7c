# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options shared by every module that runs talosctl (mirrors TALOSCTL_ARGSPEC), and the one of
those that run it for many nodes at once (mirrors PARALLEL_ARGSPEC)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  talosctl_path:
    description:
      - Path of the talosctl binary. When omitted, C(talosctl) is looked up on E(PATH).
    type: path
  talosconfig:
    description:
      - Path of the talosconfig (client credentials) to use, passed as E(TALOSCONFIG).
    type: path
notes:
  - Commands run on the controller; Talos nodes have no SSH and no Python.
  - The talosctl version used is returned as RV(talosctl_version).
"""

    # solanaops.talos.talosctl.parallel
    PARALLEL = r"""
options:
  parallel:
    description: How many talosctl processes run at once at most, one per node (or file) asked.
    type: int
    default: 8
"""
