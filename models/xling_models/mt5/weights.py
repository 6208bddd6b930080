"""mT5 encoder shapes and seeded random weights, named and laid out as Hugging Face's state dict.

Weights follow transformers' T5 initialisation (normal, std from the fan-in), so activations keep
a sane scale through the layers; the RMSNorm gains are jittered around 1 so that a parity check
against transformers notices a dropped or misplaced gain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NUM_BUCKETS = 32
MAX_DISTANCE = 128
EPS = 1e-6
BIAS_NAME = "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"


@dataclass(frozen=True)
class Shape:
    d_model: int
    d_kv: int
    heads: int
    d_ff: int
    layers: int
    vocab: int  # target SentencePiece vocabulary size (a soft limit: small corpora give fewer)

    @property
    def inner(self) -> int:
        return self.heads * self.d_kv


SHAPES: dict[str, Shape] = {
    "tiny": Shape(d_model=64, d_kv=16, heads=4, d_ff=128, layers=2, vocab=2000),
    "mt5-small": Shape(d_model=512, d_kv=64, heads=6, d_ff=1024, layers=8, vocab=8000),
    "mt5-base": Shape(d_model=768, d_kv=64, heads=12, d_ff=2048, layers=12, vocab=8000),
}


def layer_names(i: int) -> dict[str, str]:
    """Short role -> Hugging Face name for the tensors of encoder block ``i``."""
    attn = f"encoder.block.{i}.layer.0"
    ff = f"encoder.block.{i}.layer.1"
    return {
        "attn_norm": f"{attn}.layer_norm.weight",
        "q": f"{attn}.SelfAttention.q.weight",
        "k": f"{attn}.SelfAttention.k.weight",
        "v": f"{attn}.SelfAttention.v.weight",
        "o": f"{attn}.SelfAttention.o.weight",
        "ff_norm": f"{ff}.layer_norm.weight",
        "wi_0": f"{ff}.DenseReluDense.wi_0.weight",
        "wi_1": f"{ff}.DenseReluDense.wi_1.weight",
        "wo": f"{ff}.DenseReluDense.wo.weight",
    }


def random_weights(shape: Shape, vocab: int, seed: int) -> dict[str, np.ndarray]:
    """Seeded float32 weights, Hugging Face names and orientation (linear weights are [out, in]).

    The draw order is fixed, so the same seed and numpy version give identical arrays.
    """
    rng = np.random.default_rng(seed)
    d, inner, ff = shape.d_model, shape.inner, shape.d_ff

    def normal(rows: int, cols: int, std: float) -> np.ndarray:
        return rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(std)

    def gain() -> np.ndarray:
        return np.float32(1.0) + rng.standard_normal(d, dtype=np.float32) * np.float32(0.1)

    w = {"shared.weight": normal(vocab, d, 1.0)}
    w[BIAS_NAME] = normal(NUM_BUCKETS, shape.heads, d**-0.5)
    for i in range(shape.layers):
        n = layer_names(i)
        w[n["attn_norm"]] = gain()
        w[n["q"]] = normal(inner, d, (d * shape.d_kv) ** -0.5)
        w[n["k"]] = normal(inner, d, d**-0.5)
        w[n["v"]] = normal(inner, d, d**-0.5)
        w[n["o"]] = normal(d, inner, inner**-0.5)
        w[n["ff_norm"]] = gain()
        w[n["wi_0"]] = normal(ff, d, d**-0.5)
        w[n["wi_1"]] = normal(ff, d, d**-0.5)
        w[n["wo"]] = normal(d, ff, ff**-0.5)
    w["encoder.final_layer_norm.weight"] = gain()
    return w


def relative_position_bucket(relative: np.ndarray) -> np.ndarray:
    """T5's bidirectional bucket of ``memory - query`` positions, in float32 like transformers."""
    half = NUM_BUCKETS // 2
    exact = half // 2
    buckets = (relative > 0).astype(np.int64) * half
    distance = np.abs(relative).astype(np.int64)
    # log(0) is never used (is_small covers it); the floor at 1 only keeps the warning away.
    scaled = np.log(np.maximum(distance, 1).astype(np.float32) / np.float32(exact))
    scaled = scaled / np.float32(math.log(MAX_DISTANCE / exact)) * np.float32(half - exact)
    large = np.minimum(exact + scaled.astype(np.int64), half - 1)
    return buckets + np.where(distance < exact, distance, large)


def bucket_table() -> np.ndarray:
    """Buckets for relative positions -MAX_DISTANCE..MAX_DISTANCE; farther ones clamp to the ends.

    A lookup table instead of in-graph float math: the truncation at bucket edges (16, 32, 64)
    must round exactly as transformers does, and a table pins that for every runtime.
    """
    return relative_position_bucket(np.arange(-MAX_DISTANCE, MAX_DISTANCE + 1, dtype=np.int64))
