"""drift.py on hand-made runs: a machine slowing down widens p99/mean, and only that part goes
when latencies are read against their neighbours."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from drift import answered, seconds, tails  # noqa: E402


def run(latency_ms):
    """A closed loop answering every 10 ms for 20 s; latency_ms(t, i) for the i-th answer."""
    return [(t / 100, latency_ms(t / 100, t)) for t in range(2000)]


def test_a_flat_tail_that_drifts_is_drift_alone():
    # Every answer takes what the machine's speed says at that moment: 200 ms slowing to 300.
    r = tails(run(lambda t, i: 200 + 5 * t))
    assert r["p99_over_mean"] > 1.15
    assert abs(r["drift_free_p99"] - 1.0) < 0.01


def test_a_scheduling_tail_stays_when_the_drift_is_taken_out():
    # One answer in 20 waits twice as long: the scheduler's doing, on a steady machine.
    r = tails(run(lambda t, i: 400 if i % 20 == 0 else 200))
    assert r["drift_free_p99"] > 1.8
    assert abs(r["drift_free_p99"] - r["p99_over_mean"]) < 0.05


def test_the_start_is_left_out_and_only_ok_answers_count():
    report = {"details": [
        {"timestamp": "2026-12-07T06:00:00.5Z", "latency": 900_000_000, "status": "OK"},
        {"timestamp": "2026-12-07T06:00:01.123456789Z", "latency": 1_000_000, "status": "ResourceExhausted"},
        *({"timestamp": f"2026-12-07T06:00:{s:02d}.25Z", "latency": 100_000_000, "status": "OK"}
          for s in range(5, 11)),
    ]}  # fmt: skip
    points = answered(report)
    assert len(points) == 7
    assert abs(seconds("2026-12-07T06:00:01.123456789Z") - seconds("2026-12-07T06:00:01Z") - 0.123456) < 1e-6
    r = tails(points, skip_s=3.0)
    assert r["n"] == 6 and r["p99_over_mean"] == 1.0  # the 900 ms start is out
