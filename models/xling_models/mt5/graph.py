"""The mT5 encoder as an ONNX graph built with onnx.helper from numpy weights (no torch).

input_ids, attention_mask (int64 [batch, seq]) -> token embedding -> per block: RMSNorm,
self-attention (no 1/sqrt(d) scaling, relative position bias from block 0 shared by all blocks,
padding masked), residual, RMSNorm, gated-GELU FFN, residual -> final RMSNorm -> mean over the
attention mask -> L2 normalisation -> sentence_embedding (float32 [batch, d_model]).

Linear weights are stored transposed ([in, out], name + ``.T``) so MatMul needs no Transpose node.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .weights import BIAS_NAME, EPS, MAX_DISTANCE, Shape, bucket_table, layer_names

OPSET = 17
OUTPUT = "sentence_embedding"
TRANSPOSED = ".T"
LINEAR_ROLES = ("q", "k", "v", "o", "wi_0", "wi_1", "wo")


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs) -> str:
        out = f"{op_type.lower()}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def scalar(self, name: str, value: float) -> str:
        return self.const(name, np.array(value, dtype=np.float32))

    def rms_norm(self, x: str, gain: str) -> str:
        # T5 LayerNorm: no mean subtraction, no bias; x / sqrt(mean(x^2) + eps) * gain, spelled
        # the way ONNX Runtime fuses into SimplifiedLayerNormalization.
        var = self.op("ReduceMean", [self.op("Pow", [x, "two"])], axes=[-1], keepdims=1)
        rms = self.op("Sqrt", [self.op("Add", [var, "eps"])])
        return self.op("Mul", [gain, self.op("Div", [x, rms])])

    def gelu_new(self, x: str) -> str:
        # transformers' "gelu_new": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), spelled the
        # way ONNX Runtime fuses into FastGelu.
        cube = self.op("Mul", ["gelu_c", self.op("Pow", [x, "three"])])
        tanh = self.op("Tanh", [self.op("Mul", ["gelu_k", self.op("Add", [x, cube])])])
        return self.op("Mul", [self.op("Mul", ["half", x]), self.op("Add", ["one", tanh])])


def _position_bias(b: _Builder, mask_f: str) -> str:
    """[1 or batch, heads, seq, seq]: relative position bias plus -inf-ish on padded keys."""
    seq = b.op("Gather", [b.op("Shape", ["input_ids"]), "i_one"], axis=0)
    pos = b.op("Range", ["i_zero", seq, "i_one"])
    # relative[i, j] = j - i (memory minus query), clamped where the buckets stop changing.
    rel = b.op("Sub", [b.op("Unsqueeze", [pos, "ax0"]), b.op("Unsqueeze", [pos, "ax1"])])
    rel = b.op("Max", [b.op("Min", [rel, "max_dist"]), "neg_max_dist"])
    buckets = b.op("Gather", ["bucket_table", b.op("Add", [rel, "max_dist"])], axis=0)
    bias = b.op("Gather", [BIAS_NAME, buckets], axis=0)  # [seq, seq, heads]
    bias = b.op("Unsqueeze", [b.op("Transpose", [bias], perm=[2, 0, 1]), "ax0"])
    # transformers: (1 - mask) * finfo(float32).min, broadcast over heads and queries.
    masked = b.op("Mul", [b.op("Sub", ["one", mask_f]), "f32_min"])
    masked = b.op("Unsqueeze", [masked, "ax12"])  # [batch, 1, 1, seq]
    return b.op("Add", [bias, masked])


def _attention(b: _Builder, x: str, bias: str, n: dict[str, str], shape: Shape) -> str:
    def heads(y: str) -> str:  # [batch, seq, inner] -> [batch, heads, seq, d_kv]
        return b.op("Transpose", [b.op("Reshape", [y, "split_heads"])], perm=[0, 2, 1, 3])

    q, k, v = (heads(b.op("MatMul", [x, n[r] + TRANSPOSED])) for r in ("q", "k", "v"))
    scores = b.op("MatMul", [q, b.op("Transpose", [k], perm=[0, 1, 3, 2])])
    probs = b.op("Softmax", [b.op("Add", [scores, bias])], axis=-1)
    ctx = b.op("Transpose", [b.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    ctx = b.op("Reshape", [ctx, "merge_heads"])
    return b.op("MatMul", [ctx, n["o"] + TRANSPOSED])


def _feed_forward(b: _Builder, x: str, n: dict[str, str]) -> str:
    gate = b.gelu_new(b.op("MatMul", [x, n["wi_0"] + TRANSPOSED]))
    lin = b.op("MatMul", [x, n["wi_1"] + TRANSPOSED])
    return b.op("MatMul", [b.op("Mul", [gate, lin]), n["wo"] + TRANSPOSED])


def _constants(b: _Builder, shape: Shape) -> None:
    for name, value in {
        "eps": EPS,
        "one": 1.0,
        "half": 0.5,
        "two": 2.0,
        "three": 3.0,
        "gelu_c": 0.044715,
        "gelu_k": math.sqrt(2.0 / math.pi),
        "f32_min": float(np.finfo(np.float32).min),
        "pool_floor": 1e-9,
        "norm_floor": 1e-12,
    }.items():
        b.scalar(name, value)
    i64 = {
        "i_zero": np.array(0),
        "i_one": np.array(1),
        "max_dist": np.array(MAX_DISTANCE),
        "neg_max_dist": np.array(-MAX_DISTANCE),
        "ax0": np.array([0]),
        "ax1": np.array([1]),
        "ax12": np.array([1, 2]),
        "ax2": np.array([2]),
        "split_heads": np.array([0, 0, shape.heads, shape.d_kv]),
        "merge_heads": np.array([0, 0, shape.inner]),
        "bucket_table": bucket_table(),
    }
    for name, value in i64.items():
        b.const(name, value.astype(np.int64))


def build(shape: Shape, weights: dict[str, np.ndarray], metadata: dict[str, str]) -> onnx.ModelProto:
    """The whole encoder graph; ``weights`` use Hugging Face names and orientation."""
    b = _Builder()
    _constants(b, shape)
    for name, value in weights.items():
        role = name.rsplit(".", 2)[-2]
        if value.ndim == 2 and role in LINEAR_ROLES:
            b.const(name + TRANSPOSED, np.ascontiguousarray(value.T))
        else:
            b.const(name, value)

    mask_f = b.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    x = b.op("Gather", ["shared.weight", "input_ids"], axis=0)
    bias = _position_bias(b, mask_f)
    for i in range(shape.layers):
        n = layer_names(i)
        x = b.op("Add", [x, _attention(b, b.rms_norm(x, n["attn_norm"]), bias, n, shape)])
        x = b.op("Add", [x, _feed_forward(b, b.rms_norm(x, n["ff_norm"]), n)])
    x = b.rms_norm(x, "encoder.final_layer_norm.weight")

    # Mean over real tokens (padding excluded), then unit length, as sentence-transformers does.
    mask3 = b.op("Unsqueeze", [mask_f, "ax2"])
    summed = b.op("ReduceSum", [b.op("Mul", [x, mask3]), "ax1"], keepdims=0)
    count = b.op("Max", [b.op("ReduceSum", [mask3, "ax1"], keepdims=0), "pool_floor"])
    mean = b.op("Div", [summed, count])
    norm = b.op("Max", [b.op("ReduceL2", [mean], axes=[1], keepdims=1), "norm_floor"])
    b.nodes.append(helper.make_node("Div", [mean, norm], [OUTPUT], name="l2_normalize"))

    ids = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"]) for n in ("input_ids", "attention_mask")
    ]
    out = helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", shape.d_model])
    graph = helper.make_graph(b.nodes, "mt5_encoder", ids, [out], initializer=b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="xling_models.mt5")
    model.ir_version = 8  # opset 17's IR; keeps the file loadable by older runtimes too
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model, full_check=True)
    return model


def read_weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The Hugging Face state dict back from a graph made by :func:`build` (for parity checks)."""
    out = {}
    for init in model.graph.initializer:
        value = numpy_helper.to_array(init)
        if init.name.endswith(TRANSPOSED):
            out[init.name[: -len(TRANSPOSED)]] = value.T
        elif init.name.startswith(("shared.", "encoder.")):
            out[init.name] = value
    return out
