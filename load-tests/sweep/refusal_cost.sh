#!/usr/bin/env bash
# Server CPU per refused Search: a server whose queue wait budget (1 ms) refuses nearly every
# query, a closed loop of 64 workers for 10 s, and the server's CPU time (utime + stime from
# /proc) over the requests sent. Prints one line. Extra arguments go to `xling serve`.
#   load-tests/sweep/refusal_cost.sh [SERVE_FLAGS...]
set -euo pipefail
bin=${XLING_BIN:-target/release/xling} # XLING_BIN=... measures another build
data=load-tests/data/queries-multilingual-mixed.json
tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
"$bin" serve --grpc-addr 127.0.0.1:50311 --metrics-addr 127.0.0.1:9724 --max-queue-wait-ms 1 "$@" \
    > "$tmp/serve.log" 2>&1 &
pid=$!
# Serving once a Search is answered with anything but UNAVAILABLE (still loading).
for _ in $(seq 240); do
    "$bin" loadtest --insecure --call xling.v1.Retrieval.Search -D "$data" -n 1 \
        --summary-json "$tmp/ready.json" 127.0.0.1:50311 > /dev/null 2>&1 || true
    [ -s "$tmp/ready.json" ] && ! grep -q Unavailable "$tmp/ready.json" && break
    sleep 0.5
done
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
"$bin" loadtest --insecure --call xling.v1.Retrieval.Search -D "$data" -c 16 -z 2s 127.0.0.1:50311 > /dev/null 2>&1
before=$(cpu)
"$bin" loadtest --insecure --call xling.v1.Retrieval.Search -D "$data" -c 64 -z 10s -t 30s \
    -O json -o "$tmp/report.json" --summary-json "$tmp/summary.json" 127.0.0.1:50311 > /dev/null 2>&1
after=$(cpu)
python3 - "$tmp/summary.json" "$before" "$after" "$(getconf CLK_TCK)" "$tmp/report.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
other = {k: v for k, v in json.load(open(sys.argv[5]))["errorDistribution"].items()
         if "ResourceExhausted" not in k}
print("errors other than refusals:", other or "none")
seconds = (float(sys.argv[3]) - float(sys.argv[2])) / float(sys.argv[4])
print(f"requests {s['count']} ({s['status_codes']}): server CPU {seconds:.2f} s, "
      f"{1e6 * seconds / s['count']:.1f} us per request")
EOF
