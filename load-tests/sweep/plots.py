"""The sweep's plots (matplotlib, from load-tests/requirements.txt), drawn from points.csv rows.

Each chart says what its series hold: colours never repeat within a chart (an ordered colour
map once there are more series than the qualitative palette has), every closed-loop point
carries its concurrency, log axes are labelled and ticked at the tested values, and a folder's
`banner.txt` (e.g. "old binary") is printed over every chart of that folder.
"""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    FixedLocator,
    FuncFormatter,
    LogLocator,
    NullFormatter,
    NullLocator,
)

matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "xling", "font.size": 9})
MARKERS = "osD^v<>ph*"


def colors(n):
    """n distinct colours: the qualitative tab10 palette, or viridis steps beyond 10 series."""
    cmap = plt.get_cmap("tab10") if n <= 10 else plt.get_cmap("viridis")
    return [cmap(i) if n <= 10 else cmap(i / max(n - 1, 1)) for i in range(n)]


PLAIN = FuncFormatter(lambda v, _: f"{v:g}")
# A summary series (a median over settings) drawn over the others, and a reference line.
BOLD = {"color": "black", "linewidth": 2.5, "marker": "s", "markersize": 5, "zorder": 3}
GUIDE = {"color": "grey", "linestyle": ":", "linewidth": 1.2}


def chart(path, title, xlabel, ylabel, series, banner="", logx=False, logy=False, xticks=None, hline=None):
    """series: [(name, [(x, y, note), ...], style or None)]; a note (e.g. "c=64") is printed
    beside its point; style overrides the series' look (BOLD). xticks: the tested x values,
    the only x ticks. hline: (y, name), a reference level."""
    fig, ax = plt.subplots(figsize=(8.4, 4.8))
    plain = [s for s in series if not s[2]]
    cols = iter(colors(len(plain)))
    for k, (name, pts, style) in enumerate(series):
        pts = [p for p in pts if p[0] is not None and p[1] is not None and (p[0] > 0 or not logx) and (p[1] > 0 or not logy)]
        look = style or {"color": next(cols), "marker": MARKERS[k % len(MARKERS)], "markersize": 4, "linewidth": 1.5}
        c = look["color"]
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name, **look)
        for x, y, note in pts:
            if note:
                ax.annotate(note, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7, color=c)
    if hline:
        ax.axhline(hline[0], color="grey", linestyle="--", linewidth=1, label=hline[1])
    if logx:
        ax.set_xscale("log", base=2 if xticks else 10)
    if logy:
        # Plain-number ticks at 1-2-5 steps, finer on a short axis, no 10^x labels.
        ax.set_yscale("log")
        lo, hi = ax.get_ylim()
        subs = (1, 2, 5) if hi / lo > 20 else (1, 1.5, 2, 3, 5, 7) if hi / lo > 3 else (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
        ax.yaxis.set_major_formatter(PLAIN)
        ax.yaxis.set_minor_formatter(NullFormatter())
    if xticks:
        ax.xaxis.set_major_locator(FixedLocator(xticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(PLAIN)
    elif logx:
        ax.xaxis.set_major_formatter(PLAIN)
    ax.set_xlabel(xlabel + (" (log scale)" if logx else ""))
    ax.set_ylabel(ylabel + (" (log scale)" if logy else ""))
    ax.grid(True, which="both", color="#e5e5e5", linewidth=0.6)
    ax.set_title(textwrap.fill(title, 90), fontsize=10)
    banner = textwrap.fill(banner, 110)
    if banner:
        fig.text(0.5, 0.995, banner, ha="center", va="top", color="#b00000", fontsize=9, fontweight="bold")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.04 * (banner.count("\n") + 1) if banner else 1))
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)
