#!/usr/bin/env python3
"""The chart of docs/batching-study.md's issue 16 goals: per variant of `limit.sh`'s A/Bs,
saturated throughput over the raw length-sorted ceiling (goal 1: >= 0.95), p99 over mean at
c=32 and c=64 (goal 2: <= 1.3), and the open-loop overload's accepted p99 over the same
variant's c=64 p99 (goal 3: <= 2). Same arguments as limit_report.py, plus the output file:

    python load-tests/sweep/limit_plot.py --bench DIR/encoder.json --out DIR/goals.svg \\
        --ab DIR/old-vs-new="old defaults,new defaults" --ab DIR/win0-vs-win4=",window 4"

An empty name leaves that variant out; a name given in two A/Bs (the same defaults as A of
both) is drawn from the first.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from limit_report import points, sorted_ceiling  # noqa: E402
from plots import colors, plt  # noqa: E402

CLIP = 4  # the overload panel's top

PANELS = [  # title, goal line, value of a variant's points
    ("throughput / raw sorted ceiling", 0.95, "share"),
    ("p99 / mean latency", 1.3, "p99_over_mean"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bench", type=Path, required=True)
    ap.add_argument("--ab", action="append", required=True, help="DIR=NAME_A,NAME_B")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    bench = json.loads(a.bench.read_text())
    ceiling = sorted_ceiling(bench)["sequences_per_s"]
    by_variant: dict[str, dict[str, dict]] = {}
    for spec in a.ab:
        folder, names = spec.split("=")
        for x in points(folder, dict(zip("AB", names.split(","))), ceiling,
                        bench["lone_queries"]["p50_ms"]):  # fmt: skip
            if x["variant"]:  # the first A/B that names a variant gives its figures
                by_variant.setdefault(x["variant"], {}).setdefault(x["load"], x)
    variants = list(by_variant)
    loads = ["c=32", "c=64"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    width = 0.8 / len(variants)
    for ax, (title, goal, key) in zip(axes, PANELS):
        for i, (v, color) in enumerate(zip(variants, colors(len(variants)))):
            ys = [by_variant[v][ld][key] if ld in by_variant[v] else float("nan") for ld in loads]
            ax.bar([j + i * width for j in range(len(loads))], ys, width, label=v, color=color)
        ax.axhline(goal, color="black", linestyle="--", linewidth=1)
        ax.set_xticks([j + width * (len(variants) - 1) / 2 for j in range(len(loads))], loads)
        ax.set_title(f"{title} (goal {'>=' if key == 'share' else '<='} {goal})")
    ax = axes[2]
    for i, (v, color) in enumerate(zip(variants, colors(len(variants)))):
        pts = by_variant[v]
        opened = [x for ld, x in pts.items() if ld.startswith("open")]
        y = opened[0]["p99_ms"] / pts["c=64"]["p99_ms"] if opened and "c=64" in pts else float("nan")
        ax.bar([i], [min(y, CLIP)], 0.8, color=color)
        if y > CLIP:  # the old defaults' unbounded queue: 15-30x, which would flatten the rest
            ax.text(i, CLIP * 0.9, f"{y:.0f}x", ha="center", color="white", fontweight="bold")
    ax.set_ylim(0, CLIP)
    ax.axhline(2, color="black", linestyle="--", linewidth=1)
    ax.set_xticks([], [])
    ax.set_title("overload: accepted p99 / c=64 p99 (goal <= 2)")
    handles, labels = axes[0].get_legend_handles_labels()  # the bars: the goal lines have no label
    fig.legend(handles, labels, loc="lower center", ncol=len(variants), frameon=False)
    per_run = all(x["per_run"] for pts in by_variant.values() for x in pts.values())
    fig.text(0.5, 0.93, "medians over alternating A/B rounds; throughput against the raw encoder "
             + ("measured just before each run" if per_run else "of the run's opening bench"),
             ha="center", fontsize=8)  # fmt: skip
    fig.tight_layout(rect=(0, 0.1, 1, 0.92))
    fig.savefig(a.out)


if __name__ == "__main__":
    main()
