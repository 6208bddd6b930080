"""Writes an xling model folder holding a seeded random mT5 encoder and its tokenizer."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import onnx

from ..folder import Manifest, Staging
from . import graph, tokenizer
from .weights import SHAPES, random_weights

MAX_LENGTH = 512


@dataclass(frozen=True)
class Report:
    out: Path
    vocab: int
    seconds: float
    files: dict[str, tuple[int, str]]  # name -> (bytes, sha256)


def generate(shape_name: str, out: Path, seed: int = 0, corpus: list[Path] | None = None,
             vocab_size: int | None = None) -> Report:  # fmt: skip
    """Build ``out`` (replaced whole) for one of :data:`SHAPES`; same arguments, same bytes."""
    if shape_name not in SHAPES:
        raise ValueError(f"unknown shape {shape_name!r}; expected one of {', '.join(SHAPES)}")
    shape = SHAPES[shape_name]
    t0 = time.perf_counter()
    sp_model = tokenizer.train(tokenizer.read_corpus(corpus), vocab_size or shape.vocab)
    tok_json = tokenizer.to_hf_json(sp_model)
    vocab = tokenizer.piece_count(sp_model)
    weights = random_weights(shape, vocab, seed)
    meta = {"xling.shape": shape_name, "xling.seed": str(seed), "xling.vocab": str(vocab)}
    model = graph.build(shape, weights, meta)
    manifest = Manifest(
        id=f"xling/{model_name(shape_name)}-random",
        dim=shape.d_model,
        max_length=MAX_LENGTH,
        precision="fp32",
        description=(
            f"mT5 encoder architecture ({shape_name}: d_model={shape.d_model}, heads={shape.heads}, "
            f"d_kv={shape.d_kv}, d_ff={shape.d_ff}, layers={shape.layers}) with seeded random weights "
            f"(seed {seed}) and a {vocab}-piece SentencePiece vocabulary; for tests and benchmarks, "
            "not retrieval quality"
        ),
    )
    with Staging(out) as tmp:
        onnx.save_model(model, tmp / manifest.onnx)
        (tmp / manifest.tokenizer).write_text(tok_json, encoding="utf-8")
        manifest.write(tmp)
    files = {p.name: (p.stat().st_size, sha256(p)) for p in sorted(out.iterdir())}
    return Report(out=out, vocab=vocab, seconds=time.perf_counter() - t0, files=files)


def model_name(shape_name: str) -> str:
    """``tiny`` -> ``mt5-tiny``; the mT5 shapes keep their names (also the cache folder names)."""
    return shape_name if shape_name.startswith("mt5-") else f"mt5-{shape_name}"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
