#!/usr/bin/env bash
# Tests that need torch + transformers (the export tool, generator-vs-transformers parity).
# Creates its own venv, ~/.cache/xling/venv-export (PyPI's torch is the CUDA build: ~5 GB, ~2 min
# the first time), then runs models/tests/test_export.py. Usage: models/test-export.sh [pytest args]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${XLING_HOME:-$HOME/.cache/xling}/venv-export"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
# pip is quick when everything is already installed at the pinned versions.
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements-export.txt"
cd "$here"
exec "$venv/bin/python" -m pytest -q tests/test_export.py "$@"
