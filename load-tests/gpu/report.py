"""load-tests/gpu/run.sh's report (standard library only, so it runs on the GPU machine too;
the charts need matplotlib and are skipped, saying so, where it is missing).

  report.py parity INDEX_A INDEX_B LABEL   max abs diff and min cosine of two indexes' embeddings
  report.py report OUT_DIR                 points.csv, summary.md and SVG plots from the JSON
"""

from __future__ import annotations

import csv
import json
import math
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sweep"))
try:
    from plots import chart
except ImportError:  # the GPU machine's bare python3
    chart = None


def embeddings(index: Path):
    dim = json.loads((index / "index.json").read_text())["dim"]
    raw = (index / "embeddings.f32").read_bytes()
    values = struct.unpack(f"<{len(raw) // 4}f", raw)
    return [values[i : i + dim] for i in range(0, len(values), dim)]


def parity(a: str, b: str, label: str) -> None:
    x, y = embeddings(Path(a)), embeddings(Path(b))
    assert len(x) == len(y), f"{len(x)} vs {len(y)} passages"
    diff = max(abs(p - q) for u, v in zip(x, y) for p, q in zip(u, v))
    cos = min(sum(p * q for p, q in zip(u, v)) / math.sqrt(sum(p * p for p in u) * sum(q * q for q in v)) for u, v in zip(x, y))
    print(f"{label}: {len(x)} passages, max abs diff {diff:.3g}, min cosine {cos:.7f}")


def report(out: Path) -> None:
    runs = {p.stem.removeprefix("pipeline-"): json.loads(p.read_text()) for p in sorted(out.glob("pipeline-*.json"))}
    null = json.loads((out / "null.json").read_text()) if (out / "null.json").exists() else None
    device = (out / "device.txt").read_text().strip().splitlines()[-1] if (out / "device.txt").exists() else "?"
    fields = ["shape", "instances", "load", "target_rps", "ok_rps", "p50_ms", "p99_ms", "mean_ms", "errors",
              "server_cores", "rps_per_core", "mean_batch", "padded_len", "instance_busy"]  # fmt: skip
    with open(out / "points.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        for shape, run in [*runs.items(), *([("null", null)] if null else [])]:
            for p in run["points"]:
                row = {**p, "shape": shape, "instance_busy": " ".join(f"{b:.3f}" for b in p["instance_busy"])}
                w.writerow([row.get(k, "") for k in fields])
    lines = [f"# GPU run: {device}", "", "Every figure from one run of `load-tests/gpu/run.sh` on this device.", ""]
    lines += ["| shape | instances | saturated ok rps | p99 saturated (ms) | p99 at 50% load (ms) | mean batch | padded len "
              "| raw ORT at that shape (seq/s) | service / raw |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for shape, run in runs.items():
        raw = {r["batch"]: r["sequences_per_s"] for r in run["raw"]}
        half = {p["instances"]: p for p in run["points"] if p["load"] == "half"}
        for p in (p for p in run["points"] if p["load"] == "saturated"):
            r = raw.get(max(1, round(p["mean_batch"])))
            h = half.get(p["instances"])
            lines.append(
                f"| {shape} | {p['instances']} | {p['ok_rps']:.0f} | {p['p99_ms']:.2f} | {h['p99_ms']:.2f} | "
                f"{p['mean_batch']:.1f} | {p['padded_len']:.1f} | {r or 0:.0f} | {p['ok_rps'] / r if r else 0:.3f} |"
                if h else f"| {shape} | {p['instances']} | {p['ok_rps']:.0f} | {p['p99_ms']:.2f} | - | - | - | - | - |"
            )
    if null:
        lines += ["", "Host ceiling (null encoder): " + ", ".join(f"{k} {v}" for k, v in null["ratios"].items())]
    if (out / "parity.txt").exists():
        lines += ["", "Parity: " + (out / "parity.txt").read_text().strip()]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    if chart is None:
        print("matplotlib is not installed: no charts (summary.md and points.csv are complete)")
    for shape, run in runs.items() if chart else ():
        def by(load, key, points=run["points"]):
            return [(p["instances"], p[key], None) for p in points if p["load"] == load]

        ticks = sorted({p["instances"] for p in run["points"]})
        chart(out / f"{shape}-throughput-vs-instances.svg", f"{shape} on {device}: saturated throughput",
              "encoder instances", "ok requests/s", [("service", by("saturated", "ok_rps"), None)],
              xticks=ticks)  # fmt: skip
        chart(out / f"{shape}-p99-vs-instances.svg", f"{shape} on {device}: p99",
              "encoder instances", "p99 (ms)",
              [("saturated", by("saturated", "p99_ms"), None), ("50% load", by("half", "p99_ms"), None)],
              xticks=ticks)  # fmt: skip
    print((out / "summary.md").read_text())


if __name__ == "__main__":
    if sys.argv[1:2] == ["parity"]:
        parity(*sys.argv[2:5])
    elif sys.argv[1:2] == ["report"]:
        report(Path(sys.argv[2]))
    else:
        sys.exit(__doc__)
