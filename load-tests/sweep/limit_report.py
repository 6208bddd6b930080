#!/usr/bin/env python3
"""The table of docs/batching-study.md's "The batcher at the limit (issue 16)" section: per
variant and load, the medians over A/B rounds (`ab.py` runs) against the raw encoder measured
on the same machine (`xling bench encoder --queries ... --query-batches ...`).

    python3 load-tests/sweep/limit_report.py --bench DIR/encoder.json \\
        --ab DIR1=old,new --ab DIR2=new,adaptive > DIR/limit.md

Each `--ab DIR=NAME_A,NAME_B` names the A and B variants of DIR/ab.csv. Ratios: throughput
over the length-sorted raw ceiling (the best `sorted` query-batch row), p99 over mean
latency, c=1 p50 minus the raw lone-query p50. Where ab.csv has its own raw columns
(`ab.py --raw-each-run`: the raw encoder measured just before each server), each run is read
against those, and the medians are of the per-run ratios.
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


def sorted_ceiling(bench: dict) -> dict:
    """The length-sorted raw ceiling: the fastest `sorted` query-batch row of a bench report."""
    return max((r for r in bench["query_batch_rows"] if r["order"] == "sorted"),
               key=lambda r: r["sequences_per_s"])  # fmt: skip


def points(folder: str, names: dict, ceiling: float, lone: float) -> list[dict]:
    """One dict per variant and load of DIR/ab.csv: medians over its rounds, and the ratios
    against the raw encoder (each run's own where ab.py measured it, else `ceiling`/`lone`)."""
    if not (Path(folder) / "ab.csv").exists():
        return []  # an A/B that ONLY= left out of this run
    rows = list(csv.DictReader(open(Path(folder) / "ab.csv")))
    loads = sorted({(r["mode"], int(r["concurrency"]), r["target_rps"]) for r in rows},
                   key=lambda x: (x[0] != "closed", x[1]))  # fmt: skip
    out = []
    for v in "AB":
        for mode, c, rate in loads:
            pts = [r for r in rows if r["variant"] == v
                   and (r["mode"], int(r["concurrency"]), r["target_rps"]) == (mode, c, rate)]  # fmt: skip
            if not pts:
                continue

            def med(key, pts=pts):
                return statistics.median(num(p[key]) for p in pts)

            per_run = all(p.get("raw_ceiling_seq_s") for p in pts)
            out.append({
                "variant": names[v], "folder": folder, "rounds": len(pts), "per_run": per_run,
                "load": f"c={c}" if mode == "closed" else f"open {rate} rps",
                "ok_rps": med("ok_rps"), "p50_ms": med("p50_ms"), "mean_ms": med("mean_ms"),
                "p99_ms": med("p99_ms"), "refused": med("refused"),
                "refused_p99_ms": med("refused_service_p99_ms"),
                "p99_over_mean": statistics.median(num(p["p99_ms"]) / num(p["mean_ms"]) for p in pts),
                "other_errors": statistics.median(num(p["errors"]) - num(p["refused"]) for p in pts),
                "share": statistics.median(
                    num(p["ok_rps"]) / (num(p["raw_ceiling_seq_s"]) if per_run else ceiling)
                    for p in pts),
                "over_lone_ms": statistics.median(
                    num(p["p50_ms"]) - (num(p["raw_lone_p50_ms"]) if per_run else lone)
                    for p in pts),
            })  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bench", type=Path, required=True)
    ap.add_argument("--ab", action="append", required=True, help="DIR=NAME_A,NAME_B")
    a = ap.parse_args()
    bench = json.loads(a.bench.read_text())
    lone = bench["lone_queries"]["p50_ms"]
    arrival = [r for r in bench["query_batch_rows"] if r["order"] == "arrival"]
    ceiling = sorted_ceiling(bench)
    best_arrival = max(arrival, key=lambda r: r["sequences_per_s"])
    print(f"Raw encoder (same machine, same model file and queries): lone queries p50 {lone:.2f} ms; "
          f"arrival-order batches peak {best_arrival['sequences_per_s']:.0f} seq/s "
          f"(b{best_arrival['batch']}); length-sorted peak {ceiling['sequences_per_s']:.0f} seq/s "
          f"(b{ceiling['batch']}), the ceiling below; a ratio marked * is the median of each "
          f"run's against the raw encoder measured just before it (ab.py --raw-each-run).\n")  # fmt: skip
    print("| variant | load | ok req/s | / ceiling | p50 ms | mean ms | p99 ms | p99 / mean "
          "| c=1 p50 - raw | refused | refusal p99 ms (service) | errors not refused | rounds | source |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for spec in a.ab:
        folder, names = spec.split("=")
        for x in points(folder, dict(zip("AB", names.split(","))), ceiling["sequences_per_s"], lone):
            over = f"{x['over_lone_ms']:+.2f}" if x["load"] == "c=1" else ""
            fast = f"{x['refused_p99_ms']:.1f}" if x["refused"] else "-"
            print(f"| {x['variant']} | {x['load']} | {x['ok_rps']:.0f} | "
                  f"{x['share']:.2f}{'*' if x['per_run'] else ''} | {x['p50_ms']:.1f} | "
                  f"{x['mean_ms']:.1f} | {x['p99_ms']:.0f} | {x['p99_over_mean']:.2f} | {over} | "
                  f"{x['refused']:.0f} | {fast} | {x['other_errors']:.0f} | {x['rounds']} | `{folder}` |")  # fmt: skip


if __name__ == "__main__":
    main()
