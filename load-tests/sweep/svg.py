"""Minimal SVG line charts (standard library only), so the plots are made by the project."""

from __future__ import annotations

import math

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def line_chart(path, title, xlabel, ylabel, series, logx=False, logy=False):
    """series: [(name, [(x, y), ...])]; points with non-positive values on a log axis are skipped."""
    w, h, left, r, t, b = 720, 440, 70, 170, 40, 50
    ok = lambda v, log: v is not None and (v > 0 or not log)  # noqa: E731
    pts = [(x, y) for _, s in series for x, y in s if ok(x, logx) and ok(y, logy)]
    if not pts:
        return
    fx = (lambda v: math.log10(v)) if logx else float
    fy = (lambda v: math.log10(v)) if logy else float
    x0, x1 = min(fx(p[0]) for p in pts), max(fx(p[0]) for p in pts)
    y0, y1 = min(fy(p[1]) for p in pts), max(fy(p[1]) for p in pts)
    if not logy:
        y0 = min(0.0, y0)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    sx = lambda v: left + (fx(v) - x0) / (x1 - x0) * (w - left - r)  # noqa: E731
    sy = lambda v: h - b - (fy(v) - y0) / (y1 - y0) * (h - t - b)  # noqa: E731
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
         '<rect width="100%" height="100%" fill="white"/>',
         f'<text x="{w / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>',
         f'<line x1="{left}" y1="{h - b}" x2="{w - r}" y2="{h - b}" stroke="black"/>',
         f'<line x1="{left}" y1="{t}" x2="{left}" y2="{h - b}" stroke="black"/>',
         f'<text x="{(left + w - r) / 2}" y="{h - 12}" text-anchor="middle">{xlabel}</text>',
         f'<text x="16" y="{h / 2}" text-anchor="middle" transform="rotate(-90 16 {h / 2})">{ylabel}</text>']  # fmt: skip
    for i in range(5):
        for axis, (a0, a1), log in (("x", (x0, x1), logx), ("y", (y0, y1), logy)):
            v = a0 + (a1 - a0) * i / 4
            label = f"{10 ** v:.3g}" if log else f"{v:.3g}"
            if axis == "x":
                px = left + (w - left - r) * i / 4
                o.append(f'<text x="{px}" y="{h - b + 16}" text-anchor="middle">{label}</text>')
            else:
                py = h - b - (h - t - b) * i / 4
                o.append(f'<line x1="{left}" y1="{py}" x2="{w - r}" y2="{py}" stroke="#ddd"/>')
                o.append(f'<text x="{left - 6}" y="{py + 4}" text-anchor="end">{label}</text>')
    for k, (name, s) in enumerate(series):
        c = COLORS[k % len(COLORS)]
        s = [(sx(x), sy(y)) for x, y in s if ok(x, logx) and ok(y, logy)]
        if s:
            o.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="'
                     + " ".join(f"{x:.1f},{y:.1f}" for x, y in s) + '"/>')  # fmt: skip
            o += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{c}"/>' for x, y in s]
        ly = t + 16 * k + 10
        o.append(f'<rect x="{w - r + 10}" y="{ly - 8}" width="12" height="3" fill="{c}"/>')
        o.append(f'<text x="{w - r + 28}" y="{ly}">{name}</text>')
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")
