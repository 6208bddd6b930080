#!/usr/bin/env bash
# The batcher at the limit (issue 16), docs/batching-study.md: the raw encoder on the load's own
# queries (lone, arrival-order and length-sorted batches), then A/B rounds of old defaults vs new
# defaults, new defaults vs adaptive, and max batch 32 vs 64, closed loop c=1/32/64 and an
# open-loop overload point (RATE requests/s over 4 connections). Run under the CPU lock:
#   flock /work/notes/cpu-heavy.lock load-tests/sweep/limit.sh load-tests/results/cpu-2core-limit
# ONLY=split-vs-nosplit,old-vs-new runs just those A/Bs (the raw encoder always runs).
# DATA=FILE sends other messages (default: the 128 queries in mixed order; the same queries in
# their file order come in blocks of long ones, which swings the load's cost, see the study).
set -euo pipefail
out=${1:?usage: limit.sh OUT [RATE] [ROUNDS] [DURATION_S]}
rate=${2:-600}
rounds=${3:-2}
secs=${4:-15}
grid=load-tests/sweep/limit-cpu.json
data=${DATA:-load-tests/data/queries-multilingual-mixed.json}
mkdir -p "$out"
target/release/xling bench encoder --model ~/.cache/xling/models/multilingual-e5-small \
    --intra-threads 0 --batch-sizes 1 --seq-lens 16 --iters 2 --warmup 1 \
    --queries "$data" --query-batches 8,16,32,64 \
    --json "$out/encoder.json" | tee "$out/encoder.txt"
old="--max-batch-size 32 --max-wait-us 2000 --adaptive-wait false --max-queue-wait-ms 0 --queue-capacity 1024"
new="--max-batch-size 32 --max-wait-us 0 --adaptive-wait false --max-queue-wait-ms 1000 --queue-capacity 64"
adaptive="$new --max-wait-us 2000 --adaptive-wait true"
new64="$new --max-batch-size 64 --queue-capacity 128"
inst2="$new --encoder-instances 2 --intra-threads 1"
win4="$new --split-window 4"
win8="$new --split-window 8"
# The window's scheduling alone: no queue wait budget on either side (closed loops only).
free="$new --max-queue-wait-ms 0"
new16="$new --max-batch-size 16"
nosplit="$new --split-by-length false"
ab() {
    [ -z "${ONLY:-}" ] || [[ ",$ONLY," == *",$1,"* ]] || return 0
    python3 load-tests/sweep/ab.py "$grid" --out "$out/$1" --a="$2" --b="$3" --data "$data" \
        --concurrency "$4" --rates "$5" --rounds "$rounds" --duration-s "$secs" --raw-each-run
}
ab old-vs-new "$old" "$new" 1,32,64 "$rate"
# The admission defaults before "Admission that a closed loop cannot tip over" (study).
ab admission500-vs-new "$new --max-queue-wait-ms 500 --queue-capacity 1024" "$new" 32,64 "$rate"
ab new-vs-adaptive "$new" "$adaptive" 1,32,64 "$rate"
ab mbs32-vs-mbs64 "$new" "$new64" 32,64 "$rate"
ab split-vs-nosplit "$new" "$nosplit" 32,64 "$rate"
ab mbs32-vs-mbs16 "$new" "$new16" 32,64 "$rate"
ab inst1-vs-inst2 "$new" "$inst2" 32,64 "$rate"
ab win0-vs-win4 "$new" "$win4" 1,32,64 "$rate"
ab win0-vs-win8 "$new" "$win8" 32,64 "$rate"
# The window with admission by count only (the 1000 ms budget refused c=64 in a window run).
ab win0-vs-win4-nobudget "$new" "$win4 --max-queue-wait-ms 0" 32,64 "$rate"
ab win0-vs-win8-nobudget "$free" "$free --split-window 8" 32,64 ""
ab win0-vs-win16-nobudget "$free" "$free --split-window 16" 32,64 ""
reports=(
    --ab "$out/old-vs-new=old defaults,new defaults"
    --ab "$out/admission500-vs-new=budget 500 ms and queue 1024,new defaults"
    --ab "$out/new-vs-adaptive=new defaults,adaptive"
    --ab "$out/mbs32-vs-mbs64=new defaults,new with max batch 64"
    --ab "$out/split-vs-nosplit=new defaults,new without the length split"
    --ab "$out/mbs32-vs-mbs16=new defaults,new with max batch 16"
    --ab "$out/inst1-vs-inst2=new defaults,new with 2 instances of 1 thread"
    --ab "$out/win0-vs-win4=new defaults,new with a split window of 4"
    --ab "$out/win0-vs-win8=new defaults,new with a split window of 8"
    --ab "$out/win0-vs-win4-nobudget=new defaults,window 4 with admission by count only"
    --ab "$out/win0-vs-win8-nobudget=new without a budget,the same with a split window of 8"
    --ab "$out/win0-vs-win16-nobudget=new without a budget,the same with a split window of 16"
)
python3 load-tests/sweep/limit_report.py --bench "$out/encoder.json" "${reports[@]}" | tee "$out/limit.md"
# The goals chart needs matplotlib: the venv scripts/setup.sh made.
"${XLING_HOME:-$HOME/.cache/xling}/venv/bin/python" load-tests/sweep/limit_plot.py \
    --bench "$out/encoder.json" "${reports[@]}" --out "$out/goals.svg"
