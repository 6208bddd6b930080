#!/usr/bin/env bash
# xling's embedded index side by side with hnswlib and faiss-cpu HNSW (issue 13's benchmark).
# A command that prints numbers, not a test. See docs/index-bench.md for what it measures.
#
#   load-tests/index-bench/run.sh N            # e.g. 100000 or 1000000
#
# Data (written once under $BENCH_DATA, default /work/bench-data): embed_xquad.py embeds the
# XQuAD-R sentences and questions with multilingual-e5-small; make_data.py grows them to N rows.
# Results: $BENCH_DATA/results-N/*.{json,txt}. Heavy: run it under
#   flock /work/notes/cpu-heavy.lock load-tests/index-bench/run.sh N
# REUSE_BUILD=1 keeps the xling index (and its build figures) of an earlier run of the same N.
# MIX=interp (make_data.py --mix) writes its data, indexes and results under n$N-interp etc.
set -euo pipefail
N=${1:?usage: run.sh N}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
home=${XLING_HOME:-$HOME/.cache/xling}
py=${PYTHON:-$home/venv/bin/python}
xling=${XLING_BIN:-$repo/target/release/xling}
model=${XLING_MODEL:-$home/models/multilingual-e5-small}
root=${BENCH_DATA:-/work/bench-data}
M=${M:-16}; EFC=${EFC:-200}; THREADS=${THREADS:-2}
EFS=10,16,24,32,48,64,96,128,192,256,384,512
MIX=${MIX:-noise}; NOISE=${NOISE:-0.6}
tag=$N; [ "$MIX" = noise ] || tag=$N-$MIX
data=$root/n$tag; out=$root/results-$tag; work=$root/work-$tag
mkdir -p "$out" "$work"

[ -f "$root/xquad/real.npy" ] ||
  "$py" "$here/embed_xquad.py" "$repo/../shared/data/xquad-r" "$model" "$root/xquad"
[ -f "$data/gt_rare.npy" ] || "$py" "$here/make_data.py" "$root/xquad" "$data" "$N" --mix "$MIX" --noise "$NOISE"

if [ "${REUSE_BUILD:-0}" = 1 ] && [ -f "$out/xling-build.time" ]; then
  echo "== xling build: kept from the earlier run (REUSE_BUILD=1)"
else
  echo "== xling build (m $M, ef_construction $EFC, threads $THREADS)"
  /usr/bin/time -f "peak_rss_kib %M wall_s %e" -o "$out/xling-build.time" \
    "$xling" index build --corpus "$data/corpus.jsonl" --embeddings "$data/vectors.npy" \
    --model "$model" --out "$work/xling" --force --m "$M" --ef-construction "$EFC" \
    --threads "$THREADS" | tee "$out/xling-build.txt"
  du -sb "$work/xling" | tee "$out/xling-disk.txt"
fi
cat "$out/xling-build.time"

echo "== xling search on 1 thread (graph always walked: --exact-max 0)"
taskset -c 0 "$xling" index bench "$work/xling" --query-vectors "$data/queries.npy" \
  --exact-max 0 --ef "$EFS" | tee "$out/xling-bench.txt"
echo "== xling, 1% language (th), the index's own planner"
taskset -c 0 "$xling" index bench "$work/xling" --query-vectors "$data/queries.npy" \
  --language th --ef 16,64,256 | tee "$out/xling-bench-rare.txt"

echo "== xling serve (encoder null: only the index and the runtime): startup, RSS, Search{vector} at c=8"
port=$((52000 + RANDOM % 1000))
started=$(date +%s.%N)
"$xling" serve --index "$work/xling" --model "$model" --encoder null \
  --grpc-addr "127.0.0.1:$port" --metrics-addr off > "$out/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
until grep -q '"serving"\|serving' "$out/serve.log"; do
  kill -0 $pid 2>/dev/null || { cat "$out/serve.log"; exit 1; }
  sleep 0.05
done
ready=$(date +%s.%N)
rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
echo "startup_s $(echo "$ready - $started" | bc) rss_kib $rss" | tee "$out/xling-serve.txt"
"$py" - "$data/queries.npy" "$work/requests.json" <<'PY'
import json, sys
import numpy as np
q = np.load(sys.argv[1])
json.dump([{"vector": [round(float(x), 7) for x in v], "top_k": 10} for v in q], open(sys.argv[2], "w"))
PY
"$xling" loadtest --call xling.v1.Retrieval/Search --insecure -c 8 -n 8000 \
  --data-file "$work/requests.json" --summary-json "$out/xling-grpc.json" "127.0.0.1:$port" \
  | tail -25 | tee "$out/xling-grpc.txt"
kill $pid; wait $pid 2>/dev/null || true
trap - EXIT

echo "== hnswlib and faiss-cpu (same m, ef_construction, threads)"
"$py" "$here/bench_libs.py" "$data" "$work" --m "$M" --ef-construction "$EFC" --threads "$THREADS" \
  | tee "$out/libs.jsonl"
