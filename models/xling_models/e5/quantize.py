"""int8 variant: onnxruntime dynamic quantization of the fp32 graph's MatMul weights.

Dynamic quantization gives each activation tensor one uint8 scale (its min..max), so a MatMul
whose input has a few huge channels loses most of its resolution. In this model that is the
FFN output projection of a few layers (GELU outputs up to ~160x their RMS; measured: excluding
them lifts the worst cosine to fp32 from 0.992 to 0.997). A calibration pass on a small
multilingual corpus finds those inputs and keeps their MatMuls in fp32; everything else is
quantized with per-channel int8 weights. The word-embedding Gather stays fp32 (quantizing it
shrinks the file but costs accuracy).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper
from onnxruntime.quantization import QuantType, quantize_dynamic

# MatMul inputs whose absmax exceeds this many RMS stay fp32 (measured ratios: 162, 144, 122
# for the worst three FFN outputs, then 84 and below).
OUTLIER_RATIO = 100.0
CALIBRATION_DIR = Path(__file__).resolve().parents[1] / "mt5" / "corpus"


def calibration_texts() -> list[str]:
    """Sentences in 11 languages committed with the repository (not the evaluation data)."""
    files = sorted(CALIBRATION_DIR.glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"no calibration corpus in {CALIBRATION_DIR}")
    lines = [ln.strip() for f in files for ln in f.read_text(encoding="utf-8").splitlines()]
    return ["passage: " + ln for ln in lines if ln]


def outlier_matmuls(fp32_model: Path, tokenizer, texts: list[str], pad_id: int) -> dict[str, float]:
    """Names of MatMuls (``*.matmul``) whose input absmax/RMS over real tokens exceeds
    OUTLIER_RATIO, with their ratio."""
    import onnxruntime as ort

    model = onnx.load(str(fp32_model))
    inputs = {n.name: n.input[0] for n in model.graph.node if n.name.endswith(".matmul")}
    for name in sorted(set(inputs.values())):
        model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    with tempfile.TemporaryDirectory(prefix="xling-calib-") as tmp:
        probe = Path(tmp) / "probe.onnx"
        onnx.save(model, str(probe))
        session = ort.InferenceSession(str(probe), opts, providers=["CPUExecutionProvider"])
    names = sorted(set(inputs.values()))
    absmax = dict.fromkeys(names, 0.0)
    sumsq = dict.fromkeys(names, 0.0)
    size = dict.fromkeys(names, 0)
    encs = [e.ids for e in tokenizer.encode_batch(texts)]
    for start in range(0, len(encs), 16):
        batch = encs[start : start + 16]
        width = max(map(len, batch))
        ids = np.full((len(batch), width), pad_id, dtype=np.int64)
        mask = np.zeros_like(ids)
        for r, row in enumerate(batch):
            ids[r, : len(row)] = row
            mask[r, : len(row)] = 1
        outs = session.run(names, {"input_ids": ids, "attention_mask": mask})
        real = mask.astype(bool)
        for name, act in zip(names, outs):
            v = act[real]
            absmax[name] = max(absmax[name], float(np.abs(v).max()))
            sumsq[name] += float(np.square(v, dtype=np.float64).sum())
            size[name] += v.size
    ratio = {n: absmax[n] / max((sumsq[n] / size[n]) ** 0.5, 1e-12) for n in names}
    return {node: ratio[src] for node, src in inputs.items() if ratio[src] > OUTLIER_RATIO}


def quantize_int8(src: Path, dst: Path, tokenizer, pad_id: int) -> dict[str, float]:
    """Write the int8 model to ``dst``; returns the MatMuls kept in fp32 with their ratios."""
    keep = outlier_matmuls(src, tokenizer, calibration_texts(), pad_id)
    # The quantizer logs a generic "consider pre-processing" warning at WARNING level.
    logging.getLogger().setLevel(logging.ERROR)
    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        nodes_to_exclude=sorted(keep),
    )
    return keep
