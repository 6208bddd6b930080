"""ONNX Runtime against PyTorch on a padded multilingual batch; the figures decide pass or fail."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from tokenizers import Tokenizer

from .checkpoint import PooledEncoder
from .onnx_export import OUTPUT

# Different scripts and lengths, so the batch is padded and every path of the tokenizer runs.
TEXTS = [
    "Where does the river divide the old town?",
    (
        "Der Fluss teilt die Altstadt in zwei Viertel mit sehr unterschiedlicher Geschichte, und jedes "
        "Frühjahr stehen die unteren Straßen manchmal mehrere Tage unter Wasser."
    ),
    "这条河流经老城。",
    "Река протекает через старый город и делит его на два квартала.",
    "يجري النهر عبر المدينة القديمة",
    "แม่น้ำไหลผ่านเมืองเก่า",
    "नदी पुराने शहर के बीच से बहती है।",
    "ok",
]
MAX_ABS_DIFF_FP32 = 1e-4
MIN_COSINE_REDUCED = 0.999


@dataclass(frozen=True)
class Verdict:
    precision: str
    max_abs_diff: float
    min_cosine: float
    tokens: int  # padded batch width

    @property
    def passed(self) -> bool:
        if self.precision == "fp32":
            return self.max_abs_diff <= MAX_ABS_DIFF_FP32
        return self.min_cosine >= MIN_COSINE_REDUCED

    def __str__(self) -> str:
        bar = (
            f"max abs diff <= {MAX_ABS_DIFF_FP32}"
            if self.precision == "fp32"
            else f"min cosine >= {MIN_COSINE_REDUCED}"
        )
        return (
            f"{self.precision}: max abs diff {self.max_abs_diff:.3e}, min cosine {self.min_cosine:.6f} "
            f"over {len(TEXTS)} texts padded to {self.tokens} tokens ({bar}: {'PASS' if self.passed else 'FAIL'})"
        )


def padded_batch(tokenizer_json: str, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    tok = Tokenizer.from_str(tokenizer_json)
    encs = tok.encode_batch(TEXTS)
    width = min(max(len(e.ids) for e in encs), max_length)
    ids = np.zeros((len(TEXTS), width), np.int64)
    mask = np.zeros_like(ids)
    for i, e in enumerate(encs):
        n = min(len(e.ids), width)
        ids[i, :n] = e.ids[:n]
        mask[i, :n] = 1
    return ids, mask


def verify(model: PooledEncoder, onnx_path: Path, precision: str, tokenizer_json: str, max_length: int) -> Verdict:
    ids, mask = padded_batch(tokenizer_json, max_length)
    with torch.no_grad():
        want = model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT], {"input_ids": ids, "attention_mask": mask})[0].astype(np.float32)
    if not np.isfinite(got).all():
        return Verdict(precision, float("inf"), float("-inf"), ids.shape[1])
    # Both sides are unit length, so the row-wise dot product is the cosine.
    cos = np.sum(got * want, axis=1)
    return Verdict(precision, float(np.abs(got - want).max()), float(cos.min()), ids.shape[1])
