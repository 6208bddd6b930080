"""Embeds the XQuAD-R sentences (passage mode) and questions (query mode) with the served
multilingual-e5-small ONNX model, as xling's encoder does: "passage: " / "query: " prefix,
the model's own pooling (output `sentence_embedding`), L2-normalized.

Writes OUT/real.npy (sentences, float32), OUT/real.jsonl (id, language, text per row),
OUT/questions.npy and OUT/questions.jsonl. Usage: embed_xquad.py XQUAD_R_DIR MODEL_DIR OUT
"""

import json
import pathlib
import sys

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

BATCH = 32
MAX_LENGTH = 512


def texts(xquad: pathlib.Path):
    """(id, language, text) of every sentence, and of every question."""
    sentences, questions = [], []
    for path in sorted(xquad.glob("*.json")):
        lang = path.stem
        data = json.loads(path.read_text())["data"]
        n = 0
        for article in data:
            for paragraph in article["paragraphs"]:
                for sentence in paragraph["sentences"]:
                    sentences.append((f"{lang}-s{n}", lang, sentence))
                    n += 1
                for qa in paragraph["qas"]:
                    questions.append((f"{lang}-{qa['id']}", lang, qa["question"]))
    return sentences, questions


def embed(session, tokenizer, rows, prefix):
    out = np.zeros((len(rows), 384), dtype=np.float32)
    # Longest first so batches pad little; rows are put back in order.
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i][2]))
    for start in range(0, len(order), BATCH):
        idx = order[start : start + BATCH]
        enc = tokenizer.encode_batch([prefix + rows[i][2] for i in idx])
        longest = min(MAX_LENGTH, max(len(e.ids) for e in enc))
        ids = np.ones((len(idx), longest), dtype=np.int64)  # pad id 1
        mask = np.zeros((len(idx), longest), dtype=np.int64)
        for j, e in enumerate(enc):
            n = min(len(e.ids), longest)
            ids[j, :n] = e.ids[:n]
            mask[j, :n] = 1
        (vectors,) = session.run(
            ["sentence_embedding"], {"input_ids": ids, "attention_mask": mask}
        )
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        out[idx] = vectors
        print(f"{prefix}{start + len(idx)}/{len(rows)}", file=sys.stderr, flush=True)
    return out


def main():
    xquad, model, out = (pathlib.Path(a) for a in sys.argv[1:4])
    out.mkdir(parents=True, exist_ok=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(model / "model.onnx"), options)
    tokenizer = Tokenizer.from_file(str(model / "tokenizer.json"))
    sentences, questions = texts(xquad)
    for name, rows, prefix in [
        ("questions", questions, "query: "),
        ("real", sentences, "passage: "),
    ]:
        vectors = embed(session, tokenizer, rows, prefix)
        np.save(out / f"{name}.npy", vectors)
        with open(out / f"{name}.jsonl", "w") as f:
            for id_, lang, text in rows:
                f.write(
                    json.dumps(
                        {"id": id_, "language": lang, "text": text}, ensure_ascii=False
                    )
                    + "\n"
                )


if __name__ == "__main__":
    main()
