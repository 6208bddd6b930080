#!/usr/bin/env python3
"""What padding lets a batching encoder reach on a query set, offline: the ceiling behind the
pipeline efficiency ratio.

The ratio divides saturated Search throughput by the encoder's peak on rows of one uniform
length. Real queries differ in length and every row of a run is padded to its longest, so even
a perfect pipeline serves less. This script takes the encoder's measured cost curve (a
`xling bench encoder --json` file: run time by batch at one length, read as time by padded
tokens per run, interpolated) and the load's queries (token counts from the model's
tokenizer), draws random batches, and prints queries/s for:

- whole: each batch run as one (no split),
- split: cut by the service's rule (`crates/xling-batcher/src/split.rs`: a linear fit
  `fixed + per_token * tokens` from the startup calibration shapes, cuts saving >= 10%),
- oracle: the cheapest cut under the measured curve itself,
- unpadded: every query at its own length, no padding at all (the uniform-length peak's
  counterpart for this query mix).

    ~/.cache/xling/venv/bin/python load-tests/sweep/split_bound.py \\
        load-tests/results/cpu-2core-full/encoder-multilingual-e5-small.json \\
        ~/.cache/xling/models/multilingual-e5-small

Needs the `tokenizers` package (in the project venv). A model, not a measurement: it prints
what the curve implies, to read next to what the sweep measured.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

import tomllib

# The startup calibration shapes (rows, tokens) and the split's minimum saving, as in
# crates/xling-server/src/engine.rs and crates/xling-batcher/src/split.rs.
CALIBRATION = [(4, 16), (4, 48), (16, 16), (16, 32)]
MIN_SAVING = 0.1


def curve(bench: dict):
    """Run time (ms) by padded tokens per run, from rows measured at one length."""
    pts = [(0.0, 0.0)] + sorted((r["batch"] * r["seq"], r["p50_ms"]) for r in bench["rows"])

    def time_ms(tokens: float) -> float:
        for (a, ta), (b, tb) in zip(pts, pts[1:]):
            if tokens <= b:
                return ta + (tb - ta) * (tokens - a) / (b - a)
        (a, ta), (b, tb) = pts[-2], pts[-1]
        return tb + (tb - ta) * (tokens - b) / (b - a)

    return time_ms


def linear_fit(time_ms, shapes):
    xs = [r * n for r, n in shapes]
    ys = [time_ms(x) for x in xs]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    slope = max(slope, 0.0)
    return lambda tokens: max(my - slope * mx, 0.0) + slope * tokens


def cut(lengths: list[int], cost, min_saving: float) -> list[int]:
    """Run ends (exclusive) for `lengths` in the order given, cheapest under `cost` (of padded
    tokens per run: rows x the run's longest); one run when that saves less than
    `min_saving` of the whole. Sorted lengths give the length split's plan."""
    n = len(lengths)
    best, start = [0.0] + [math.inf] * n, [0] * (n + 1)
    for j in range(1, n + 1):
        longest = 0
        for i in range(j - 1, -1, -1):
            longest = max(longest, lengths[i])
            c = best[i] + cost((j - i) * longest)
            if c < best[j]:
                best[j], start[j] = c, i
    if best[n] > cost(n * max(lengths)) * (1 - min_saving):
        return [n]
    ends, j = [], n
    while j > 0:
        ends.append(j)
        j = start[j]
    return ends[::-1]


def query_lengths(data_file: Path, model: Path) -> list[int]:
    """Token counts of the load's queries, as the model's tokenizer (with its query prefix)
    gives them. Needs the `tokenizers` package (in the project venv)."""
    from tokenizers import Tokenizer

    manifest = tomllib.loads((model / "model.toml").read_text())
    prefix = manifest.get("query_prefix", "")
    tok = Tokenizer.from_file(str(model / "tokenizer.json"))
    return [len(tok.encode(prefix + m["query"]).ids) for m in json.loads(data_file.read_text())]


def run_ms(lengths: list[int], ends: list[int], time_ms) -> float:
    total, begin = 0.0, 0
    for end in ends:
        total += time_ms((end - begin) * lengths[end - 1])
        begin = end
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("bench", type=Path, help="xling bench encoder --json output")
    ap.add_argument("model", type=Path, help="model folder (model.toml, tokenizer.json)")
    ap.add_argument("--data-file", type=Path, default=Path("load-tests/data/queries-multilingual.json"))
    ap.add_argument("--batch-sizes", default="16,64,128")
    ap.add_argument("--draws", type=int, default=200)
    a = ap.parse_args()
    lengths = query_lengths(a.data_file, a.model)
    bench = json.loads(a.bench.read_text())
    time_ms = curve(bench)
    peak = max(r["sequences_per_s"] for r in bench["rows"])
    fit = linear_fit(time_ms, CALIBRATION)
    print(f"{len(lengths)} queries, {sum(lengths) / len(lengths):.1f} tokens mean "
          f"({min(lengths)}-{max(lengths)}); uniform-length peak {peak:.1f} seq/s")  # fmt: skip
    print(f"{'batch':>5} {'whole':>8} {'split':>8} {'oracle':>8} {'unpadded':>9}  (queries/s; split/peak)")
    rng = random.Random(0)
    for size in map(int, a.batch_sizes.split(",")):
        totals = dict.fromkeys(("whole", "split", "oracle", "unpadded"), 0.0)
        for _ in range(a.draws):
            b = sorted(rng.choices(lengths, k=size))
            totals["whole"] += run_ms(b, [size], time_ms)
            totals["split"] += run_ms(b, cut(b, fit, MIN_SAVING), time_ms)
            totals["oracle"] += run_ms(b, cut(b, time_ms, 0.0), time_ms)
            totals["unpadded"] += time_ms(sum(b))
        qps = {k: size * a.draws / v * 1e3 for k, v in totals.items()}
        print(f"{size:>5} {qps['whole']:>8.1f} {qps['split']:>8.1f} {qps['oracle']:>8.1f} "
              f"{qps['unpadded']:>9.1f}  ({qps['split'] / peak:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
