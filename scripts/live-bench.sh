#!/usr/bin/env bash
# Live index benchmark (docs/live-index.md, "Benchmark"); prints numbers, asserts nothing.
#   scripts/live-bench.sh [INDEX_DIR]     (default: $XLING_HOME/indexes/demo)
# Serves a copy of the index with multilingual-e5-small, then:
#   1. Search capacity: closed loop, 8 workers, 15 s;
#   2. Search at half that rate, alone and beside 20 one-passage upserts/s, in alternating
#      rounds of 30 s ($LIVE_BENCH_ROUNDS, default 3; the p99 ratio is of the medians);
#   3. upsert throughput: 4 clients, 8 passages per upsert, 15 s;
#   4. SwapIndex to a second copy: time, and the server's RSS before and its peak after.
# Needs target/release/xling and target/release/examples/live_bench:
#   cargo build --release -p xling && cargo build --release -p xling-server --example live_bench
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
home="${XLING_HOME:-$HOME/.cache/xling}"
source_index="${1:-$home/indexes/demo}"
xling="${XLING_BINARY:-$repo/target/release/xling}"
bench="$repo/target/release/examples/live_bench"
model="${XLING_BENCH_MODEL:-$home/models/multilingual-e5-small}"
port="${XLING_BENCH_PORT:-50071}"
addr="127.0.0.1:$port"
queries="$repo/load-tests/data/queries-multilingual.json"

work="$(mktemp -d)"
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
cp -r "$source_index" "$work/index"
cp -r "$source_index" "$work/next"
rm -rf "$work/index/wal" "$work/next/wal"

"$xling" serve --model "$model" --index "$work/index" --grpc-addr "$addr" --metrics-addr off \
    --compact-after 0 --compact-share 0 >"$work/serve.log" 2>&1 &
server=$!
# Info answers while the model loads; the "serving" log line is the readiness that counts.
until grep -qs serving "$work/serve.log"; do
    kill -0 "$server" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
    sleep 0.2
done

search() { # NAME RPS: Search for 30 s at RPS (0 = closed loop, 8 workers, 15 s); prints the summary
    local name="$1" rps="$2" args=(-c 8 -z 15s)
    if [ "$rps" != 0 ]; then args=(-c 32 -z 30s -r "$rps"); fi
    "$xling" loadtest --insecure --call xling.v1.Retrieval/Search -D "$queries" \
        --connections 2 -t 5s "${args[@]}" --skipFirst 20 --summary-json "$work/$name.json" \
        -O json -o /dev/null "$addr" >/dev/null
    python3 - "$work/$name.json" "$name" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:>12}: {s['ok_rps']:.1f} ok/s, errors {s['errors']}, "
      f"p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms")
EOF
}

rss() { awk -v k="$1:" '$1 == k {print $2 / 1024 " MiB"}' "/proc/$server/status"; }

echo "index: $source_index ($(du -sh "$work/index" | cut -f1)), model: $model, $(nproc) cores"
search capacity 0
capacity="$(python3 -c "import json; print(json.load(open('$work/capacity.json'))['ok_rps'])")"
half="$(python3 -c "print(max(1, round($capacity / 2)))")"
for round in $(seq 1 "${LIVE_BENCH_ROUNDS:-3}"); do
    search "alone-$round" "$half"
    "$bench" upserts "$addr" 20 32 >"$work/upserts-$round.txt" &
    writer=$!
    search "writes-$round" "$half"
    wait "$writer"
    cat "$work/upserts-$round.txt"
done
python3 - "$work" "$half" <<'EOF'
import glob, json, statistics, sys
def p99s(kind):
    return [json.load(open(f))["p99_ms"] for f in sorted(glob.glob(f"{sys.argv[1]}/{kind}-*.json"))]
alone, writes = statistics.median(p99s("alone")), statistics.median(p99s("writes"))
print(f"search at {sys.argv[2]} req/s: median p99 alone {alone:.1f} ms, beside 20 upserts/s "
      f"{writes:.1f} ms: ratio {writes / alone:.2f}")
EOF
"$bench" throughput "$addr" 15 4 8
echo "rss before swap: $(rss VmRSS), peak so far: $(rss VmHWM)"
"$bench" swap "$addr" "$work/next"
echo "rss after swap: $(rss VmRSS), peak: $(rss VmHWM)"
