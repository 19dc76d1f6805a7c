"""Stand-in for the get-pip.py bootstrap script ansible-test downloads from ci-files, a host
this machine cannot reach: install the pip bundled with Python (ensurepip), then let it
install the pinned pip from PyPI. Called with get-pip's arguments (pip==X, --no-setuptools...)."""

import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

# a separate process: ensurepip points PIP_CONFIG_FILE at /dev/null for its own run, which
# would hide the machine's pip configuration (index, CA bundle) from the install below
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args]))
