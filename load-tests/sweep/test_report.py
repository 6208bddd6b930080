"""The report's ratios on hand-made points: which baseline and which points each one uses."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402

BENCH = {
    "seq": 20,
    "rows": [
        {"batch": 1, "seq": 20, "p50_ms": 8.0, "sequences_per_s": 125.0},
        {"batch": 64, "seq": 20, "p50_ms": 320.0, "sequences_per_s": 200.0},
    ],
}


def point(mbs, wait_us, c, ok_rps, p50_ms, busy=""):
    return {"mode": "closed", "max_batch_size": str(mbs), "max_wait_us": str(wait_us),
            "adaptive": "False", "concurrency": str(c), "target_rps": "", "ok_rps": str(ok_rps),
            "p50_ms": str(p50_ms), "p99_ms": str(2 * p50_ms), "encoder_busy": str(busy)}  # fmt: skip


ROWS = [
    point(1, 0, 1, 120, 6.0),
    point(16, 0, 1, 115, 7.0),
    point(64, 0, 1, 118, 5.0),
    point(64, 2000, 1, 90, 9.0),  # a wait: not the lone-client baseline
    point(1, 0, 64, 125, 500, busy=0.99),
    point(64, 0, 64, 180, 350, busy=0.96),
]


def test_overhead_uses_the_lone_queries_and_the_median_wait_0_point():
    enc = {**BENCH, "lone_queries": {"batch": 1, "seq": 17, "p50_ms": 5.5}}
    rt = report.ratios("m", ROWS, enc)
    assert rt["low_load_p50_c1_ms"] == 6.0  # median of 6, 7, 5; the 9 ms wait point left out
    assert abs(rt["low_load_overhead_ms"] - 0.5) < 1e-9
    assert rt["low_load_baseline"] == "lone queries"
    # Without the replay, batch 1 at the bench's padded length.
    rt = report.ratios("m", ROWS, BENCH)
    assert abs(rt["low_load_overhead_ms"] - (6.0 - 8.0)) < 1e-9
    assert rt["encoder_lone_query_ms"] is None


def test_efficiency_is_encoder_busy_times_work_efficiency():
    rt = report.ratios("m", ROWS, BENCH)
    assert rt["saturated_ok_rps"] == 180 and rt["pipeline_efficiency"] == 0.9
    assert rt["saturated_encoder_busy"] == 0.96
    product = rt["saturated_encoder_busy"] * rt["encoder_work_efficiency"]
    assert abs(product - rt["pipeline_efficiency"]) < 1e-9
    assert rt["batching_gain"] == 180 / 125
    # Runs from before the column have no decomposition.
    old = [{k: v for k, v in r.items() if k != "encoder_busy"} for r in ROWS]
    assert report.ratios("m", old, BENCH)["encoder_work_efficiency"] is None


def grid_rows():
    """A small grid: max batch {1, 8, 128} x wait {0, 2, 5 ms} at c = 1, 64, plus adaptive."""
    rows = []
    for mbs in (1, 8, 128):
        for wait in (0,) if mbs == 1 else (0, 2000, 5000):
            for c in (1, 64):
                rows.append(point(mbs, wait, c, 100 + mbs / 4 + c, 6 + wait / 1000 + c))
    ad = point(128, 10000, 64, 170, 300)
    rows.append({**ad, "adaptive": "True"})
    return rows


def svg_texts(path):
    """The text of an SVG chart (matplotlib keeps text as <text> with svg.fonttype none)."""
    import xml.etree.ElementTree as ET

    return {t.text for t in ET.parse(path).iter("{http://www.w3.org/2000/svg}text") if t.text}


def test_charts_label_points_tick_tested_values_and_carry_the_banner(tmp_path):
    written = report.plots(tmp_path, "m", grid_rows(), BENCH, banner="Old binary")
    assert written == ["m-latency-vs-throughput.svg", "m-ok-vs-max-batch.svg", "m-p99-vs-max-batch.svg",
                       "m-p99-vs-max-wait.svg", "m-p50-c1-vs-max-wait.svg"]  # fmt: skip
    lat = svg_texts(tmp_path / "m-latency-vs-throughput.svg")
    assert {"c=1", "c=64", "Old binary", "adaptive (cap 128 / 10 ms)", "max batch 1, wait 0 ms"} <= lat
    # The max batch axis is ticked at the tested sizes only, as plain numbers.
    ok = svg_texts(tmp_path / "m-ok-vs-max-batch.svg")
    assert {"1", "8", "128", "median over waits"} <= ok and "4" not in ok and "10" not in ok
    p50 = svg_texts(tmp_path / "m-p50-c1-vs-max-wait.svg")
    assert {"0", "2", "5", "raw encoder, batch 1 at 20 tokens (p50)"} <= p50


def test_a_single_wait_grid_draws_no_wait_charts(tmp_path):
    rows = [r for r in grid_rows() if r["max_wait_us"] == "0"]
    assert report.plots(tmp_path, "m", rows, BENCH) == ["m-latency-vs-throughput.svg", "m-ok-vs-max-batch.svg",
                                                       "m-p99-vs-max-batch.svg"]  # fmt: skip


def test_colours_never_repeat_within_a_chart():
    import plots

    for n in (3, 10, 11, 14):
        assert len(set(plots.colors(n))) == n


def test_redraw_keeps_the_report_and_replaces_banner_and_chart_links(tmp_path):
    import csv
    import json

    rows = [{**r, "model": "m"} for r in grid_rows()]
    with open(tmp_path / "points.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (tmp_path / "meta.json").write_text(json.dumps({"encoder": {"m": BENCH}}))
    (tmp_path / "report.md").write_text("# Run\n\nMachine: x\n\n![](m-latency-vs-throughput.svg) ![](m-p99-vs-max-wait.svg)\n\n| row |\n")
    (tmp_path / "banner.txt").write_text("First\n")
    report.redraw(tmp_path)
    (tmp_path / "banner.txt").write_text("Old binary\n")
    report.redraw(tmp_path)
    lines = (tmp_path / "report.md").read_text().splitlines()
    assert lines[:5] == ["# Run", "", "**Old binary**", "", "Machine: x"]
    assert "![](m-p50-c1-vs-max-wait.svg)" in lines[6] and lines[-1] == "| row |"
    assert not (tmp_path / "ratios.json").exists()
