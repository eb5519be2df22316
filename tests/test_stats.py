"""qlab.stats: interval coverage on known distributions, precision, outliers, ratios.

Coverage tests draw 2,000 seeded samples from a known distribution and count how often
the 95 % interval contains the true value: it must be 93-97 % (the binomial standard
error of a 95 % rate over 2,000 trials is 0.5 %). No pool is involved.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from qlab.core import stats

TRIALS = 2000


def _rate(inside: np.ndarray) -> float:
    return float(np.mean(inside))


@pytest.mark.parametrize("repeats", [3, 5, 10])
def test_mean_throughput_interval_covers_the_true_mean(repeats):
    # throughput of repeated runs: 1000 jobs/s with 5 % noise
    rng = np.random.default_rng(repeats)
    samples = rng.normal(1000.0, 50.0, size=(TRIALS, repeats))
    cis = [stats.mean_ci(row) for row in samples]
    assert all(ci.method == "t" for ci in cis)
    assert 0.93 <= _rate(np.array([ci.contains(1000.0) for ci in cis])) <= 0.97


def test_p95_bootstrap_interval_covers_the_true_p95():
    # 300 latencies per trial from an exponential distribution: p95 = -ln(0.05)
    # the trials go through scipy.stats.bootstrap in one vectorised call, with the same
    # method as quantile_ci (BCa); 499 resamples keep the test to a few seconds
    truth = -math.log(0.05)
    x = np.random.default_rng(11).exponential(size=(TRIALS, 300))
    res = st.bootstrap(
        (x,), lambda a, axis: np.quantile(a, 0.95, axis=axis), vectorized=True, axis=-1,
        n_resamples=499, method="BCa", rng=np.random.default_rng(0), batch=20,
    )  # fmt: skip
    low, high = res.confidence_interval
    assert 0.93 <= _rate((low <= truth) & (truth <= high)) <= 0.97
    # and quantile_ci gives the same interval for one of those samples
    one = stats.quantile_ci(x[0], 0.95, resamples=499, seed=0)[0]
    assert one.method == "bootstrap"
    ref = st.bootstrap((x[0],), lambda a, axis: np.quantile(a, 0.95, axis=axis),
                       vectorized=True, n_resamples=499, method="BCa",
                       rng=np.random.default_rng(0))  # fmt: skip
    assert one.low == pytest.approx(ref.confidence_interval.low)
    assert one.high == pytest.approx(ref.confidence_interval.high)


@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_order_statistic_interval_covers_the_true_quantile(q):
    # above BOOTSTRAP_MAX values quantile_ci uses order statistics: exact coverage
    n = stats.BOOTSTRAP_MAX + 1000
    truth = -math.log(1 - q)
    x = np.random.default_rng(int(q * 100)).exponential(size=(TRIALS, n))
    inside = []
    for row in x:
        ci = stats.quantile_ci(row, q)[0]
        inside.append(ci.contains(truth))
    assert ci.method == "order"
    assert 0.93 <= _rate(np.array(inside)) <= 0.97


def test_quantile_ci_is_seeded_and_pools_runs():
    rng = np.random.default_rng(3)
    runs = [rng.exponential(size=200) for _ in range(3)]
    a = stats.quantile_ci(runs, [0.5, 0.95], seed=1)
    b = stats.quantile_ci(runs, [0.5, 0.95], seed=1)
    pooled = stats.quantile_ci(np.concatenate(runs), [0.5, 0.95], seed=1)
    assert a == b == pooled
    assert a[0].high < a[1].low  # the median is well below the p95
    assert stats.quantile_ci([1.0], 0.5)[0].method == "none"
    assert math.isnan(stats.quantile_ci([], 0.5)[0].low)
    with pytest.raises(ValueError, match="q must be"):
        stats.quantile_ci([1.0, 2.0], 1.5)
    with pytest.raises(ValueError, match="method"):
        stats.quantile_ci([1.0, 2.0], 0.5, method="magic")


def test_is_precise_is_the_half_width_rule():
    assert stats.is_precise([100, 100.5, 99.5], 0.05)
    assert not stats.is_precise([100], 0.05)  # one value: no interval
    ci = stats.mean_ci([100, 110, 90])
    rel = ci.half_width / 100
    assert stats.is_precise([100, 110, 90], rel + 1e-9)
    assert not stats.is_precise([100, 110, 90], rel - 1e-9)


def test_outliers_by_modified_z_score():
    assert stats.outliers([100, 102, 98, 101, 60]).tolist() == [False] * 4 + [True]
    assert not stats.outliers([100, 101, 60]).any()  # fewer than 5: nothing to judge by
    assert stats.outliers([100, 100, 100, 100, 150]).tolist() == [False] * 4 + [True]
    assert not stats.outliers([5, 5, 5, 5, 5]).any()
    assert not stats.outliers(np.random.default_rng(0).normal(size=20)).any()


def test_ratio_ci():
    ratio, ci = stats.ratio_ci([200, 202, 198], [100, 101, 99])
    assert ratio == pytest.approx(2.0) and ci.low < 2.0 < ci.high and ci.low > 1.9
    ratio, ci = stats.ratio_ci([100, 120, 80], [100, 110, 90])
    assert ci.contains(1.0)
    assert math.isnan(stats.ratio_ci([100], [100, 101])[1].low)
    # coverage on the log scale: ratio of two normal means of 5 repeats each
    rng = np.random.default_rng(5)
    a, b = rng.normal(1100, 40, (TRIALS, 5)), rng.normal(1000, 40, (TRIALS, 5))
    inside = [stats.ratio_ci(x, y)[1].contains(1.1) for x, y in zip(a, b, strict=True)]
    assert 0.93 <= _rate(np.array(inside)) <= 0.97


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, "0.9", True])
def test_check_confidence_names_the_parameter(bad):
    with pytest.raises(ValueError, match="confidence"):
        stats.check_confidence(bad)


def test_latency_cis_for_run_summary():
    lat = np.random.default_rng(9).exponential(size=5000)
    cis = stats.latency_cis(lat)
    assert list(cis) == [
        f"latency_{p}_s_ci_{end}" for p in ("p50", "p95", "p99") for end in ("low", "high")
    ]
    for p, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        point = float(np.quantile(lat, q))
        assert cis[f"latency_{p}_s_ci_low"] <= point <= cis[f"latency_{p}_s_ci_high"]
    assert math.isnan(stats.latency_cis([])["latency_p95_s_ci_low"])


@pytest.mark.parametrize(
    "name",
    ["qlab.core.stats", "qlab.lab.usl.model", "qlab.lab.usl.fitting", "qlab.lab.sweep_stats",
     "qlab.lab.machine", "qlab.plot.uncertainty"],
)  # fmt: skip
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
