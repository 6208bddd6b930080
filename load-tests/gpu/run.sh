#!/usr/bin/env bash
# The GPU session's one script (issue 17; built and dry-run on CPU in issue 16). In one run on one
# card: for the mt5-small and mt5-base shapes, the service (`xling bench pipeline`: xling serve
# + the load generator) at saturation and at 50% load for encoder instances 1/2/3, raw ONNX
# Runtime at the service's own padded shapes, the host ceiling (null encoder), and CUDA vs CPU
# embeddings. Writes CSV/JSON, plots and summary.md to OUT_DIR. Under 8 minutes on the GPU
# machine with the defaults.
#
#   bash load-tests/gpu/run.sh OUT_DIR              # on the GPU machine (see load-tests/README.md)
#   bash load-tests/gpu/run.sh OUT_DIR --dry-run    # here, on CPU: the same steps, short points
#
# Preparing the GPU session (../shared/GPU.md): here, `cargo build --release -p xling` then
# `mkdir -p .gpu/run && strip -o .gpu/run/xling target/release/xling` (about 127 MB with debug
# info, far less stripped; the transfer holds 64 MiB), and `../shared/tools/gpu-pack.sh` for the
# CUDA build of ONNX Runtime (one part per transfer, `bash .gpu/unpack.sh 1.31.1 4` there). Only 8
# files come back from $OUT, so run it into a scratch folder and bring back one archive:
#   bash load-tests/gpu/run.sh /tmp/gpu-run; tar czf "$OUT/gpu-run.tgz" -C /tmp/gpu-run .
#
# GPU mode expects ONNX Runtime's CUDA build in /opt/ort-gpu/lib (../shared/GPU.md; env.sh sets
# the library paths) and the release binary at $XLING_BIN (default .gpu/run/xling, built here:
# the GPU machine has no Rust). It regenerates the seeded mT5-shaped models with the project's
# generator (torch and onnx are installed there; they are too big to carry). The dry run uses the
# setup script's copies of the same models if present ($XLING_HOME/models), else generates them.
set -euo pipefail
out=${1:?usage: run.sh OUT_DIR [--dry-run]}
mode=${2:-gpu}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
started=$(date +%s)
stamp() { echo "[$(( $(date +%s) - started ))s] $*" | tee -a "$out/run.log"; }

if [ "$mode" = "--dry-run" ]; then
    device=cpu
    bin=${XLING_BIN:-target/release/xling}
    py=${PYTHON:-$HOME/.cache/xling/venv/bin/python}
    shapes=${SHAPES:-mt5-small mt5-base}
    dur=${DURATION_S:-2}; warm=${WARMUP_S:-1}; conc=${CONCURRENCY:-32}
    serve="--max-batch-size 32 --max-wait-us 0"
    raw_iters=3
    models=${XLING_HOME:-$HOME/.cache/xling}/models
    echo "dry run on CPU ($(nproc) cores): only the device differs from the GPU run" > "$out/device.txt"
else
    [ "$mode" = gpu ] || { echo "unknown mode $mode (expected --dry-run)" >&2; exit 2; }
    . "$here/env.sh"
    device=cuda
    bin=${XLING_BIN:-.gpu/run/xling}
    py=${PYTHON:-python3}
    shapes=${SHAPES:-mt5-small mt5-base}
    dur=${DURATION_S:-8}; warm=${WARMUP_S:-2}; conc=${CONCURRENCY:-256}
    serve="--max-batch-size 128 --max-wait-us 0"
    raw_iters=20
    models=/tmp/xm
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/device.txt"
fi
"$bin" --version > "$out/version.txt"
stamp "device $device, binary $bin, shapes: $shapes, $dur s a point, concurrency $conc"

for s in $shapes; do
    mkdir -p "$out/logs/$s"
    if [ ! -f "$models/$s/model.toml" ]; then
        stamp "generating $s into $models/$s"
        (cd models && "$py" -m xling_models.mt5 --shape "$s" --out "$models/$s") >> "$out/logs/models.log" 2>&1
    fi
    stamp "index of the demo corpus with $s on $device"
    "$bin" index build --force --corpus data/demo/corpus.jsonl --model "$models/$s" \
        --device "$device" --out "/tmp/xling-gpu-run/index-$s" > "$out/logs/index-$s.log" 2>&1
done

first=${shapes%% *}
stamp "parity: $first embeddings on $device vs cpu"
"$bin" index build --force --corpus data/demo/corpus.jsonl --model "$models/$first" \
    --device cpu --out "/tmp/xling-gpu-run/index-$first-cpu" > "$out/logs/index-$first-cpu.log" 2>&1
"$py" "$here/report.py" parity "/tmp/xling-gpu-run/index-$first" "/tmp/xling-gpu-run/index-$first-cpu" \
    "$first on $device vs cpu" | tee "$out/parity.txt"

for s in $shapes; do
    stamp "service on $s: instances 1,2,3 at saturation and 50% load, raw ORT at its shapes"
    "$bin" bench pipeline --model "$models/$s" --index "/tmp/xling-gpu-run/index-$s" \
        --device "$device" --encoder onnx --instances 1,2,3 --concurrency "$conc" \
        --duration-s "$dur" --warmup-s "$warm" --half-load --raw --raw-iters "$raw_iters" \
        --serve-args "$serve" --log-dir "$out/logs/$s" --json "$out/pipeline-$s.json" \
        | tee "$out/pipeline-$s.txt"
done

mkdir -p "$out/logs/null"
stamp "host ceiling: null encoder on $first's tokenizer and index"
"$bin" bench pipeline --model "$models/$first" --index "/tmp/xling-gpu-run/index-$first" \
    --null-encoder --instances 1 --concurrency "$conc" --duration-s "$dur" --warmup-s "$warm" \
    --serve-args "$serve" --log-dir "$out/logs/null" --json "$out/null.json" | tee "$out/null.txt"

stamp "report and plots"
"$py" "$here/report.py" report "$out"
stamp "done"
