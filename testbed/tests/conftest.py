"""The harness' own tests import the testbed's modules (gobuild, pytest_helpers) as its scripts do."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
