"""The seeded mT5 generator: reproducible bytes, a sane graph, a tokenizer that matches SentencePiece."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import sentencepiece as spm
import tomllib
from tokenizers import Tokenizer
from xling_models.mt5 import tokenizer
from xling_models.mt5.__main__ import main
from xling_models.mt5.generate import generate, sha256
from xling_models.mt5.weights import (
    MAX_DISTANCE,
    SHAPES,
    bucket_table,
    relative_position_bucket,
)

COMMITTED = Path(__file__).resolve().parents[1] / "mt5-tiny"
TEXTS = [
    "Where is the library?",
    "Die Bibliothek öffnet um neun Uhr morgens und schließt um sechs Uhr abends.",
    "图书馆早上九点开门。",
    "Библиотека открывается в девять утра.",
    "ห้องสมุดเปิดเวลาเก้าโมงเช้า",
    "ok",
]


def digests(folder: Path) -> dict[str, str]:
    return {p.name: sha256(p) for p in sorted(folder.iterdir())}


def embed(folder: Path, texts: list[str]) -> np.ndarray:
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    encs = tok.encode_batch(texts)
    width = max(len(e.ids) for e in encs)
    ids = np.zeros((len(texts), width), np.int64)
    mask = np.zeros_like(ids)
    for i, e in enumerate(encs):
        ids[i, : len(e.ids)] = e.ids
        mask[i, : len(e.ids)] = 1
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(["sentence_embedding"], {"input_ids": ids, "attention_mask": mask})[0]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "tiny"
    generate("tiny", out, seed=0)
    return out


def test_same_seed_gives_identical_files(tiny, tmp_path):
    generate("tiny", tmp_path / "again", seed=0)
    assert digests(tmp_path / "again") == digests(tiny)
    generate("tiny", tmp_path / "other", seed=1)
    other = digests(tmp_path / "other")
    assert other["model.onnx"] != digests(tiny)["model.onnx"]
    assert other["tokenizer.json"] == digests(tiny)["tokenizer.json"]


def test_committed_tiny_model_regenerates_byte_for_byte(tiny):
    # Regenerate with: cd models && python -m xling_models.mt5 --shape tiny --out mt5-tiny
    assert digests(COMMITTED) == digests(tiny)
    assert sum((COMMITTED / n).stat().st_size for n in digests(COMMITTED)) < 2_000_000


def test_manifest_follows_the_contract(tiny):
    m = tomllib.loads((tiny / "model.toml").read_text())
    assert m["id"] == "xling/mt5-tiny-random"
    assert (m["dim"], m["max_length"], m["pooling"], m["precision"]) == (64, 512, "graph", "fp32")
    assert (m["query_prefix"], m["passage_prefix"], m["output"]) == ("", "", "sentence_embedding")
    assert (tiny / m["onnx"]).is_file() and (tiny / m["tokenizer"]).is_file()


def test_embeddings_are_unit_length_distinct_and_padding_free(tiny):
    batch = embed(tiny, TEXTS)
    assert batch.shape == (len(TEXTS), 64)
    assert np.isfinite(batch).all()
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    cos = batch @ batch.T
    assert (cos[~np.eye(len(TEXTS), dtype=bool)] < 0.99).all(), cos
    # Padding must not leak: each text alone gives the same vector as inside the padded batch.
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(embed(tiny, [text])[0], batch[i], atol=1e-5)


def test_graph_inputs_are_dynamic_int64(tiny):
    session = ort.InferenceSession(str(tiny / "model.onnx"), providers=["CPUExecutionProvider"])
    inputs = {i.name: (i.type, i.shape) for i in session.get_inputs()}
    assert inputs == {
        "input_ids": ("tensor(int64)", ["batch", "seq"]),
        "attention_mask": ("tensor(int64)", ["batch", "seq"]),
    }
    (out,) = session.get_outputs()
    assert (out.name, out.type, out.shape) == ("sentence_embedding", "tensor(float)", ["batch", 64])


def test_mt5_small_shape(tmp_path):
    generate("mt5-small", tmp_path / "small", seed=0)
    m = tomllib.loads((tmp_path / "small" / "model.toml").read_text())
    assert (m["id"], m["dim"]) == ("xling/mt5-small-random", 512)
    out = embed(tmp_path / "small", TEXTS[:3])
    assert out.shape == (3, 512) and np.isfinite(out).all()


def test_tokenizer_json_matches_sentencepiece():
    texts = tokenizer.read_corpus()
    sp_model = tokenizer.train(texts, SHAPES["tiny"].vocab)
    sp = spm.SentencePieceProcessor(model_proto=sp_model)
    hf = Tokenizer.from_str(tokenizer.to_hf_json(sp_model))
    probe = texts + TEXTS + ["  leading and   inner   spaces  ", "\u2603 snowman ①②", "ＦＵＬＬ width"]
    mismatched = [t for t in probe if hf.encode(t).ids != sp.encode(t) + [1]]
    assert not mismatched
    assert [hf.token_to_id(t) for t in ("<pad>", "</s>", "<unk>")] == [0, 1, 2]
    assert 2 in hf.encode("\U0001f9ea").ids  # a character the corpus never had is <unk>


def test_relative_position_buckets_follow_t5():
    rel = np.array([0, 1, -1, 7, -7, 8, -8, 15, 16, 127, 128, 1000, -1000])
    assert relative_position_bucket(rel).tolist() == [0, 17, 1, 23, 7, 24, 8, 25, 26, 31, 31, 31, 15]
    # The table covers -MAX_DISTANCE..MAX_DISTANCE; clamping farther positions changes nothing.
    far = np.arange(-600, 601)
    clamped = np.clip(far, -MAX_DISTANCE, MAX_DISTANCE) + MAX_DISTANCE
    assert (bucket_table()[clamped] == relative_position_bucket(far)).all()


def test_bad_arguments_give_clear_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown shape 'huge'"):
        generate("huge", tmp_path / "x")
    assert main(["--shape", "tiny", "--out", str(tmp_path / "x"), "--corpus", str(tmp_path / "nope")]) == 1
    assert "no such file or folder" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": []}')
    assert main(["--shape", "tiny", "--out", str(tmp_path / "x"), "--corpus", str(bad)]) == 1
    assert "SQuAD-style" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
