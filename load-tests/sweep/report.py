"""points.csv + meta.json of a sweep run -> report.md, ratios.json and SVG plots (plots.py).

A folder may hold `banner.txt`, one line printed over its report and every chart (e.g. that
the run used a binary older than the current batcher)."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def label(r):
    if r["adaptive"] == "True":
        return f"adaptive (cap {int(r['max_wait_us']) // 1000} ms)"
    return f"mbs {r['max_batch_size']}, wait {int(r['max_wait_us']) / 1000:g} ms"


def ratios(model, rows, enc):
    """The issue's ratios for one model, all from this run."""
    bench = enc["rows"]
    peak = max(bench, key=lambda b: b["sequences_per_s"])
    b1 = next(b for b in bench if b["batch"] == 1)
    sat = max(rows, key=lambda r: num(r["ok_rps"]) or 0)
    fixed = [r for r in rows if r["adaptive"] != "True"]
    by_mbs = {}
    for r in fixed:
        m = int(r["max_batch_size"])
        by_mbs[m] = max(by_mbs.get(m, 0), num(r["ok_rps"]) or 0)
    best_mbs = max(by_mbs, key=by_mbs.get)
    busy = num(sat.get("encoder_busy", ""))
    # A lone client: every wait-0 setting runs it the same way (batches of one, no wait), so
    # their median, not the luckiest point, is the service's p50 at c=1.
    c1_all = [r for r in fixed if r["mode"] == "closed" and r["concurrency"] == "1"]
    c1 = [num(r["p50_ms"]) for r in c1_all if r["max_wait_us"] == "0"]
    if not c1 and c1_all:
        c1 = [min(num(r["p50_ms"]) for r in c1_all)]
    # Baseline: the load's own queries encoded alone at their own lengths, when the bench ran
    # them (`--queries`); else batch 1 at the padded length.
    lone = enc.get("lone_queries")
    base_ms = lone["p50_ms"] if lone else b1["p50_ms"]
    # Adaptive vs the best fixed setting's p99 at each load level.
    adaptive = []
    for load in sorted({(r["mode"], r["concurrency"], r["target_rps"]) for r in rows}):
        at = [r for r in rows if (r["mode"], r["concurrency"], r["target_rps"]) == load]
        best = min((num(r["p99_ms"]) for r in at if r["adaptive"] != "True" and num(r["p99_ms"])), default=None)
        ad = [num(r["p99_ms"]) for r in at if r["adaptive"] == "True" and num(r["p99_ms"])]
        if best and ad:
            adaptive.append({"mode": load[0], "concurrency": load[1], "target_rps": load[2],
                             "best_fixed_p99_ms": best, "adaptive_p99_ms": ad[0], "ratio": ad[0] / best})  # fmt: skip
    return {
        "model": model,
        "encoder_seq_len": enc["seq"],
        "encoder_best_batch": peak["batch"],
        "encoder_peak_seq_per_s": peak["sequences_per_s"],
        "encoder_batch1_ms": b1["p50_ms"],
        "saturated_ok_rps": num(sat["ok_rps"]),
        "saturated_setting": label(sat),
        "pipeline_efficiency": num(sat["ok_rps"]) / peak["sequences_per_s"],
        # Its two factors (runs with encoder_busy): the share of time the encoder ran, and
        # what it served per second of running against the bench's uniform-length peak
        # (padding and run sizes).
        "saturated_encoder_busy": busy,
        "encoder_work_efficiency": num(sat["ok_rps"]) / (busy * peak["sequences_per_s"]) if busy else None,
        "encoder_lone_query_ms": lone["p50_ms"] if lone else None,
        "low_load_baseline": "lone queries" if lone else "batch 1, padded length",
        "low_load_p50_c1_ms": median(c1) if c1 else None,
        "low_load_overhead_ms": (median(c1) - base_ms) if c1 else None,
        "batching_gain": by_mbs[best_mbs] / by_mbs[1] if by_mbs.get(1) else None,
        "best_max_batch_size": best_mbs,
        "adaptive_vs_best_fixed_p99": adaptive,
    }


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return (xs[n // 2] + xs[(n - 1) // 2]) / 2 if n else None


def robust(rows, enc):
    """Single points swing +-30% on a shared machine; medians over settings that should not
    matter damp that. Saturation per max batch size: every wait at the two highest closed-loop
    concurrencies (waits only matter below saturation). p50 at c=1 per wait: every max batch
    size above 1 (a lone query never fills a batch)."""
    fixed = [r for r in rows if r["adaptive"] != "True"]
    closed = [r for r in fixed if r["mode"] == "closed"]
    top = sorted({int(r["concurrency"]) for r in closed})[-2:]
    sat = {}
    for r in closed:
        if int(r["concurrency"]) in top and num(r["ok_rps"]):
            sat.setdefault(int(r["max_batch_size"]), []).append(num(r["ok_rps"]))
    c1 = {}
    for r in closed:
        if r["concurrency"] == "1" and int(r["max_batch_size"]) > 1 and num(r["p50_ms"]):
            c1.setdefault(int(r["max_wait_us"]), []).append(num(r["p50_ms"]))
    peak = max(b["sequences_per_s"] for b in enc["rows"])
    by_mbs = {m: {"median": median(v), "min": min(v), "max": max(v), "n": len(v)} for m, v in sorted(sat.items())}
    best = max(by_mbs, key=lambda m: by_mbs[m]["median"]) if by_mbs else None
    return {
        "concurrencies": top,
        "saturated_ok_rps_by_max_batch": by_mbs,
        "best_max_batch_size": best,
        "pipeline_efficiency": by_mbs[best]["median"] / peak if best else None,
        "batching_gain": by_mbs[best]["median"] / by_mbs[1]["median"] if best and 1 in by_mbs else None,
        "c1_p50_ms_by_wait": {w: {"median": median(v), "n": len(v)} for w, v in sorted(c1.items())},
    }


def robust_lines(rb):
    if not rb["saturated_ok_rps_by_max_batch"]:
        return []
    out = ["Noise-damped: medians over settings that should not matter (saturation: every wait at "
           "the two highest closed-loop concurrencies; p50 at c=1: every max batch size above 1).", "",
           f"| max batch | saturated OK rps, median (min-max, n) at c in {rb['concurrencies']} |", "| --- | --- |"]  # fmt: skip
    out += [f"| {m} | {v['median']:.1f} ({v['min']:.1f}-{v['max']:.1f}, {v['n']}) |"
            for m, v in rb["saturated_ok_rps_by_max_batch"].items()]  # fmt: skip
    out += ["", f"- Pipeline efficiency (median): **{rb['pipeline_efficiency']:.2f}** at max batch {rb['best_max_batch_size']}"]
    if rb["batching_gain"]:
        out.append(f"- Batching gain (median): **{rb['batching_gain']:.2f}x**")
    if rb["c1_p50_ms_by_wait"]:
        out.append("- p50 at c=1 by max wait (median over max batch > 1): "
                   + ", ".join(f"{w / 1000:g} ms -> {v['median']:.1f} ms" for w, v in rb["c1_p50_ms_by_wait"].items()))
    return out + [""]


def plots(out, model, rows, enc, banner=""):
    """The folder's charts for one model; returns the file names written. The plotting library
    is imported here, so the ratios and report.md need only the standard library."""
    import plots as pl

    closed = [r for r in rows if r["mode"] == "closed"]
    fixed_closed = [r for r in closed if r["adaptive"] != "True"]
    waits = sorted({int(r["max_wait_us"]) for r in fixed_closed})
    mbss = sorted({int(r["max_batch_size"]) for r in fixed_closed})
    concs = sorted({int(r["concurrency"]) for r in closed})
    at = lambda r, **kw: all(int(r[k]) == v for k, v in kw.items())  # noqa: E731
    written = []

    def draw(name, *args, **kw):
        pl.chart(out / f"{model}-{name}.svg", *args, banner=banner, **kw)
        written.append(f"{model}-{name}.svg")

    # p99 against throughput, one line per max batch size at one wait, each point labelled with
    # its concurrency (throughput is not monotonic in concurrency at saturation: the labels say
    # which way a line runs).
    w = 2000 if 2000 in waits else waits[0]
    series = []
    for m in mbss:
        wm = 0 if m == 1 and w not in {int(r["max_wait_us"]) for r in fixed_closed if at(r, max_batch_size=1)} else w
        s = sorted((r for r in fixed_closed if at(r, max_batch_size=m, max_wait_us=wm)), key=lambda r: int(r["concurrency"]))
        series.append((f"max batch {m}" + (f", wait {wm / 1000:g} ms" if wm != w else ""),
                       [(num(r["ok_rps"]), num(r["p99_ms"]), f"c={r['concurrency']}") for r in s], None))  # fmt: skip
    ad = sorted((r for r in closed if r["adaptive"] == "True"), key=lambda r: int(r["concurrency"]))
    if ad:
        cap = f"cap {ad[0]['max_batch_size']} / {int(ad[0]['max_wait_us']) / 1000:g} ms"
        series.append((f"adaptive ({cap})", [(num(r["ok_rps"]), num(r["p99_ms"]), f"c={r['concurrency']}") for r in ad], None))
    draw("latency-vs-throughput", series=series, logy=True,
         title=f"{model}: p99 vs throughput, closed loop, fixed wait {w / 1000:g} ms (points: concurrency c)",
         xlabel="throughput (OK requests/s)", ylabel="p99 latency (ms)")  # fmt: skip
    # Saturation against max batch size: one line per wait and their median (single points
    # swing +-30% on a shared machine).
    top_c = concs[-1]
    for key, name in (("ok_rps", "throughput (OK requests/s)"), ("p99_ms", "p99 latency (ms)")):
        series = []
        for wt in waits:
            s = sorted((int(r["max_batch_size"]), num(r[key]), "") for r in fixed_closed if at(r, concurrency=top_c, max_wait_us=wt))
            series.append((f"wait {wt / 1000:g} ms", s, None))
        if len(waits) > 1:
            by = {m: [num(r[key]) for r in fixed_closed if at(r, concurrency=top_c, max_batch_size=m) and num(r[key])] for m in mbss}
            series.append(("median over waits", [(m, median(v), "") for m, v in by.items() if v], pl.BOLD))
        draw(f"{key.split('_')[0]}-vs-max-batch", series=series, logx=True, xticks=mbss, logy=key == "p99_ms",
             title=f"{model}: {name.split(' (')[0]} vs max batch size, closed loop, concurrency {top_c}",
             xlabel="max batch size", ylabel=name)  # fmt: skip
    if len(waits) < 2:
        return written
    # Against the wait: p99 per concurrency at the largest max batch, and p50 of a lone client.
    series = []
    for c in concs:
        s = sorted((int(r["max_wait_us"]) / 1000, num(r["p99_ms"]), "") for r in fixed_closed if at(r, concurrency=c, max_batch_size=mbss[-1]))
        series.append((f"concurrency {c}", s, None))
    draw("p99-vs-max-wait", series=series, logy=True, xticks=[x / 1000 for x in waits],
         title=f"{model}: p99 vs max wait, closed loop, max batch {mbss[-1]}",
         xlabel="max wait (ms)", ylabel="p99 latency (ms)")  # fmt: skip
    series = []
    for m in mbss[1:]:
        s = sorted((int(r["max_wait_us"]) / 1000, num(r["p50_ms"]), "") for r in fixed_closed if at(r, concurrency=1, max_batch_size=m))
        series.append((f"max batch {m}", s, None))
    rb = robust(rows, enc)["c1_p50_ms_by_wait"]
    series.append(("median over max batch", [(w / 1000, v["median"], "") for w, v in rb.items()], pl.BOLD))
    if 0 in rb:
        series.append(("median at wait 0, plus the wait", [(w / 1000, rb[0]["median"] + w / 1000, "") for w in rb], pl.GUIDE))
    lone = enc.get("lone_queries")
    ref = (lone["p50_ms"], "raw encoder, the load's queries alone (p50)") if lone else (
        next(b for b in enc["rows"] if b["batch"] == 1)["p50_ms"], f"raw encoder, batch 1 at {enc['seq']} tokens (p50)")  # fmt: skip
    draw("p50-c1-vs-max-wait", series=series, xticks=[x / 1000 for x in waits], hline=ref,
         title=f"{model}: p50 of a lone client (concurrency 1) vs max wait",
         xlabel="max wait (ms)", ylabel="p50 latency (ms)")  # fmt: skip
    return written


def fmt(v, d=1):
    x = num(v)
    return "" if x is None else f"{x:.{d}f}"



def gain_line(rt):
    """The batching-gain bullet; a grid without max batch size 1 has no baseline for it."""
    if rt["batching_gain"] is None:
        return "- Batching gain: not measured (the grid has no max batch size 1)"
    return (f"- Batching gain: **{rt['batching_gain']:.2f}x** "
            f"(best max batch size {rt['best_max_batch_size']} vs 1)")

def redraw(out: Path) -> None:
    """Only the charts (and their links and the banner in report.md), from points.csv: a run's
    report.md and ratios.json stay as its own report.py wrote them."""
    rows = list(csv.DictReader(open(out / "points.csv")))
    meta = json.loads((out / "meta.json").read_text())
    banner = banner_of(out)
    lines = (out / "report.md").read_text().splitlines()
    if len(lines) > 2 and lines[2].startswith("**"):  # the banner an earlier redraw wrote
        del lines[1:3]
    if banner:
        lines[1:1] = ["", f"**{banner}**"]
    for model in dict.fromkeys(r["model"] for r in rows):
        charts = plots(out, model, [r for r in rows if r["model"] == model], meta["encoder"][model], banner)
        link = " ".join(f"![]({c})" for c in charts)
        lines = [link if ln.startswith(f"![]({model}-") else ln for ln in lines]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def banner_of(out: Path) -> str:
    f = out / "banner.txt"
    return " ".join(f.read_text().split()) if f.exists() else ""


def write(out: Path) -> None:
    rows = list(csv.DictReader(open(out / "points.csv")))
    meta = json.loads((out / "meta.json").read_text())
    m = meta["machine"]
    lines = [f"# Batch-size sweep: {meta['grid'].get('name', '')}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB" + (f", GPU {m['gpu']}" if m.get("gpu") else ""),
             f"Started {m['date_utc']}, finished {meta.get('finished_utc', '')}; load average at start/end "
             f"{meta.get('loadavg_start', '')} / {meta.get('loadavg_end', '')}.", "",
             f"Command: `python3 load-tests/sweep/sweep.py {' '.join(meta['argv'][1:])}`", ""]  # fmt: skip
    banner = banner_of(out)
    if banner:
        lines[1:1] = ["", f"**{banner}**"]
    # The GPU machine runs sweeps with a bare python3: there the report comes without charts,
    # and `sweep.py report DIR` with the venv draws them later.
    charting = importlib.util.find_spec("matplotlib") is not None
    if not charting:
        print("report: matplotlib not installed, no charts (pip install -r load-tests/requirements.txt, "
              f"then sweep.py report {out})", file=sys.stderr)  # fmt: skip
    all_ratios = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mr = [r for r in rows if r["model"] == model]
        rt = ratios(model, mr, meta["encoder"][model])
        rt["robust"] = robust(mr, meta["encoder"][model])
        all_ratios.append(rt)
        charts = plots(out, model, mr, meta["encoder"][model], banner) if charting else []
        lines += [f"## {model}", "",
                  f"Raw encoder (`xling bench encoder`, {rt['encoder_seq_len']} tokens): batch 1 p50 {rt['encoder_batch1_ms']:.2f} ms, "
                  f"peak {rt['encoder_peak_seq_per_s']:.1f} seq/s at batch {rt['encoder_best_batch']}.", "",
                  f"- Pipeline efficiency: {rt['saturated_ok_rps']:.1f} / {rt['encoder_peak_seq_per_s']:.1f} = **{rt['pipeline_efficiency']:.2f}** ({rt['saturated_setting']})",
                  f"- Low-load overhead: p50 at c=1 (median of wait-0 settings) {rt['low_load_p50_c1_ms']:.2f} ms - "
                  f"{rt['encoder_lone_query_ms'] or rt['encoder_batch1_ms']:.2f} ms (encoder, {rt['low_load_baseline']}) = **{rt['low_load_overhead_ms']:.2f} ms**",
                  *([f"  = encoder busy {rt['saturated_encoder_busy']:.2f} of the time x {rt['encoder_work_efficiency']:.2f} of the "
                     f"uniform-length peak while running (padding, run sizes)"] if rt["saturated_encoder_busy"] else []),
                  gain_line(rt), ""]
        lines += robust_lines(rt["robust"])
        if rt["adaptive_vs_best_fixed_p99"]:
            lines += ["| load | best fixed p99 ms | adaptive p99 ms | ratio |", "| --- | --- | --- | --- |"]
            lines += [f"| {a['mode']} c={a['concurrency']} {('rate ' + a['target_rps']) if a['target_rps'] else ''} | "
                      f"{a['best_fixed_p99_ms']:.1f} | {a['adaptive_p99_ms']:.1f} | {a['ratio']:.2f} |"
                      for a in rt["adaptive_vs_best_fixed_p99"]]  # fmt: skip
            lines.append("")
        lines += [" ".join(f"![]({c})" for c in charts), "",
                  "| setting | load | ok rps | p50 ms | p90 ms | p99 ms | errors | mean batch | queue wait ms | server CPU | client CPU | encoder busy |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for r in mr:
            load = f"c={r['concurrency']}" if r["mode"] == "closed" else f"{r['target_rps']} rps"
            lines.append(f"| {label(r)} | {load} | {fmt(r['ok_rps'])} | {fmt(r['p50_ms'])} | {fmt(r['p90_ms'])} | "
                         f"{fmt(r['p99_ms'])} | {r['errors']} | {fmt(r['batch_size_mean'], 2)} | {fmt(r['queue_wait_ms_mean'])} | "
                         f"{fmt(r['server_cpu_cores'], 2)} | {fmt(r['client_cpu_cores'], 2)} | {fmt(r.get('encoder_busy'), 2)} |")  # fmt: skip
        lines.append("")
    (out / "ratios.json").write_text(json.dumps(all_ratios, indent=2) + "\n")
    (out / "report.md").write_text("\n".join(lines) + "\n")
