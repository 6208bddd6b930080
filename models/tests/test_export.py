"""The Hugging Face export tool, and the numpy-built mT5 graph against transformers' MT5EncoderModel.

Needs torch + transformers: run through models/test-export.sh (its own venv); skipped elsewhere.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tomllib

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tokenizers import Tokenizer
from transformers.models.t5.modeling_t5 import T5Attention
from xling_models.export.__main__ import export, main
from xling_models.export.checkpoint import PooledEncoder, tokenizer_json
from xling_models.export.verify import padded_batch
from xling_models.mt5 import graph, tokenizer
from xling_models.mt5.weights import SHAPES, relative_position_bucket

COMMITTED = Path(__file__).resolve().parents[1] / "mt5-tiny"


def mt5_config(shape_name: str, vocab: int) -> transformers.MT5Config:
    s = SHAPES[shape_name]
    return transformers.MT5Config(
        vocab_size=vocab, d_model=s.d_model, d_kv=s.d_kv, d_ff=s.d_ff, num_layers=s.layers,
        num_heads=s.heads, feed_forward_proj="gated-gelu", dropout_rate=0.0, tie_word_embeddings=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def sp_model() -> bytes:
    return tokenizer.train(tokenizer.read_corpus(), SHAPES["tiny"].vocab)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, sp_model) -> Path:
    """A small random MT5EncoderModel saved as transformers does, with a SentencePiece model."""
    ckpt = tmp_path_factory.mktemp("ckpt") / "mt5-test"
    torch.manual_seed(0)
    model = transformers.MT5EncoderModel(mt5_config("tiny", tokenizer.piece_count(sp_model)))
    model.save_pretrained(ckpt)
    (ckpt / "spiece.model").write_bytes(sp_model)
    return ckpt


# The parity each precision reaches on the tiny random checkpoint (seeded, so the same every
# run; measured max abs diff / min cosine: fp32 9.1e-8 / 1.000000, fp16 2.6e-3 / 0.999749, int8
# 6.5e-3 / 0.999788), with headroom; the tool's own bar for fp16 and int8 is min cosine 0.999.
MAX_ABS_DIFF = {"fp32": 1e-5, "fp16": 5e-3, "int8": 2e-2}
# A good share of the weights is stored in this type (the FFN output projections stay float32
# in both reduced precisions, and int8 keeps the embedding table float32).
WEIGHT_TYPE = {"fp32": onnx.TensorProto.FLOAT, "fp16": onnx.TensorProto.FLOAT16,
               "int8": onnx.TensorProto.INT8}


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_export_verifies_and_writes_a_model_folder(checkpoint, tmp_path, precision):
    out = tmp_path / precision
    verdict = export(checkpoint, out, precision)
    assert verdict.passed, str(verdict)
    assert verdict.max_abs_diff <= MAX_ABS_DIFF[precision], str(verdict)
    assert verdict.min_cosine >= 0.999
    sizes = Counter()
    for w in onnx.load(str(out / "model.onnx")).graph.initializer:
        sizes[w.data_type] += int(np.prod(w.dims))
    assert sizes[WEIGHT_TYPE[precision]] >= sum(sizes.values()) / 4, sizes
    m = tomllib.loads((out / "model.toml").read_text())
    assert (m["id"], m["dim"], m["precision"], m["pooling"]) == ("mt5-test", 64, precision, "graph")
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
    assert session.get_outputs()[0].name == "sentence_embedding"
    ids = Tokenizer.from_file(str(out / "tokenizer.json")).encode("Der Fluss").ids
    assert ids[-1] == 1  # T5 appends </s>


def test_export_refuses_what_it_cannot_export(tmp_path, capsys):
    assert main(["--checkpoint", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 1
    assert "no config.json" in capsys.readouterr().err
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert main(["--checkpoint", str(bert), "--out", str(tmp_path / "o")]) == 1
    assert "model_type 'bert' is not supported" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_our_tokenizer_json_equals_transformers_conversion(checkpoint, sp_model):
    theirs = Tokenizer.from_str(tokenizer_json(checkpoint))
    ours = Tokenizer.from_str(tokenizer.to_hf_json(sp_model))
    texts = tokenizer.read_corpus() + ["  leading and   inner   spaces  ", "\u2603 snowman ①②"]
    assert [ours.encode(t).ids for t in texts] == [theirs.encode(t).ids for t in texts]


def test_relative_position_buckets_equal_transformers():
    rel = torch.arange(-700, 701)
    want = T5Attention._relative_position_bucket(rel, bidirectional=True, num_buckets=32, max_distance=128)
    assert (relative_position_bucket(rel.numpy()) == want.numpy()).all()


def test_generated_graph_is_transformers_mt5_encoder():
    """The committed numpy-built graph, its weights loaded into MT5EncoderModel, gives the same vectors."""
    weights = graph.read_weights(onnx.load(str(COMMITTED / "model.onnx")))
    model = transformers.MT5EncoderModel(mt5_config("tiny", weights["shared.weight"].shape[0]))
    state = {k: torch.from_numpy(v.copy()) for k, v in weights.items()}
    state["encoder.embed_tokens.weight"] = state["shared.weight"]
    model.load_state_dict(state, strict=True)
    pooled = PooledEncoder(model).eval()
    ids, mask = padded_batch((COMMITTED / "tokenizer.json").read_text(), 512)
    assert mask.min() == 0  # the batch really is padded
    with torch.no_grad():
        want = pooled(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    session = ort.InferenceSession(str(COMMITTED / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["sentence_embedding"], {"input_ids": ids, "attention_mask": mask})[0]
    assert np.abs(got - want).max() <= 1e-5
