#!/bin/bash
# Qdrant backend vs embedded index, same model, same index data, one run on one machine:
# upload rate to Qdrant, then Search throughput and p50/p99 at concurrency 1 and 32 in
# alternating rounds (embedded, qdrant, embedded, qdrant, ...), and the mean search time the
# server reports (Timing.search_us: the index call alone, where Qdrant's cost shows).
# Qdrant runs on the same cores as xling and the load generator (say so with the figures).
# Language routing: the same data uploaded twice, tenant (payload filter, is_tenant index) and
# shard-key (one custom shard key per language), compared on single-language filtered queries
# (Qdrant runs in cluster mode, one peer, which custom sharding needs).
# Usage: [N1=300 N32=2000] docs/qdrant-bench.sh OUTDIR INDEX_DIR [ROUNDS]
#   INDEX_DIR: a folder index (xling index build --out); its embeddings are uploaded as they
#   are (xling index upload), so both backends serve identical vectors.
# From the repository root after `cargo build --release -p xling`; run under the CPU lock:
#   flock /work/notes/cpu-heavy.lock docs/qdrant-bench.sh /tmp/qbench /tmp/xqr-index
set -u
X=${XLING_BINARY:-./target/release/xling}
Q=${XLING_QDRANT_BIN:-../shared/bin/qdrant}
OUT=$1
INDEX=$2
ROUNDS=${3:-3}
MODEL=${XLING_MODEL:-${XLING_HOME:-$HOME/.cache/xling}/models/multilingual-e5-small}
mkdir -p "$OUT/qdrant"
OUT=$(cd "$OUT" && pwd)
Q=$(cd "$(dirname "$Q")" && pwd)/$(basename "$Q")

(cd "$OUT/qdrant" && QDRANT__SERVICE__HTTP_PORT=6433 QDRANT__SERVICE__GRPC_PORT=6434 \
    QDRANT__SERVICE__HOST=127.0.0.1 QDRANT__LOG_LEVEL=WARN QDRANT__CLUSTER__ENABLED=true \
    QDRANT__CLUSTER__P2P__PORT=6435 exec "$Q" --disable-telemetry --uri http://127.0.0.1:6435 \
    >"$OUT/qdrant.log" 2>&1) &
QPID=$!
PIDS="$QPID"
trap 'kill $PIDS 2>/dev/null' EXIT
for _ in $(seq 1 100); do curl -sf 127.0.0.1:6433/readyz >/dev/null && break; sleep 0.2; done

for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/6434) 2>/dev/null && break; sleep 0.2; done
$X index upload "$INDEX" --qdrant-url http://127.0.0.1:6434 --qdrant-collection bench --force \
    2>&1 | tee "$OUT/upload.txt"
$X index upload "$INDEX" --qdrant-url http://127.0.0.1:6434 --qdrant-collection bench-keys \
    --language-routing shard-key --force 2>&1 | tee "$OUT/upload-keys.txt"

serve() { # PORT [extra flags]
    local port=$1; shift
    $X serve --model "$MODEL" --index "$INDEX" --grpc-addr 127.0.0.1:$port \
        --metrics-addr off "$@" >"$OUT/serve-$port.log" 2>&1 &
    PIDS="$PIDS $!"
}
serve 50071
serve 50072 --index-backend qdrant --qdrant-url http://127.0.0.1:6434 --qdrant-collection bench
serve 50073 --index-backend qdrant --qdrant-url http://127.0.0.1:6434 --qdrant-collection bench-keys
for port in 50071 50072 50073; do
    for _ in $(seq 1 240); do grep -q '"serving"\|serving' "$OUT/serve-$port.log" && break; sleep 0.5; done
done

$X loadtest --from-xquad /work/shared/data/xquad-r --langs en,de,es,ru,zh,ar,hi \
    --per-lang 100 --top-k 10 --out "$OUT/queries.json" >/dev/null
# The same questions, each filtered to one language (rotating over the 7).
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
queries = json.load(open(f"{out}/queries.json"))
langs = ["en", "de", "es", "ru", "zh", "ar", "hi"]
for i, q in enumerate(queries):
    q["languages"] = [langs[i % len(langs)]]
json.dump(queries, open(f"{out}/queries-filtered.json", "w"))
PY

for round in $(seq 1 "$ROUNDS"); do
    for c in 1 32; do
        n=$([ "$c" = 1 ] && echo "${N1:-300}" || echo "${N32:-2000}")
        for backend in embedded:50071 qdrant:50072; do
            name=${backend%%:*}; port=${backend##*:}
            $X loadtest --config load-tests/search-concurrency.json 127.0.0.1:$port \
                -D "$OUT/queries.json" -c "$c" -n "$n" --skipFirst 20 \
                --summary-json "$OUT/$name-c$c-r$round.json" >/dev/null 2>&1
        done
    done
    for backend in embedded:50071 qdrant:50072 qdrant-keys:50073; do
        name=${backend%%:*}; port=${backend##*:}
        $X loadtest --config load-tests/search-concurrency.json 127.0.0.1:$port \
            -D "$OUT/queries-filtered.json" -c 32 -n "${N32:-2000}" --skipFirst 20 \
            --summary-json "$OUT/$name-filtered-r$round.json" >/dev/null 2>&1
    done
done

python3 - "$OUT" "$ROUNDS" <<'PY' | tee "$OUT/result.md"
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def med(name, c, key):
    vals = [json.load(open(f"{out}/{name}-c{c}-r{r}.json"))[key] for r in range(1, rounds + 1)]
    return statistics.median(v or 0.0 for v in vals)
print(f"| concurrency | backend | Search/s | p50 ms | p99 ms | server search ms (mean) | errors |")
print("|---|---|---|---|---|---|---|")
for c in (1, 32):
    for name in ("embedded", "qdrant"):
        errors = sum(json.load(open(f"{out}/{name}-c{c}-r{r}.json"))["errors"] for r in range(1, rounds + 1))
        print(f"| {c} | {name} | {med(name, c, 'ok_rps'):.1f} | {med(name, c, 'p50_ms'):.1f} | "
              f"{med(name, c, 'p99_ms'):.1f} | {med(name, c, 'server_search_ms_mean'):.2f} | {errors} |")
for c in (1, 32):
    r = med("qdrant", c, "ok_rps") / med("embedded", c, "ok_rps")
    d = med("qdrant", c, "server_search_ms_mean") - med("embedded", c, "server_search_ms_mean")
    p = med("qdrant", c, "p99_ms") / med("embedded", c, "p99_ms")
    print(f"\nc={c}: qdrant/embedded throughput {r:.2f}, p99 ratio {p:.2f}, search time added {d:.2f} ms")
print("\nOne-language filter, concurrency 32:\n")
print("| backend | Search/s | p50 ms | p99 ms | server search ms (mean) | errors |")
print("|---|---|---|---|---|---|")
for name in ("embedded", "qdrant", "qdrant-keys"):
    f = lambda key: statistics.median(json.load(open(f"{out}/{name}-filtered-r{r}.json"))[key] or 0.0 for r in range(1, rounds + 1))
    errors = sum(json.load(open(f"{out}/{name}-filtered-r{r}.json"))["errors"] for r in range(1, rounds + 1))
    label = {"qdrant": "qdrant, tenant routing", "qdrant-keys": "qdrant, shard-key routing"}.get(name, name)
    print(f"| {label} | {f('ok_rps'):.1f} | {f('p50_ms'):.1f} | {f('p99_ms'):.1f} | {f('server_search_ms_mean'):.2f} | {errors} |")
print(f"\n(medians of {rounds} alternating rounds)")
PY
