#!/usr/bin/env bash
# ansible-test must run from .../ansible_collections/<namespace>/<name>: copy the tracked
# files (plus uncommitted changes) there and run the sanity tests on that copy.
set -euo pipefail
cd "$(dirname "$0")/../.."
cache="${XDG_CACHE_HOME:-$HOME/.cache}/solanaops-talos"
copy="$cache/sanity/ansible_collections/solanaops/talos"
rm -rf "$copy" && mkdir -p "$copy"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$copy"
# ansible-test bootstraps pip in its venvs with a script from a host we cannot reach
pip_version=$(python - <<'PY'
import inspect, re, ansible_test._internal.python_requirements as m
print(re.search(r"pip='([0-9.]+)'", inspect.getsource(m)).group(1))
PY
)
mkdir -p ~/.ansible/test/cache
cp tests/sanity/get_pip.py ~/.ansible/test/cache/get_pip_${pip_version//./_}.py
cd "$copy"
ansible-test sanity --local --python 3.11 --color no \
  --exclude testbed/ --exclude benchmarks/ --exclude tests/integration/conftest.py "$@"
