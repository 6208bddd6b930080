"""torch -> ONNX (fp32), then the optional fp16 / int8 conversions of that graph."""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.float16 import convert_float_to_float16

from .checkpoint import PooledEncoder

OPSET = 17
INPUTS = ["input_ids", "attention_mask"]
OUTPUT = "sentence_embedding"
PRECISIONS = ("fp32", "fp16", "int8")


def export_fp32(model: PooledEncoder, path: Path) -> None:
    """Trace with a [2, 8] example; batch and sequence stay dynamic in the graph."""
    ids = torch.ones((2, 8), dtype=torch.int64)
    mask = torch.ones((2, 8), dtype=torch.int64)
    axes = {name: {0: "batch", 1: "seq"} for name in INPUTS} | {OUTPUT: {0: "batch"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python-side shape math
        # The TorchScript exporter handles the T5 relative-position code as-is; dynamo's needs
        # extra shape hints for it and gives the same graph.
        torch.onnx.export(
            model, (ids, mask), str(path), input_names=INPUTS, output_names=[OUTPUT],
            dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True, dynamo=False,
        )  # fmt: skip
    onnx.checker.check_model(str(path))


def _ffn_output_matmuls(model: onnx.ModelProto) -> list[str]:
    """The FFN output projections (``.../DenseReluDense/wo/MatMul``, named by the exporter)."""
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and "/wo/" in n.name]


def convert(fp32: Path, out: Path, precision: str) -> None:
    """Write ``out`` as ``precision``; fp16 keeps float32 inputs/outputs, int8 is dynamic.

    Both keep the FFN output projection ``wo`` in float32, as transformers does for T5 in reduced
    precision: its input (gelu(x W0) * x W1) has the widest range in the model. Measured on an
    mt5-small-shaped model, int8 with ``wo`` kept: min cosine 0.99931; with it quantized: 0.99849.
    """
    model = onnx.load(str(fp32))
    keep = _ffn_output_matmuls(model)
    if precision == "fp16":
        # keep_io_types: the server feeds int64 ids and reads a float32 embedding either way.
        half = convert_float_to_float16(model, keep_io_types=True, node_block_list=keep)
        onnx.save_model(half, str(out))
    elif precision == "int8":
        # MatMul weights only: the embedding table stays fp32 (a Gather is cheap, and int8
        # embeddings cost the most quality).
        quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"], nodes_to_exclude=keep)  # fmt: skip
    else:
        raise ValueError(f"precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
