#!/usr/bin/env bash
# The saturated latency tail, A against B, with every request's latency kept (issue 16, goal 2;
# docs/batching-study.md, "The window under the new admission"): ROUNDS alternating rounds, each
# variant a fresh `xling serve` (default model, demo index) with its flags, ready once a Search
# answers OK, warmed 2 s at c=16, then closed loops at c=32 and c=64 for SECS s each, sending
# the mixed-order queries. Writes OUT/<round>-<A|B>/c<C>.json (ghz-format reports with details)
# and OUT/tails.md (drift.py: p99/mean as measured and with the machine's drift taken out).
# Run under the CPU lock:
#   flock /work/notes/cpu-heavy.lock load-tests/sweep/tail_ab.sh OUT 3 15 "" "--split-window 4"
set -euo pipefail
out=${1:?usage: tail_ab.sh OUT ROUNDS SECS FLAGS_A FLAGS_B}
rounds=${2:?}
secs=${3:?}
declare -A flags=([A]="${4-}" [B]="${5-}")
bin=target/release/xling
data=load-tests/data/queries-multilingual-mixed.json
addr=127.0.0.1:50291
mkdir -p "$out"
search() { "$bin" loadtest --insecure --call xling.v1.Retrieval/Search "$@" "$addr"; }
for r in $(seq "$rounds"); do
    order="A B"; (( r % 2 )) || order="B A"
    for v in $order; do
        # shellcheck disable=SC2086  # the flags are words
        "$bin" serve --grpc-addr "$addr" --metrics-addr 127.0.0.1:9731 ${flags[$v]} \
            >> "$out/serve.log" 2>&1 &
        srv=$!
        ready=
        for _ in $(seq 120); do
            if search -d '{"query": "hello", "top_k": 3}' -n 1 -c 1 -O json 2>/dev/null \
                | grep -q '"OK"'; then ready=1; break; fi
            sleep 1
        done
        [ -n "$ready" ] || { echo "xling serve ${flags[$v]} never answered" >&2; kill "$srv"; exit 1; }
        search -D "$data" -c 16 -z 2s -O json -o /dev/null > /dev/null
        mkdir -p "$out/$r-$v"
        for c in 32 64; do
            search -D "$data" -c "$c" -z "${secs}s" --duration-stop wait -t 30s -O json \
                -o "$out/$r-$v/c$c.json" > /dev/null 2>&1
        done
        kill "$srv"; wait "$srv" || true
    done
done
{
    echo "A: \`${flags[A]:-(defaults)}\`; B: \`${flags[B]:-(defaults)}\`; $rounds rounds, $secs s a point."
    echo
    python3 load-tests/sweep/drift.py "$out"/*/c*.json
} > "$out/tails.md"
cat "$out/tails.md"
