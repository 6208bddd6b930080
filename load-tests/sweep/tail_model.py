#!/usr/bin/env python3
"""A discrete-event model of xling's batcher under a closed loop: where the latency tail at
saturation comes from, and what bounding the reordering costs (docs/batching-study.md,
"Where the tail comes from").

Clients: C closed-loop workers send the data file's messages round-robin (as ghz and
`xling loadtest` do); an answered client sends its next request RTT later. The encoder: one
instance; a run of r queries padded to L tokens takes `fixed + per_token * r * L`, fitted to the
rows of `xling bench encoder --queries FILE --query-batches ... --json` from the same run. The
batcher, as in crates/xling-batcher: work-conserving (when the encoder frees, the batch is
what queued, up to the max batch); with the length split the batch, or its `window` oldest, is
sorted by length and cut where the padding saved pays for a run (split.rs's rule), and only
the run holding the oldest query goes, the rest being planned again with what arrives. `fifo`
cuts runs in arrival order (no reordering at all: the tightest tail the encoder allows).

    ~/.cache/xling/venv/bin/python load-tests/sweep/tail_model.py \\
        --bench DIR/encoder.json --data load-tests/data/queries-multilingual-mixed.json

The model has no noise (no other process, no run-time jitter), so its tails are lower bounds
for the real service's.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
from dataclasses import dataclass
from pathlib import Path

from split_bound import MIN_SAVING, cut, query_lengths


@dataclass(frozen=True)
class Cost:
    fixed_s: float
    per_token_s: float

    def run(self, rows: int, longest: int) -> float:
        return self.tokens(rows * longest)

    def tokens(self, padded: int) -> float:
        return self.fixed_s + self.per_token_s * padded

    @staticmethod
    def fit(bench: dict) -> Cost:
        """Least squares of run time on padded tokens over the lone-query and batch rows, on
        relative error (plain least squares would fit the big batches and lose the per-run
        overhead that small runs pay)."""
        rows = [bench["lone_queries"], *bench["query_batch_rows"]]
        xs = [r["batch"] * r["seq"] for r in rows]
        ys = [r["mean_ms"] / 1e3 for r in rows]
        ws = [1 / y**2 for y in ys]
        w = sum(ws)
        mx = sum(wi * x for wi, x in zip(ws, xs)) / w
        my = sum(wi * y for wi, y in zip(ws, ys)) / w
        slope = sum(wi * (x - mx) * (y - my) for wi, x, y in zip(ws, xs, ys)) / sum(
            wi * (x - mx) ** 2 for wi, x in zip(ws, xs)
        )
        return Cost(fixed_s=max(my - slope * mx, 0.0), per_token_s=slope)


def first_run(queue: list[tuple], policy: str, window: int, max_batch: int, cost: Cost) -> list:
    """The run to encode now; removes it from `queue` (items (arrival, length, id), oldest
    first)."""
    batch = queue[:max_batch]
    if policy == "fifo":
        run = batch[: cut([q[1] for q in batch], cost.tokens, MIN_SAVING)[0]]
    elif len(cut(sorted(q[1] for q in batch), cost.tokens, MIN_SAVING)) == 1:
        run = batch  # not worth splitting: the whole batch, as split.rs
    else:
        planned = batch[:window] if window else batch
        ranked = sorted(range(len(planned)), key=lambda k: planned[k][1])
        start = 0
        for end in cut([planned[k][1] for k in ranked], cost.tokens, MIN_SAVING):
            if 0 in ranked[start:end]:  # the run holding the oldest
                run = [planned[k] for k in ranked[start:end]]
                break
            start = end
    taken = {q[2] for q in run}
    queue[:] = [q for q in queue if q[2] not in taken]
    return run


def simulate(lengths: list[int], clients: int, cost: Cost, policy: str = "split",
             window: int = 0, max_batch: int = 32, rtt_s: float = 6e-4,
             seconds: float = 60.0, warmup_s: float = 5.0) -> dict:  # fmt: skip
    events = [(i * 1e-5, i, None) for i in range(clients)]  # (time, tie, run or None=arrival)
    heapq.heapify(events)
    queue, latencies, sent, tie, busy = [], [], 0, clients, False
    while events:
        t, _, run = heapq.heappop(events)
        if t > seconds:
            break
        if run is None:
            queue.append((t, lengths[sent % len(lengths)], sent))
            sent += 1
        else:
            busy = False
            for q in run:
                if t > warmup_s:
                    latencies.append(t - q[0])
                tie += 1
                heapq.heappush(events, (t + rtt_s, tie, None))
        if not busy and queue:
            run = first_run(queue, policy, window, max_batch, cost)
            busy, tie = True, tie + 1
            heapq.heappush(events, (t + cost.run(len(run), max(q[1] for q in run)), tie, run))
    latencies.sort()
    mean = sum(latencies) / len(latencies)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    return {"rps": len(latencies) / (seconds - warmup_s), "mean_ms": 1e3 * mean,
            "p99_ms": 1e3 * p99, "p99_over_mean": p99 / mean}  # fmt: skip


def sorted_ceiling(lengths: list[int], cost: Cost, batches=(4, 8, 16, 32, 64)) -> float:
    """The raw encoder's best throughput on the queries sorted by length, as the bench's
    `sorted` rows measure it."""
    s = sorted(lengths)
    return max(len(s) / sum(cost.run(len(s[i:i + b]), max(s[i:i + b]))
                            for i in range(0, len(s), b)) for b in batches)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bench", type=Path, required=True, help="xling bench encoder --json output")
    ap.add_argument("--data", type=Path, action="append", required=True,
                    help="the load's messages (repeat to compare orders)")  # fmt: skip
    ap.add_argument("--model", type=Path,
                    default=Path(os.path.expanduser("~/.cache/xling/models/multilingual-e5-small")))  # fmt: skip
    ap.add_argument("--concurrency", default="32,64")
    ap.add_argument("--windows", default="0,4,8,16", help="split windows (0: the whole batch)")
    a = ap.parse_args()
    cost = Cost.fit(json.loads(a.bench.read_text()))
    print(f"Fitted run cost: {1e3 * cost.fixed_s:.2f} ms + {1e3 * cost.per_token_s:.3f} ms per "
          "padded token.\n")  # fmt: skip
    print("| data | policy | c | req/s | / sorted ceiling | mean ms | p99 ms | p99 / mean |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for data in a.data:
        lengths = query_lengths(data, a.model)
        ceiling = sorted_ceiling(lengths, cost)
        policies = [("split", int(w)) for w in a.windows.split(",")] + [("fifo", 0)]
        for c in map(int, a.concurrency.split(",")):
            for policy, window in policies:
                r = simulate(lengths, c, cost, policy, window)
                name = "fifo runs" if policy == "fifo" else f"split, window {window or 'off'}"
                print(f"| {data.name} | {name} | {c} | {r['rps']:.0f} | {r['rps'] / ceiling:.2f} | "
                      f"{r['mean_ms']:.0f} | {r['p99_ms']:.0f} | {r['p99_over_mean']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
