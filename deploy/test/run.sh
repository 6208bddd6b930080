#!/usr/bin/env bash
# Ops checks for docker/ and deploy/. Installs what it needs (idempotent), then runs pytest.
#   deploy/test/run.sh [static|live|all]      (default: all)
# static: hadolint, compose schema, kustomize render + Kubernetes schemas, promtool check/test,
#         dashboard structure. No server needed.
# live:   builds the index with the xling binary, serves models/mt5-tiny, starts Prometheus on
#         loopback, drives load, and evaluates every dashboard/rule/adapter query.
# Env: XLING_BINARY (default target/release/xling; built when missing), XLING_HOME.
set -euo pipefail

mode="${1:-all}"
case "$mode" in static|live|all) ;; *) echo "usage: $0 [static|live|all]" >&2; exit 2 ;; esac

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
xling_home="${XLING_HOME:-$HOME/.cache/xling}"
venv="$xling_home/ops-venv"
requirements="deploy/test/requirements.txt"

# promtool and prometheus from Debian's package; our own Prometheus runs on a random loopback port.
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

# Python tools in their own venv, reinstalled only when the pinned list changes.
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
    echo "$want" > "$stamp"
fi

tests=()
if [ "$mode" != live ]; then tests+=(deploy/test/test_static.py); fi
if [ "$mode" != static ]; then
    binary="${XLING_BINARY:-$repo/target/release/xling}"
    if [ ! -x "$binary" ]; then
        cargo build --release -p xling
    fi
    export XLING_BINARY="$binary"
    tests+=(deploy/test/test_live.py)
fi

exec "$venv/bin/python" -m pytest -p no:cacheprovider -q "${tests[@]}"
