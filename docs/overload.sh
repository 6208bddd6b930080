#!/bin/bash
# Overload and shutdown figures for docs/hardening.md, against a release server on this machine.
# Usage: docs/overload.sh QUEUE_CAPACITY OUTDIR   (from the repository root, after
# `cargo build --release -p xling` and scripts/setup.sh: default model and demo index)
set -u
X=${XLING_BINARY:-./target/release/xling}
CAP=$1
OUT=$2
PORT=50061
mkdir -p "$OUT"
$X serve --grpc-addr 127.0.0.1:$PORT --metrics-addr 127.0.0.1:9474 --queue-capacity "$CAP" \
    >"$OUT/serve.log" 2>&1 &
PID=$!
for _ in $(seq 1 120); do
    curl -s 127.0.0.1:9474/metrics | grep -q xling_build_info && break
    sleep 1
done

# 1. Saturation: closed loop, 32 workers.
$X loadtest --config load-tests/search-concurrency.json 127.0.0.1:$PORT -c 32 -n 2000 \
    --summary-json "$OUT/sat.json" >"$OUT/sat.txt" 2>&1
R=$(python3 -c "import json; print(3 * int(json.load(open('$OUT/sat.json'))['ok_rps']))")
echo "overload rate: $R rps (3x saturation)" | tee "$OUT/rates.txt"

# Peak RSS, sampled every 0.5 s for the rest of the run.
(while kill -0 $PID 2>/dev/null; do ps -o rss= -p $PID; sleep 0.5; done) >"$OUT/rss.txt" &

# 2. Overload: open loop at 3x, 5 s deadline; every answer's status and latency in over.json.
$X loadtest --config load-tests/search-rate.json 127.0.0.1:$PORT --rps "$R" -c 2000 \
    --connections 8 -z 20s -t 5s -O json -o "$OUT/over.json" \
    --summary-json "$OUT/over-sum.json" >"$OUT/over.txt" 2>&1
python3 - "$OUT/over.json" <<'PY' | tee "$OUT/by-status.txt"
import json, sys
by = {}
for d in json.load(open(sys.argv[1]))["details"]:
    by.setdefault(d["status"] or "OK", []).append(d["latency"] / 1e6)
for status, ms in sorted(by.items()):
    ms.sort()
    pick = lambda q: ms[min(len(ms) - 1, int(len(ms) * q))]
    print(f"{status}: n={len(ms)} p50={pick(0.5):.1f} ms p99={pick(0.99):.1f} ms")
PY

# 3. Shutdown under overload: SIGTERM 5 s into another 3x run; time until the process exits.
$X loadtest --config load-tests/search-rate.json 127.0.0.1:$PORT --rps "$R" -c 2000 \
    --connections 8 -z 15s -t 5s --summary-json "$OUT/term-sum.json" >"$OUT/term.txt" 2>&1 &
LOAD=$!
sleep 5
T0=$(date +%s.%N)
kill -TERM $PID
wait $PID
RC=$?
T1=$(date +%s.%N)
echo "server exited rc=$RC $(python3 -c "print(round($T1 - $T0, 2))") s after SIGTERM" \
    | tee "$OUT/term-exit.txt"
wait $LOAD
echo "peak RSS $(sort -n "$OUT/rss.txt" | tail -1) KiB" | tee "$OUT/rss-peak.txt"
