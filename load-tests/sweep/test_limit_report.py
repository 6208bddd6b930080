"""limit_report.points on hand-made A/B rows: each run is read against the raw encoder measured
just before it when ab.py recorded one, else against the run's opening bench."""

import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ab import RAW  # noqa: E402
from limit_report import points  # noqa: E402
from sweep import FIELDS  # noqa: E402


def write(folder: Path, rows: list[dict]) -> str:
    with open(folder / "ab.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["round", "variant", *FIELDS, *RAW], restval="")
        w.writeheader()
        w.writerows(rows)
    return str(folder)


def row(rnd, variant, c, ok_rps, p50, raw=None):
    r = {"round": rnd, "variant": variant, "mode": "closed", "concurrency": c, "target_rps": "",
         "ok_rps": ok_rps, "p50_ms": p50, "mean_ms": p50, "p99_ms": 2 * p50, "errors": 0,
         "refused": 0, "refused_service_p99_ms": "n/a"}  # fmt: skip
    if raw:
        r["raw_lone_p50_ms"], r["raw_ceiling_seq_s"] = raw
    return r


def test_each_run_is_read_against_its_own_raw_encoder(tmp_path):
    # The machine ran 200 seq/s before round 0 and 100 before round 1: the service kept pace.
    folder = write(tmp_path, [
        row(0, "A", 32, 190, 160, raw=(6.0, 200)), row(1, "A", 32, 95, 320, raw=(6.0, 100)),
        row(0, "A", 1, 120, 6.5, raw=(6.0, 200)), row(1, "A", 1, 110, 8.0, raw=(7.0, 100)),
    ])  # fmt: skip
    pts = {x["load"]: x for x in points(folder, {"A": "a", "B": "b"}, ceiling=400, lone=1.0)}
    assert pts["c=32"]["per_run"]
    assert abs(pts["c=32"]["share"] - 0.95) < 1e-9  # not 142.5 / 400
    assert abs(pts["c=1"]["over_lone_ms"] - 0.75) < 1e-9  # median of +0.5 and +1.0
    assert pts["c=32"]["p99_over_mean"] == 2


def test_without_per_run_figures_the_opening_bench_is_the_baseline(tmp_path):
    folder = write(tmp_path, [row(0, "B", 64, 150, 400), row(1, "B", 64, 170, 380)])
    (x,) = points(folder, {"A": "a", "B": "b"}, ceiling=200, lone=6.0)
    assert not x["per_run"] and x["variant"] == "b"
    assert abs(x["share"] - 0.8) < 1e-9


def test_an_ab_left_out_of_the_run_gives_no_points(tmp_path):
    assert points(str(tmp_path / "absent"), {"A": "a", "B": "b"}, ceiling=1, lone=1) == []
