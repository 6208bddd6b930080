#!/bin/bash
# XQuAD-R mAP through the Qdrant backend vs the embedded index: the same folder index served
# twice (its embeddings uploaded to Qdrant as they are), `xling eval --addr` against each.
# Usage: [EVAL_ARGS="--max-questions N"] docs/qdrant-eval.sh OUTDIR INDEX_DIR [LANGS]
#   INDEX_DIR built from `xling eval --data DATA --langs LANGS --write-corpus FILE` and
#   `xling index build --corpus FILE --out INDEX_DIR` (docs/eval.md); LANGS as for that corpus.
# From the repository root after `cargo build --release -p xling`; run under the CPU lock.
set -u
X=${XLING_BINARY:-./target/release/xling}
Q=${XLING_QDRANT_BIN:-../shared/bin/qdrant}
DATA=${XQUAD_R:-/work/shared/data/xquad-r}
OUT=$1
INDEX=$2
LANGS=${3:-ar,de,el,en,es,hi,ru,th,tr,vi,zh}
MODEL=${XLING_MODEL:-${XLING_HOME:-$HOME/.cache/xling}/models/multilingual-e5-small}
mkdir -p "$OUT/qdrant"
OUT=$(cd "$OUT" && pwd)
Q=$(cd "$(dirname "$Q")" && pwd)/$(basename "$Q")

(cd "$OUT/qdrant" && QDRANT__SERVICE__HTTP_PORT=6443 QDRANT__SERVICE__GRPC_PORT=6444 \
    QDRANT__SERVICE__HOST=127.0.0.1 QDRANT__LOG_LEVEL=WARN exec "$Q" --disable-telemetry \
    >"$OUT/qdrant.log" 2>&1) &
PIDS=$!
trap 'kill $PIDS 2>/dev/null' EXIT
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/6444) 2>/dev/null && break; sleep 0.2; done
$X index upload "$INDEX" --qdrant-url http://127.0.0.1:6444 --qdrant-collection xqr --force \
    2>&1 | tee "$OUT/upload.txt"

for backend in embedded:50081 qdrant:50082; do
    name=${backend%%:*}; port=${backend##*:}
    extra=()
    [ "$name" = qdrant ] && extra=(--index-backend qdrant --qdrant-url http://127.0.0.1:6444 --qdrant-collection xqr)
    $X serve --model "$MODEL" --index "$INDEX" --grpc-addr 127.0.0.1:$port --metrics-addr off \
        "${extra[@]}" >"$OUT/serve-$name.log" 2>&1 &
    PIDS="$PIDS $!"
    for _ in $(seq 1 240); do grep -q serving "$OUT/serve-$name.log" && break; sleep 0.5; done
    $X eval --data "$DATA" --langs "$LANGS" --addr 127.0.0.1:$port --json "$OUT/eval-$name.json" ${EVAL_ARGS:-} \
        >"$OUT/eval-$name.md" 2>"$OUT/eval-$name.log"
done

python3 - "$OUT" <<'PY' | tee "$OUT/result.md"
import json, sys
out = sys.argv[1]
e = json.load(open(f"{out}/eval-embedded.json"))
q = json.load(open(f"{out}/eval-qdrant.json"))
print("| kind | embedded mAP | qdrant mAP | difference |")
print("|---|---|---|---|")
for kind in ("mono", "cross", "multi"):
    a, b = e["summary"][kind], q["summary"][kind]
    a = a["map"] if isinstance(a, dict) else a
    b = b["map"] if isinstance(b, dict) else b
    print(f"| {kind} | {a:.4f} | {b:.4f} | {b - a:+.4f} |")
worst = max(abs(q["settings"][k] - v) for k, v in e["settings"].items())
print(f"\nlargest per-setting difference over {len(e['settings'])} settings: {worst:.4f}")
PY
