#!/bin/bash
# Soak figures for docs/hardening.md: 30 minutes of open-loop Search at 70% of the measured
# saturation rate, in 5-minute segments; reports errors (target 0) and the server's RSS growth
# from the end of the first segment to the end of the run (target < 5%).
# Usage: docs/soak.sh OUTDIR [SEGMENTS] [SEGMENT_LENGTH]   (defaults: 6 segments of 5m)
# From the repository root, after `cargo build --release -p xling` and scripts/setup.sh.
set -u
X=${XLING_BINARY:-./target/release/xling}
OUT=$1
SEGMENTS=${2:-6}
LENGTH=${3:-5m}
PORT=50062
mkdir -p "$OUT"
$X serve --grpc-addr 127.0.0.1:$PORT --metrics-addr 127.0.0.1:9475 >"$OUT/serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null' EXIT
for _ in $(seq 1 120); do
    curl -s 127.0.0.1:9475/metrics | grep -q xling_build_info && break
    sleep 1
done
rss() { ps -o rss= -p $PID | tr -d ' '; }

# Saturation: closed loop, 32 workers; the soak rate is 70% of it.
$X loadtest --config load-tests/search-concurrency.json 127.0.0.1:$PORT -c 32 -n 2000 \
    --summary-json "$OUT/sat.json" >"$OUT/sat.txt" 2>&1
R=$(python3 -c "import json; print(int(0.7 * json.load(open('$OUT/sat.json'))['ok_rps']))")
echo "soak rate: $R rps (70% of saturation), $SEGMENTS x $LENGTH" | tee "$OUT/rate.txt"
echo "segment start_rss_kib end_rss_kib" >"$OUT/rss.txt"

for i in $(seq 1 "$SEGMENTS"); do
    BEFORE=$(rss)
    $X loadtest --config load-tests/search-rate.json 127.0.0.1:$PORT --rps "$R" -c 256 \
        --connections 4 -z "$LENGTH" -t 5s --summary-json "$OUT/segment-$i.json" \
        >"$OUT/segment-$i.txt" 2>&1
    echo "$i $BEFORE $(rss)" >>"$OUT/rss.txt"
done
curl -s 127.0.0.1:9475/metrics >"$OUT/metrics.txt"

python3 - "$OUT" "$SEGMENTS" <<'PY' | tee "$OUT/result.txt"
import json, sys
out, n = sys.argv[1], int(sys.argv[2])
segs = [json.load(open(f"{out}/segment-{i}.json")) for i in range(1, n + 1)]
rss = [line.split() for line in open(f"{out}/rss.txt").read().splitlines()[1:]]
print("| segment | requests | errors | ok rps | p50 ms | p99 ms | server RSS at end (MiB) |")
print("|---|---|---|---|---|---|---|")
for i, (s, r) in enumerate(zip(segs, rss), 1):
    print(f"| {i} | {s['count']} | {s['errors']} | {s['ok_rps']:.1f} | {s['p50_ms']:.1f} "
          f"| {s['p99_ms']:.1f} | {int(r[2]) / 1024:.1f} |")
errors = sum(s["errors"] for s in segs)
count = sum(s["count"] for s in segs)
first, last = int(rss[0][2]), int(rss[-1][2])
print(f"\ntotal: {count} requests, {errors} errors; RSS after segment 1 {first / 1024:.1f} MiB, "
      f"at the end {last / 1024:.1f} MiB: growth {100 * (last - first) / first:+.2f}%")
PY
