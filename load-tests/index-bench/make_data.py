"""Builds one benchmark data set from the real XQuAD-R embeddings (embed_xquad.py's output).

N passages in 10 languages (vi dropped), one of them (th) at 1% and the other nine at 11% each.
Every real sentence vector of the 10 languages is kept; the rest are synthetic, by `--mix`:
- `noise` (the first runs): a real vector of the row's language plus isotropic noise of
  `--noise` times the spread of one coordinate of a unit 384-d vector (1/sqrt(384)),
  normalized again. At 1M that is ~85 noisy copies of each real vector: a query's true top-10
  sits among near-ties, and every library's recall curve goes flat (docs/index-bench.md).
- `interp`: a point on the segment between two real vectors of the row's language (weight
  uniform in 0..1) plus the same noise, normalized: the rows fill the space between real
  sentences instead of piling up on them, so neighbourhoods are continuous.
A synthetic row takes its first real vector's text, so the passage store holds real text
lengths.

Queries: the embedded XQuAD-R questions of the same 10 languages (query mode), shuffled.
Ground truth: exact top-k by dot product, over all rows and over the 1% language only.

Writes OUT/{vectors.npy, corpus.jsonl, queries.npy, gt.npy, gt_rare.npy, data.json}.
Usage: make_data.py XQUAD_EMB_DIR OUT N [--queries 2000] [--mix noise|interp] [--noise 0.6]
       [--k 10]
"""

import argparse
import json
import pathlib

import numpy as np

LANGUAGES = ["ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "zh"]
RARE = "th"


def exact(vectors, queries, k, rows=None):
    """Top-k row numbers by dot product (rows: restrict to these row numbers)."""
    base = vectors if rows is None else vectors[rows]
    out = np.zeros((len(queries), k), dtype=np.int64)
    for s in range(0, len(queries), 256):
        scores = queries[s : s + 256] @ base.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        top = np.take_along_axis(top, order, axis=1)
        out[s : s + 256] = top if rows is None else rows[top]
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("emb", type=pathlib.Path)
    p.add_argument("out", type=pathlib.Path)
    p.add_argument("n", type=int)
    p.add_argument("--queries", type=int, default=2000)
    p.add_argument("--mix", choices=["noise", "interp"], default="noise")
    p.add_argument("--noise", type=float, default=0.6)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=13)
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    a.out.mkdir(parents=True, exist_ok=True)

    real = np.load(a.emb / "real.npy")
    meta = [json.loads(line) for line in open(a.emb / "real.jsonl")]
    by_lang = {
        lang: [i for i, m in enumerate(meta) if m["language"] == lang]
        for lang in LANGUAGES
    }
    share = {lang: (0.01 if lang == RARE else 0.99 / 9) for lang in LANGUAGES}
    counts = {lang: int(round(a.n * share[lang])) for lang in LANGUAGES}
    counts[LANGUAGES[0]] += a.n - sum(counts.values())

    dim = real.shape[1]
    vectors = np.lib.format.open_memmap(
        a.out / "vectors.npy", mode="w+", dtype=np.float32, shape=(a.n, dim)
    )
    languages = np.empty(a.n, dtype=object)
    row = 0
    with open(a.out / "corpus.jsonl", "w") as corpus:
        for lang in LANGUAGES:
            pool = np.array(by_lang[lang])
            keep = pool[: counts[lang]]
            centres = np.concatenate([keep, rng.choice(pool, counts[lang] - len(keep))])
            for s in range(0, len(centres), 65536):
                c = centres[s : s + 65536]
                v = real[c].copy()
                synthetic = np.arange(s, s + len(c)) >= len(keep)
                if a.mix == "interp":
                    other = real[rng.choice(pool, int(synthetic.sum()))]
                    w = rng.random((len(other), 1), dtype=np.float32)
                    v[synthetic] = w * v[synthetic] + (1 - w) * other
                noise = rng.standard_normal((int(synthetic.sum()), dim)).astype(
                    np.float32
                )
                v[synthetic] += noise * (a.noise / np.sqrt(dim))
                v /= np.linalg.norm(v, axis=1, keepdims=True)
                vectors[row : row + len(c)] = v
                for j, ci in enumerate(c):
                    kind = "s" if synthetic[j] else "r"
                    corpus.write(
                        json.dumps(
                            {
                                "id": f"{lang}-{kind}{s + j}",
                                "language": lang,
                                "text": meta[ci]["text"],
                            },
                            ensure_ascii=False,
                        )
                        + "\n"
                    )
                languages[row : row + len(c)] = lang
                row += len(c)
    vectors.flush()

    questions = np.load(a.emb / "questions.npy")
    qmeta = [json.loads(line) for line in open(a.emb / "questions.jsonl")]
    qrows = np.array([i for i, m in enumerate(qmeta) if m["language"] in LANGUAGES])
    qrows = rng.permutation(qrows)[: a.queries]
    queries = questions[qrows]
    np.save(a.out / "queries.npy", queries)
    full = np.load(a.out / "vectors.npy", mmap_mode="r")
    np.save(a.out / "gt.npy", exact(full, queries, a.k))
    rare_rows = np.nonzero(languages == RARE)[0]
    np.save(a.out / "gt_rare.npy", exact(full, queries, a.k, rare_rows))
    (a.out / "data.json").write_text(
        json.dumps(
            {
                "passages": a.n,
                "dim": dim,
                "real_rows": int(
                    sum(min(counts[lang], len(by_lang[lang])) for lang in LANGUAGES)
                ),
                "languages": counts,
                "rare": RARE,
                "mix": a.mix,
                "noise": a.noise,
                "queries": len(queries),
                "k": a.k,
                "seed": a.seed,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
