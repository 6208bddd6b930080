#!/usr/bin/env bash
# Runs every ghz config of load-tests/ against one xling, one after the other, and prints one
# line per config from the summary JSON (the table of load-tests/README.md).
#   load-tests/run-all.sh OUT_DIR [HOST:PORT] [more xling loadtest flags, e.g. -m]
# From the repository root (the configs' data-file paths are relative to it); about 9 minutes.
set -euo pipefail
out=$1
host=${2:-127.0.0.1:50051}
shift $(( $# < 2 ? $# : 2 ))
xling=${XLING_BINARY:-target/release/xling}
mkdir -p "$out"
for f in load-tests/*.json; do
    n=$(basename "$f" .json)
    "$xling" loadtest --config "$f" "$host" "$@" -O json -o "$out/$n.json" \
        --summary-json "$out/$n-summary.json" > "$out/$n.txt"
done
python3 - "$out" <<'PY'
import json, pathlib, sys
print(f"{'config':28} {'ok/s':>7} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8}")
for f in sorted(pathlib.Path(sys.argv[1]).glob("*-summary.json")):
    s = json.loads(f.read_text())
    print(f"{f.name[:-13]:28} {s['ok_rps']:7.1f} {s['errors']:7d} {s['p50_ms']:8.1f} {s['p99_ms']:8.1f}")
PY
