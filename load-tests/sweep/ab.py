#!/usr/bin/env python3
"""A/B of two server flag sets on a noisy machine: rounds alternate the variants (A B, B A, ...)
so that slow and fast spells of the machine fall on both, and each round gives a B/A ratio
measured minutes apart rather than a lone absolute number.

    python3 load-tests/sweep/ab.py load-tests/sweep/cpu-quiet.json --out DIR \\
        --a="--split-by-length false" --b="--split-by-length true" \\
        --max-batch-size 64 --max-wait-us 2000 --concurrency 16,64 --rounds 3

The grid file gives the binary, ports, data file and the (first) model, as for sweep.py;
`--binary-b PATH` serves B from another build with the same flags (a regression hunt).
Closed-loop loads by `--concurrency`, open-loop ones by `--rates` (the grid's
open_loop_workers send them). Writes DIR/ab.csv (one row per round, variant and load) and DIR/ab.md (per-load medians).
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from limit_report import sorted_ceiling  # noqa: E402
from sweep import FIELDS, Server, encoder_bench, measure  # noqa: E402

RAW = ["raw_lone_p50_ms", "raw_ceiling_seq_s"]


def raw_encoder(grid: dict, model: dict, out: Path) -> dict:
    """The raw encoder on the load's own queries, just before a variant's server starts (the
    shared machine's speed drifts by tens of percent between minutes): the lone-query p50 and
    the length-sorted ceiling, the baselines of issue 16's goal 1."""
    bench = encoder_bench(grid, model, out / "raw.json", [
        "--batch-sizes", "1", "--seq-lens", "16", "--iters", "2", "--warmup", "1",
        "--query-batches", "8,16,32",
    ])  # fmt: skip
    ceiling = sorted_ceiling(bench)["sequences_per_s"]
    return {"raw_lone_p50_ms": bench["lone_queries"]["p50_ms"], "raw_ceiling_seq_s": ceiling}


def run(a: argparse.Namespace) -> None:
    grid = json.loads(a.grid.read_text())
    a.out.mkdir(parents=True, exist_ok=True)
    grid["_tmp"] = str(a.out)
    if a.data:
        grid["data_file"] = str(a.data)
    model = grid["models"][0]
    variants = {"A": shlex.split(a.a), "B": shlex.split(a.b)}
    # --binary-b: B serves from another build (the load generator stays the grid's binary).
    servers = {"A": grid, "B": {**grid, "binary": a.binary_b or grid["binary"]}}
    loads = [("closed", int(c), "") for c in a.concurrency.split(",") if c]
    workers = grid.get("open_loop_workers", 256)
    loads += [("open", workers, int(r)) for r in a.rates.split(",") if r]
    rows = []
    for r in range(a.rounds):
        for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
            raw = raw_encoder(grid, model, a.out) if a.raw_each_run else {}
            srv = Server(servers[name], model, a.max_batch_size, a.max_wait_us, False,
                         a.out / "serve.log", extra=variants[name])  # fmt: skip
            try:
                srv.wait_ready(grid)
                measure(grid, srv, ["-c", "16", "-z", f"{grid.get('warmup_s', 2)}s"])
                for mode, c, rate in loads:
                    extra = ["-c", str(c), "-z", f"{a.duration_s}s"]
                    if rate:  # the grid's open_loop_args, e.g. ["--connections", "4"]
                        extra += ["-r", str(rate), *grid.get("open_loop_args", [])]
                    row = measure(grid, srv, extra)
                    row.update(model=model["name"], mode=mode, concurrency=c,
                               max_batch_size=a.max_batch_size, max_wait_us=a.max_wait_us,
                               adaptive=False, target_rps=rate)  # fmt: skip
                    rows.append({"round": r, "variant": name, **row, **raw})
                    # A point with no OK answer reports its figures as text (e.g. "n/a").
                    print(f"round {r} {name} {load_name((mode, c, rate))}: ok_rps={row['ok_rps']} "
                          f"p99={row['p99_ms']} ms batch={row['batch_size_mean']}",
                          flush=True)  # fmt: skip
            finally:
                srv.stop()
    with open(a.out / "ab.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["round", "variant", *FIELDS, *RAW])
        w.writeheader()
        w.writerows(rows)
    (a.out / "ab.md").write_text(report(a, rows, loads))
    print((a.out / "ab.md").read_text())


def load_name(load: tuple) -> str:
    mode, c, rate = load
    return f"c={c}" if mode == "closed" else f"open {rate} rps"


def report(a: argparse.Namespace, rows: list[dict], loads: list[int]) -> str:
    lines = [
        f"# A/B: `{a.b}` (B) vs `{a.a}` (A)", "",
        f"Base flags max batch {a.max_batch_size}, wait {a.max_wait_us} us (the variants' own "
        f"flags override them), {a.rounds} rounds alternating "
        f"A B / B A, {a.duration_s} s a point. Ratios are B/A within a round.", "",
        "| load | A ok rps | B ok rps | B/A ok rps (median) | A p99 ms | B p99 ms "
        "| B/A p99 (median) | A mean run | B mean run |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip

    def pick(variant: str, load: tuple, key: str) -> list[float]:
        return [float(x[key]) for x in rows
                if x["variant"] == variant and (x["mode"], x["concurrency"], x["target_rps"]) == load]  # fmt: skip

    for c in loads:
        rps_a, rps_b = pick("A", c, "ok_rps"), pick("B", c, "ok_rps")
        p99_a, p99_b = pick("A", c, "p99_ms"), pick("B", c, "p99_ms")
        runs = [f"{statistics.median(pick(v, c, 'batch_size_mean')):.1f}" for v in "AB"]
        fmt = lambda xs: " / ".join(f"{x:.0f}" for x in xs)  # noqa: E731
        lines.append(
            f"| {load_name(c)} | {fmt(rps_a)} | {fmt(rps_b)} | "
            f"{statistics.median(b / x for x, b in zip(rps_a, rps_b)):.2f} | {fmt(p99_a)} | "
            f"{fmt(p99_b)} | {statistics.median(b / x for x, b in zip(p99_a, p99_b)):.2f} | "
            f"{runs[0]} | {runs[1]} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("grid", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--a", required=True, help="server flags of variant A (one string)")
    ap.add_argument("--b", required=True, help="server flags of variant B (one string)")
    ap.add_argument("--binary-b", help="xling binary that serves variant B (default: the grid's)")
    ap.add_argument("--raw-each-run", action="store_true",
                    help="measure the raw encoder before each variant's server (ab.csv's raw_ columns)")
    ap.add_argument("--max-batch-size", type=int, default=32)
    ap.add_argument("--max-wait-us", type=int, default=2000)
    ap.add_argument("--concurrency", default="16,64", help="closed-loop loads, comma-separated")
    ap.add_argument("--rates", default="", help="open-loop rates (requests/s), comma-separated")
    ap.add_argument("--duration-s", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data", type=Path, help="the load's messages (default: the grid's data_file)")
    try:
        run(ap.parse_args())
    except (OSError, KeyError, ValueError, RuntimeError, subprocess.CalledProcessError) as e:
        print(f"error: {e!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
