"""QPS at equal recall, xling vs hnswlib, alternating on one pinned core (issue 13's goal:
>= 1.0x hnswlib at recall 0.95). run.sh measures each library once, and on a shared VM one
sweep can land in a noisy minute (hnswlib's own curve once fell from 14.7k to 5.3k QPS at ef 24
between two runs); here both sweeps alternate ROUNDS times and each ef keeps its best round.

Per library and ef: recall@10 over the 2,000 queries, best QPS. Then for each target recall the
first ef reaching it, and xling / hnswlib.

Usage: qps_ab.py DATA WORK XLING_INDEX [--rounds 3] [--efs 10,16,...] [--xling BIN]
  (DATA, WORK: run.sh's n$N and work-$N folders; hnswlib.index must be there)
"""

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from bench_libs import at_recall, load, recall, search  # noqa: E402

EFS = [10, 12, 16, 20, 24, 32, 48, 64, 96, 128]
TARGETS = ["0.8", "0.85", "0.9", "0.95", "0.99"]


def xling_sweep(binary, index, queries, truth, efs):
    out = subprocess.run(
        ["taskset", "-c", "0", binary, "index", "bench", str(index), "--query-vectors",
         str(queries), "--truth", str(truth), "--exact-max", "0", "--ef", ",".join(map(str, efs))],
        check=True, stdout=subprocess.PIPE, text=True,
    ).stdout
    rows = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\d+)\s+([\d.]+)\s+\d+\s+\d+\s+\d+\s+(\d+)\s*$", line)
        if m:
            rows[int(m[1])] = (float(m[2]), float(m[3]))
    return rows


def hnswlib_sweep(index, queries, gt, efs):
    rows = {}
    for ef in efs:
        found, secs = search("hnswlib", index, queries, gt.shape[1], ef)
        rows[ef] = (recall(found, gt), len(queries) / secs)
    return rows


def best(rounds, efs):
    return [
        {"ef": ef, "recall": rounds[0][ef][0], "qps": max(r[ef][1] for r in rounds)}
        for ef in efs
    ]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data", type=pathlib.Path)
    p.add_argument("work", type=pathlib.Path)
    p.add_argument("xling_index", type=pathlib.Path)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--efs", default=",".join(map(str, EFS)))
    p.add_argument("--xling", default=str(pathlib.Path(__file__).parents[2] / "target/release/xling"))
    a = p.parse_args()
    os.sched_setaffinity(0, {0})  # hnswlib on the core xling is pinned to
    queries = np.load(a.data / "queries.npy")
    gt = np.load(a.data / "gt.npy")
    index, _, _ = load("hnswlib", a.work / "hnswlib.index", queries.shape[1])
    efs = [int(e) for e in a.efs.split(",")]
    truth = a.work / "gt.u32"  # the same ground truth for both, in the form `index bench` reads
    gt.astype("<u4").tofile(truth)
    ours, theirs = [], []
    for r in range(a.rounds):
        ours.append(xling_sweep(a.xling, a.xling_index, a.data / "queries.npy", truth, efs))
        theirs.append(hnswlib_sweep(index, queries, gt, efs))
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)
    result = {"xling": best(ours, efs), "hnswlib": best(theirs, efs), "rounds": a.rounds,
              "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(f"{'ef':>5} {'xling recall':>13} {'qps':>8} {'hnswlib recall':>15} {'qps':>8}")
    for x, h in zip(result["xling"], result["hnswlib"]):
        print(f"{x['ef']:>5} {x['recall']:>13.4f} {x['qps']:>8.0f} {h['recall']:>15.4f} {h['qps']:>8.0f}")
    result["at_recall"] = {}
    for t in TARGETS:
        x, h = at_recall(result["xling"], float(t)), at_recall(result["hnswlib"], float(t))
        ratio = round(x["qps"] / h["qps"], 2) if x and h else None
        result["at_recall"][t] = {"xling": x, "hnswlib": h, "ratio": ratio}
        print(f"recall {t}: xling {x} hnswlib {h} -> {ratio}x")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
