"""The tail model's claims on synthetic loads: run with pytest (scripts/test.sh)."""

import random

from split_bound import MIN_SAVING, cut
from tail_model import Cost, simulate, sorted_ceiling

# The 2-core CPU's fit for the default model (docs/batching-study.md, "Where the tail comes from").
CPU = Cost(fixed_s=3.3e-3, per_token_s=0.19e-3)
# Lengths like the multilingual queries': mostly short, a quarter long.
VARIED = [8 + (i * 7) % 13 for i in range(96)] + [30 + (i * 5) % 21 for i in range(32)]


def mixed(lengths):
    out = list(lengths)
    random.Random(7).shuffle(out)
    return out


def test_fit_recovers_a_linear_cost():
    rows = [{"batch": b, "seq": s, "mean_ms": 1e3 * CPU.run(b, s)} for b, s in
            [(8, 19), (16, 21), (32, 24), (64, 32)]]  # fmt: skip
    fit = Cost.fit({"lone_queries": {"batch": 1, "seq": 18, "mean_ms": 1e3 * CPU.run(1, 18)},
                    "query_batch_rows": rows})  # fmt: skip
    assert abs(fit.fixed_s - CPU.fixed_s) < 1e-6
    assert abs(fit.per_token_s - CPU.per_token_s) < 1e-9


def test_plan_cuts_a_long_query_off_and_keeps_equal_lengths_whole():
    assert cut([8, 9, 9, 10, 10, 10, 10, 60], CPU.tokens, MIN_SAVING) == [7, 8]
    assert cut([12] * 16, CPU.tokens, MIN_SAVING) == [16]
    # In arrival order a run ends before a long query rather than padding the rest to it.
    assert cut([8, 9, 60, 10, 10], CPU.tokens, MIN_SAVING) == [2, 3, 5]


def test_equal_lengths_give_a_flat_tail_whatever_the_policy():
    for policy, window in [("split", 0), ("split", 4), ("fifo", 0)]:
        r = simulate([12] * 128, 32, CPU, policy, window, seconds=20)
        assert r["p99_over_mean"] < 1.1, (policy, window, r)


def test_long_queries_in_a_block_widen_the_tail_even_without_reordering():
    # The same lengths, long ones together (as in the data file's order) or spread out: runs
    # in arrival order cannot help a load whose cost swings over time.
    blocked = simulate(sorted(VARIED), 32, CPU, "fifo", seconds=20)
    spread = simulate(mixed(VARIED), 32, CPU, "fifo", seconds=20)
    assert blocked["p99_over_mean"] > 1.8, blocked
    assert spread["p99_over_mean"] < blocked["p99_over_mean"] - 0.4, (spread, blocked)


def test_a_window_trades_throughput_for_the_tail():
    lengths = mixed(VARIED)
    whole = simulate(lengths, 32, CPU, "split", 0, seconds=20)
    narrow = simulate(lengths, 32, CPU, "split", 4, seconds=20)
    assert narrow["p99_over_mean"] < whole["p99_over_mean"] - 0.2, (narrow, whole)
    assert narrow["rps"] < whole["rps"], (narrow, whole)
    # Planned from the whole batch, the split serves at the raw sorted ceiling.
    assert whole["rps"] > 0.95 * sorted_ceiling(lengths, CPU), whole
