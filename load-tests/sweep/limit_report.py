#!/usr/bin/env python3
"""The table of docs/batching-study.md's "The batcher at the limit (issue 16)" section: per
variant and load, the medians over A/B rounds (`ab.py` runs) against the raw encoder measured
on the same machine (`xling bench encoder --queries ... --query-batches ...`).

    python3 load-tests/sweep/limit_report.py --bench DIR/encoder.json \\
        --ab DIR1=old,new --ab DIR2=new,adaptive > DIR/limit.md

Each `--ab DIR=NAME_A,NAME_B` names the A and B variants of DIR/ab.csv. Ratios: throughput
over the length-sorted raw ceiling (the best `sorted` query-batch row), p99 over mean
latency, c=1 p50 minus the raw lone-query p50.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path


def num(x: str) -> float:
    try:
        return float(x)
    except ValueError:
        return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bench", type=Path, required=True)
    ap.add_argument("--ab", action="append", required=True, help="DIR=NAME_A,NAME_B")
    a = ap.parse_args()
    bench = json.loads(a.bench.read_text())
    lone = bench["lone_queries"]["p50_ms"]
    sorted_rows = [r for r in bench["query_batch_rows"] if r["order"] == "sorted"]
    arrival = [r for r in bench["query_batch_rows"] if r["order"] == "arrival"]
    ceiling = max(sorted_rows, key=lambda r: r["sequences_per_s"])
    best_arrival = max(arrival, key=lambda r: r["sequences_per_s"])
    print(f"Raw encoder (same machine, same model file and queries): lone queries p50 {lone:.2f} ms; "
          f"arrival-order batches peak {best_arrival['sequences_per_s']:.0f} seq/s "
          f"(b{best_arrival['batch']}); length-sorted peak {ceiling['sequences_per_s']:.0f} seq/s "
          f"(b{ceiling['batch']}), the ceiling below.\n")  # fmt: skip
    print("| variant | load | ok req/s | / ceiling | p50 ms | mean ms | p99 ms | p99 / mean "
          "| c=1 p50 - raw | refused | refusal p99 ms (service) | errors not refused | rounds | source |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for spec in a.ab:
        folder, names = spec.split("=")
        names = dict(zip("AB", names.split(",")))
        if not (Path(folder) / "ab.csv").exists():
            continue  # an A/B that ONLY= left out of this run
        rows = list(csv.DictReader(open(Path(folder) / "ab.csv")))
        loads = sorted({(r["mode"], int(r["concurrency"]), r["target_rps"]) for r in rows},
                       key=lambda x: (x[0] != "closed", x[1]))  # fmt: skip
        for v in "AB":
            for load in loads:
                pts = [r for r in rows if r["variant"] == v
                       and (r["mode"], int(r["concurrency"]), r["target_rps"]) == load]  # fmt: skip
                if not pts:
                    continue
                def med(k, pts=pts):
                    return statistics.median(num(p[k]) for p in pts)

                ratio = statistics.median(num(p["p99_ms"]) / num(p["mean_ms"]) for p in pts)
                mode, c, rate = load
                name = f"c={c}" if mode == "closed" else f"open {rate} rps"
                refused = med("refused")
                other = statistics.median(num(p["errors"]) - num(p["refused"]) for p in pts)
                over = f"{med('p50_ms') - lone:+.2f}" if (mode, c) == ("closed", 1) else ""
                fast = f"{med('refused_service_p99_ms'):.1f}" if refused else "-"
                print(f"| {names[v]} | {name} | {med('ok_rps'):.0f} | "
                      f"{med('ok_rps') / ceiling['sequences_per_s']:.2f} | {med('p50_ms'):.1f} | "
                      f"{med('mean_ms'):.1f} | {med('p99_ms'):.0f} | {ratio:.2f} | {over} | "
                      f"{refused:.0f} | {fast} | {other:.0f} | {len(pts)} | `{folder}` |")  # fmt: skip

if __name__ == "__main__":
    main()
