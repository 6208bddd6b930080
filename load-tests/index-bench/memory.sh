#!/usr/bin/env bash
# What an index costs a serving process (issue 13's "RSS after load"), comparable with
# bench_libs.py's "RSS added by the load": `xling serve --encoder null` (no model in the
# process) on INDEX and on the 400-passage demo index (the baseline: runtime, no index); VmRSS
# at SERVING and after a pass of Search{vector} requests (which touches the mapped rows), the
# index's own bytes in RAM vs mapped from /metrics, and the time to SERVING.
#   load-tests/index-bench/memory.sh INDEX REQUESTS.json     (requests: run.sh's requests.json)
set -euo pipefail
index=${1:?usage: memory.sh INDEX REQUESTS.json}
requests=${2:?usage: memory.sh INDEX REQUESTS.json}
repo=$(cd "$(dirname "$0")/../.." && pwd)
home=${XLING_HOME:-$HOME/.cache/xling}
xling=${XLING_BIN:-$repo/target/release/xling}
model=${XLING_MODEL:-$home/models/multilingual-e5-small}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

measure() { # NAME INDEX: prints startup, RSS at SERVING and after the requests, /metrics bytes
    local name=$1 dir=$2 port=$((53000 + RANDOM % 1000)) mport=$((54000 + RANDOM % 1000))
    local started ready pid
    started=$(date +%s.%N)
    "$xling" serve --index "$dir" --model "$model" --encoder null \
        --grpc-addr "127.0.0.1:$port" --metrics-addr "127.0.0.1:$mport" >"$log" 2>&1 &
    pid=$!
    until grep -qs serving "$log"; do
        kill -0 $pid 2>/dev/null || { cat "$log"; exit 1; }
        sleep 0.05
    done
    ready=$(date +%s.%N)
    local rss0 rss1 bytes
    rss0=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
    "$xling" loadtest --call xling.v1.Retrieval/Search --insecure -c 8 -n 4000 \
        --data-file "$requests" "127.0.0.1:$port" >/dev/null
    rss1=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
    bytes=$(curl -s "127.0.0.1:$mport/metrics" | awk '/^xling_index_bytes/ {printf "%s=%s ", $1, $2}')
    kill $pid; wait $pid 2>/dev/null || true
    printf '%-8s startup_s %.2f rss_serving_mib %.1f rss_after_queries_mib %.1f %s\n' "$name" \
        "$(echo "$ready - $started" | bc)" "$(echo "$rss0 / 1024" | bc -l)" \
        "$(echo "$rss1 / 1024" | bc -l)" "$bytes"
}

measure baseline "$home/indexes/demo"
measure index "$index"
