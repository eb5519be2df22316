"""Sweep charts (scaling, speedup, efficiency, latency percentiles, queue wait) and
``sweep.plot``, on small synthetic sweep frames (Agg backend)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from qlab import plot
from tests.plot_data import (
    PARAMS,
    by_gid,
    labelled,
    legend_texts,
    make_run,
    make_sweep,
    usl,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def sweep_df():
    return make_sweep()


def test_scaling_ideal_and_fits(sweep_df):
    fits = {
        b: SimpleNamespace(lam=p[0], sigma=p[1], kappa=p[2], peak_workers=math.inf)
        for b, p in PARAMS.items()
    }
    ax = plot.scaling(sweep_df, fits=fits)
    labelled(ax)
    for backend in PARAMS:
        mean = sweep_df[sweep_df["backend"] == backend].groupby("workers")["throughput"].mean()
        ideal = by_gid(ax, f"ideal:{backend}")
        np.testing.assert_allclose(ideal.get_ydata(), mean.iloc[0] * mean.index / mean.index[0])
        curve = by_gid(ax, f"usl:{backend}")
        np.testing.assert_allclose(curve.get_ydata(), usl(curve.get_xdata(), *PARAMS[backend]))
    texts = legend_texts(ax)
    assert {"thread", "process", "ideal linear scaling"} <= set(texts)
    assert any(t.startswith("thread USL") and r"$\sigma$=0.3" in t and "peak" in t for t in texts)
    assert list(ax.get_xticks()) == [1, 2, 4, 8]
    assert len(ax.collections) >= 2  # a band per backend (and the fits' prediction bands)


def test_scaling_fits_as_dataframe_without_peak(sweep_df):
    fits = pd.DataFrame(PARAMS, index=["lam", "sigma", "kappa"]).T
    fits.loc["other"] = [1.0, math.nan, 0.0]  # failed fit, unknown backend: ignored
    ax = plot.scaling(sweep_df, fits=fits)
    label = by_gid(ax, "usl:thread").get_label()
    # the peak, sqrt(0.7 / 0.01) = 8.4 workers, lies beyond the measured 1..8: said so
    assert "beyond the measured range (max 8)" in label
    assert plot.scaling(sweep_df).get_legend() is not None  # no fits: still fine


def test_speedup_and_efficiency_ideals(sweep_df):
    _, (a, b) = plt.subplots(1, 2)
    assert plot.speedup(sweep_df, ax=a) is a
    ideal = by_gid(a, "ideal")
    np.testing.assert_array_equal(ideal.get_xdata(), ideal.get_ydata())
    np.testing.assert_array_equal(ideal.get_xdata(), [1, 2, 4, 8])
    assert plot.efficiency(sweep_df, ax=b) is b
    assert set(by_gid(b, "ideal").get_ydata()) == {1.0}
    for ax in (a, b):
        labelled(ax)
        assert {"thread", "process"} <= set(legend_texts(ax))
        assert len([ln for ln in ax.get_lines() if ln.get_gid() is None]) == 2


def test_latency_percentiles_ms_and_log(sweep_df):
    ax = plot.latency_percentiles(sweep_df)
    labelled(ax)
    assert "ms" in ax.get_ylabel()
    texts = legend_texts(ax)
    assert set(texts) == {"thread", "process", "p50", "p95", "p99"}
    assert {f"{b} {p}" for b in PARAMS for p in ("p50", "p95", "p99")} == {
        ln.get_label() for ln in ax.get_lines()
    }
    (p99,) = [ln for ln in ax.get_lines() if ln.get_label() == "thread p99"]
    np.testing.assert_allclose(p99.get_ydata(), 50 * np.array([1, 2, 4, 8]) ** 2)
    assert ax.get_yscale() == "log"  # 10 ms .. 3.2 s spans > 2 decades
    narrow = sweep_df.assign(latency_p99_s=0.05, latency_p95_s=0.03, latency_p50_s=0.01)
    assert plot.latency_percentiles(narrow).get_yscale() == "linear"


def test_queue_wait(sweep_df):
    ax = plot.queue_wait(sweep_df)
    labelled(ax)
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["process", "thread"]
    np.testing.assert_allclose(lines[0].get_ydata(), 200 / np.array([1, 2, 4, 8]))


def test_sweep_plots_accessor(sweep_df):
    fit = pd.DataFrame(PARAMS, index=["lam", "sigma", "kappa"]).T
    sweep = SimpleNamespace(df=sweep_df, fit=lambda: fit, runs=[])
    sp = plot.SweepPlots(sweep)
    fig = sp()
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    assert all(ax.get_title() for ax in fig.axes)
    _, given = plt.subplots()
    assert sp(ax=given) is given and any(ln.get_gid() == "usl:thread" for ln in given.get_lines())
    for name in ("scaling", "speedup", "efficiency", "latency", "queue_wait"):
        assert isinstance(getattr(sp, name)(), Axes)
    with pytest.raises(ValueError, match="keep_runs=True"):
        sp.contention()
    attempts, jobs = make_run()
    sweep.runs = [
        SimpleNamespace(attempts=attempts, jobs=jobs, meta={"workers": w}) for w in (2, 4)
    ]
    assert len(sp.contention().collections) == 2


def test_sweep_plots_survive_failed_fit(sweep_df):
    def bad_fit():
        raise ValueError("need at least 3 points")

    sp = plot.SweepPlots(SimpleNamespace(df=sweep_df, fit=bad_fit))
    with pytest.warns(UserWarning, match="USL fit failed"):
        ax = sp.scaling()
    assert not any((ln.get_gid() or "").startswith("usl") for ln in ax.get_lines())


def test_one_line_and_fit_per_backend_and_queue(sweep_df):
    # the same frame on two queues, the second half as fast: four lines, four fits
    slow = sweep_df.assign(queue="sqlite:///q.db?synchronous=full",
                           throughput=sweep_df["throughput"] / 2)  # fmt: skip
    df = pd.concat([sweep_df.assign(queue="memory"), slow], ignore_index=True)
    names = ["thread, memory", "thread, sqlite synchronous=full", "process, memory",
             "process, sqlite synchronous=full"]  # fmt: skip
    rows = []
    for (backend, queue), _ in df.groupby(["backend", "queue"]):
        lam = PARAMS[backend][0] / (2 if queue != "memory" else 1)
        rows.append({"backend": backend, "queue": queue, "lam": lam, "sigma": PARAMS[backend][1],
                     "kappa": PARAMS[backend][2]})  # fmt: skip
    fits = pd.DataFrame(rows).set_index(["backend", "queue"])  # as sweep.fit() gives it
    ax = plot.scaling(df, fits=fits)
    assert set(names) <= set(legend_texts(ax))
    for name in names:
        backend, queue = name.split(", ")
        p = PARAMS[backend]
        lam = p[0] / (2 if queue != "memory" else 1)
        curve = by_gid(ax, f"usl:{name}")
        np.testing.assert_allclose(curve.get_ydata(), usl(curve.get_xdata(), lam, *p[1:]))
    one = plot.efficiency(df[df["backend"] == "thread"])  # one backend: lines named by queue
    assert {"memory", "sqlite synchronous=full"} <= set(legend_texts(one))
