#!/usr/bin/env bash
# On the GPU machine, from the repository root, after ONNX Runtime's CUDA build is unpacked in
# /opt/ort-gpu/lib (load-tests/sweep/README.md): regenerate the seeded mT5-shaped models (too big
# to carry), build their indexes, check CUDA against CPU embeddings, then run the GPU grid.
# Usage: bash load-tests/sweep/gpu-run.sh OUT_DIR   (binary: .gpu/run/xling)
set -euo pipefail
out=$1
mkdir -p "$out"
. load-tests/sweep/gpu-env.sh
x=.gpu/run/xling
(cd models && for s in mt5-small mt5-base; do python3 -m xling_models.mt5 --shape $s --out /tmp/xm/$s; done) \
    > "$out/models.log"
for d in cpu cuda; do
    $x index build --force --corpus data/demo/corpus.jsonl --model /tmp/xm/mt5-small --device $d \
        --out /tmp/xi/mt5-small-$d > "$out/index-mt5-small-$d.log" 2>&1
done
$x index build --force --corpus data/demo/corpus.jsonl --model /tmp/xm/mt5-base --device cuda \
    --out /tmp/xi/mt5-base-cuda > "$out/index-mt5-base-cuda.log" 2>&1
python3 - /tmp/xi/mt5-small-cpu /tmp/xi/mt5-small-cuda 512 <<'PY' | tee "$out/parity.txt"
import sys, numpy as np
a, b, dim = sys.argv[1], sys.argv[2], int(sys.argv[3])
x = np.fromfile(f"{a}/embeddings.f32", dtype=np.float32).reshape(-1, dim)
y = np.fromfile(f"{b}/embeddings.f32", dtype=np.float32).reshape(-1, dim)
print(f"mt5-small, {len(x)} passages, CPU vs CUDA EP: max abs diff {np.abs(x - y).max():.3g}, "
      f"min cosine {(x * y).sum(1).min():.7f}")
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt"
python3 load-tests/sweep/sweep.py run load-tests/sweep/gpu.json --out "$out"
