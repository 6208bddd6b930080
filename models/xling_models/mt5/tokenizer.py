"""A small SentencePiece Unigram vocabulary, trained deterministically, as HF `tokenizer.json`.

The special ids follow T5: <pad> 0, </s> 1, <unk> 2, and `</s>` is appended to every text.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as sp_pb

BUILTIN_CORPUS = Path(__file__).with_name("corpus")
PAD, EOS, UNK = "<pad>", "</s>", "<unk>"
_SPECIAL_TYPES = {sp_pb.ModelProto.SentencePiece.CONTROL, sp_pb.ModelProto.SentencePiece.UNKNOWN}


class CorpusError(ValueError):
    """A corpus path that cannot be read as training text."""


def _texts_from_file(path: Path) -> Iterable[str]:
    if path.suffix == ".txt":
        yield from path.read_text(encoding="utf-8").splitlines()
    elif path.suffix == ".jsonl":  # xling corpus format
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    yield json.loads(line)["text"]
                except (ValueError, KeyError, TypeError) as e:
                    raise CorpusError(f'{path}:{n}: expected a JSON object with "text": {e}') from e
    elif path.suffix == ".json":  # SQuAD layout (XQuAD-R): contexts and questions
        try:
            for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
                for para in article["paragraphs"]:
                    yield para["context"]
                    yield from (qa["question"] for qa in para["qas"])
        except (ValueError, KeyError, TypeError) as e:
            raise CorpusError(f"{path}: expected SQuAD-style JSON (data/paragraphs/qas): {e}") from e
    else:
        raise CorpusError(f"{path}: unsupported corpus file (use .txt, .jsonl or SQuAD .json)")


def read_corpus(paths: list[Path] | None = None) -> list[str]:
    """Non-empty lines of the given files or folders (sorted), default: the built-in corpus."""
    files: list[Path] = []
    for p in paths or [BUILTIN_CORPUS]:
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix in {".txt", ".jsonl", ".json"})
        elif p.is_file():
            files.append(p)
        else:
            raise CorpusError(f"{p}: no such file or folder")
    texts = [t.strip() for f in files for t in _texts_from_file(f)]
    texts = [t for t in texts if t]
    if not texts:
        raise CorpusError(f"no text found in {[str(p) for p in paths or [BUILTIN_CORPUS]]}")
    return texts


def train(texts: list[str], vocab_size: int) -> bytes:
    """A serialized SentencePiece Unigram model; single-threaded and unshuffled, so reproducible."""
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=out,
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=False,  # a small corpus yields fewer pieces rather than an error
        character_coverage=1.0,
        normalization_rule_name="nmt_nfkc",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        num_threads=1,
        shuffle_input_sentence=False,
        input_sentence_size=0,
        max_sentence_length=1 << 16,
        minloglevel=2,
    )
    return out.getvalue()


def piece_count(sp_model: bytes) -> int:
    proto = sp_pb.ModelProto()
    proto.ParseFromString(sp_model)
    return len(proto.pieces)


def to_hf_json(sp_model: bytes) -> str:
    """HF tokenizers JSON equivalent to the SentencePiece model, with T5's `$A </s>` template."""
    proto = sp_pb.ModelProto()
    proto.ParseFromString(sp_model)
    pieces = list(proto.pieces)
    ids = {p.piece: i for i, p in enumerate(pieces)}
    if [ids.get(PAD), ids.get(EOS), ids.get(UNK)] != [0, 1, 2]:
        raise ValueError("the SentencePiece model must have <pad>=0, </s>=1, <unk>=2 (T5 layout)")
    added = [
        {"id": i, "content": p.piece, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i, p in enumerate(pieces) if p.type in _SPECIAL_TYPES
    ]  # fmt: skip
    metaspace = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}
    normalizers = [
        {"type": "Strip", "strip_left": True, "strip_right": True},
        {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
    ]
    charsmap = proto.normalizer_spec.precompiled_charsmap
    if charsmap:
        normalizers.insert(0, {"type": "Precompiled", "precompiled_charsmap": base64.b64encode(charsmap).decode()})

    def seq(s):
        return {"Sequence": {"id": s, "type_id": 0}}

    eos = {"SpecialToken": {"id": EOS, "type_id": 0}}
    doc = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": metaspace,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [seq("A"), eos],
            "pair": [seq("A"), eos, seq("B"), eos],
            "special_tokens": {EOS: {"id": EOS, "ids": [1], "tokens": [EOS]}},
        },
        "decoder": metaspace,
        "model": {
            "type": "Unigram",
            "unk_id": 2,
            "vocab": [[p.piece, p.score] for p in pieces],
            "byte_fallback": False,
        },
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
