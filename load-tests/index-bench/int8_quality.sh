#!/usr/bin/env bash
# int8 vs fp32 retrieval quality on XQuAD-R (issue 13, item 4): the same encoder and the same
# graph parameters; the fp32 index is built once by `xling eval --local` and rebuilt with
# `--quantize int8` (no re-encoding), then both are evaluated with the graph always walked
# (--exact-subset-max 0). Prints mono/cross/multi mAP for both and the differences.
#   load-tests/index-bench/int8_quality.sh [OUT]      (default: /work/bench-data/int8-quality)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
xling=${XLING_BIN:-$repo/target/release/xling}
data=${XQUAD_R:-$repo/../shared/data/xquad-r}
out=${1:-/work/bench-data/int8-quality}
mkdir -p "$out"
rm -rf "$out/fp32" "$out/int8"
"$xling" eval --local --data "$data" --exact-subset-max 0 --save-index "$out/fp32" \
  --json "$out/fp32.json" > "$out/fp32.txt"
"$xling" index rebuild "$out/fp32" --out "$out/int8" --quantize int8 > "$out/rebuild.txt"
"$xling" eval --local --data "$data" --index "$out/int8" --exact-subset-max 0 \
  --json "$out/int8.json" > "$out/int8.txt"
python3 - "$out/fp32.json" "$out/int8.json" <<'PY'
import json, sys
fp32, int8 = (json.load(open(p))["summary"] for p in sys.argv[1:3])
print("setting   fp32 mAP   int8 mAP   int8 - fp32")
for key in ("mono", "cross", "multi"):
    a, b = fp32[key], int8[key]
    a = a["map"] if isinstance(a, dict) else a
    b = b["map"] if isinstance(b, dict) else b
    print(f"{key:<9} {a:.4f}     {b:.4f}     {b - a:+.4f}")
PY
