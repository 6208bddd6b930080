#!/usr/bin/env python3
"""How much of a run's latency tail is the machine's speed drifting, not the scheduling.

On a shared machine the encoder's speed swings by tens of percent within a 15 s run; under a
closed loop every latency follows it (latency = clients / throughput), which widens p99/mean
whatever the batcher does. This reads a ghz-format JSON report with per-request details
(`xling loadtest ... -O json -o FILE`, or ghz's own) and prints p99/mean as measured, and p99
of each latency over the mean of the requests answered within +-WINDOW s of it (drift taken
out). Both leave out the first SKIP s (the closed loop's start). See docs/batching-study.md,
"The window under the new admission".

    python3 load-tests/sweep/drift.py REPORT.json [REPORT.json ...] [--window 1] [--skip 3]
"""

from __future__ import annotations

import argparse
import bisect
import json
from datetime import datetime
from pathlib import Path


def seconds(stamp: str) -> float:
    """RFC 3339 with up to nanoseconds (Go's format), as seconds since the epoch."""
    stamp = stamp.replace("Z", "+00:00")
    if "." in stamp:
        head, rest = stamp.split(".", 1)
        cut = next((i for i, ch in enumerate(rest) if ch in "+-"), len(rest))
        stamp = f"{head}.{rest[:cut][:6].ljust(6, '0')}{rest[cut:]}"
    return datetime.fromisoformat(stamp).timestamp()


def answered(report: dict) -> list[tuple[float, float]]:
    """(answered at s, latency ms) of the OK requests, by answer time."""
    return sorted(
        (seconds(d["timestamp"]) + d["latency"] / 1e9, d["latency"] / 1e6)
        for d in report["details"]
        if d.get("status", "OK") == "OK"
    )


def tails(points: list[tuple[float, float]], window_s: float = 1.0, skip_s: float = 3.0) -> dict:
    """p99/mean as measured, and p99 of latency over its neighbours' mean."""
    times = [t for t, _ in points]
    sums = [0.0]
    for _, latency in points:
        sums.append(sums[-1] + latency)
    start = times[0] + skip_s
    kept, local = [], []
    for t, latency in points:
        if t < start:
            continue
        lo, hi = bisect.bisect_left(times, t - window_s), bisect.bisect_right(times, t + window_s)
        kept.append(latency)
        local.append(latency / ((sums[hi] - sums[lo]) / (hi - lo)))
    kept.sort()
    local.sort()
    p99 = int(0.99 * len(kept))
    return {"n": len(kept), "p99_over_mean": kept[p99] / (sum(kept) / len(kept)),
            "drift_free_p99": local[p99]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("reports", type=Path, nargs="+")
    ap.add_argument("--window", type=float, default=1.0, help="neighbours within +-this many s")
    ap.add_argument("--skip", type=float, default=3.0, help="leave out the first this many s")
    a = ap.parse_args()
    print("| report | answered | p99 / mean | p99 / local mean (drift out) |")
    print("| --- | --- | --- | --- |")
    for path in a.reports:
        r = tails(answered(json.loads(path.read_text())), a.window, a.skip)
        print(f"| {path} | {r['n']} | {r['p99_over_mean']:.2f} | {r['drift_free_p99']:.2f} |")


if __name__ == "__main__":
    main()
