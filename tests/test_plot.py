"""Tests for qlab.plot on small synthetic attempts / jobs / sweep frames (Agg backend)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure

from qlab import plot

plt.switch_backend("Agg")  # headless; no window even without MPLBACKEND=Agg

OUTCOMES = ["ok", "retry", "failed", "timeout", "crashed", "cancelled"]


def _plan(j: int, n_jobs: int) -> list[str]:
    """Outcomes of job j's attempts: a mix of retries, failures, a timeout, a crash, a cancel."""
    if j == n_jobs - 1:
        return ["cancelled"]
    if j % 10 == 0:
        return ["retry", "retry", "failed"]
    if j % 5 == 0:
        return ["retry", "ok"]
    return {3: ["timeout", "ok"], 7: ["crashed"]}.get(j, ["ok"])


def make_run(n_jobs: int = 40, n_workers: int = 4, seed: int = 0, cpu_ratio: float = 0.6):
    """A plausible run: (attempts, jobs), jobs submitted 5 ms apart, one never started."""
    rng = np.random.default_rng(seed)
    free = np.zeros(n_workers)
    rows, jobs = [], []
    for j in range(n_jobs):
        sub, ready, plan = j * 0.005, j * 0.005, _plan(j, n_jobs)
        for k, outcome in enumerate(plan, start=1):
            w = int(np.argmin(np.maximum(free, ready)))
            start = max(free[w], ready)
            dur = float(rng.uniform(0.01, 0.05))
            backoff = 0.02 * k if k < len(plan) else math.nan
            err = None if outcome == "ok" else "ValueError"
            rows.append(
                dict(
                    job_id=j,
                    attempt=k,
                    worker=w,
                    start_s=start,
                    end_s=start + dur,
                    duration_s=dur,
                    cpu_s=dur * cpu_ratio,
                    outcome=outcome,
                    error_type=err,
                    error=err and "boom",
                    backoff_s=backoff,
                )
            )
            free[w] = start + dur
            ready = start + dur + (0 if math.isnan(backoff) else backoff)
        mine = [r for r in rows if r["job_id"] == j]
        status = {"ok": "ok", "cancelled": "cancelled"}.get(plan[-1], "failed")
        jobs.append(
            dict(
                job_id=j,
                status=status,
                attempts=len(plan),
                submitted_s=sub,
                first_start_s=mine[0]["start_s"],
                end_s=mine[-1]["end_s"],
                worker=mine[-1]["worker"],
            )
        )
    end = float(free.max())
    jobs.append(
        dict(
            job_id=n_jobs,
            status="cancelled",
            attempts=0,
            submitted_s=0.1,
            first_start_s=math.nan,
            end_s=end,
            worker=-1,
        )
    )
    attempts = pd.DataFrame(rows)
    attempts["outcome"] = pd.Categorical(attempts["outcome"], categories=OUTCOMES)
    jobs = pd.DataFrame(jobs)
    jobs["status"] = pd.Categorical(jobs["status"], categories=["ok", "failed", "cancelled"])
    jobs["queue_wait_s"] = jobs["first_start_s"] - jobs["submitted_s"]
    jobs["latency_s"] = jobs["end_s"] - jobs["submitted_s"]
    return attempts, jobs


def usl(n, lam, sigma, kappa):
    n = np.asarray(n, dtype=float)
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


PARAMS = {"thread": (100.0, 0.3, 0.01), "process": (80.0, 0.02, 0.001)}


def make_sweep(workers=(1, 2, 4, 8), repeats: int = 3, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for backend, p in PARAMS.items():
        for n in workers:
            for r in range(repeats):
                x = float(usl(n, *p)) * rng.uniform(0.95, 1.05)
                rows.append(
                    dict(
                        backend=backend,
                        workers=n,
                        repeat=r,
                        jobs=200,
                        ok=195,
                        failed=5,
                        cancelled=0,
                        retries=7,
                        wall_s=200 / x,
                        throughput=x,
                        latency_p50_s=0.01 * n,
                        latency_p95_s=0.03 * n,
                        latency_p99_s=0.05 * n**2,
                        queue_wait_mean_s=0.2 / n,
                        cpu_util=0.5,
                    )
                )
    df = pd.DataFrame(rows)
    base = df[df["workers"] == min(workers)].groupby("backend")["throughput"].mean()
    df["speedup"] = df["throughput"] / df["backend"].map(base)
    df["efficiency"] = df["speedup"] / df["workers"]
    return df


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def run():
    return make_run()


@pytest.fixture
def sweep_df():
    return make_sweep()


def legend_texts(ax: Axes) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def by_gid(ax: Axes, gid: str):
    (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == gid]
    return line


def labelled(ax: Axes) -> None:
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()


def test_timeline_lanes_outcomes_backoff(run):
    attempts, _ = run
    ax = plot.timeline(attempts)
    assert isinstance(ax, Axes)
    labelled(ax)
    polys = [c for c in ax.collections if isinstance(c, PolyCollection)]
    present = set(attempts["outcome"].astype(str))
    assert present == set(OUTCOMES)
    assert {p.get_label() for p in polys} == present
    assert sum(len(p.get_paths()) for p in polys) == len(attempts)
    (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(lines.get_segments()) == attempts["backoff_s"].notna().sum()
    assert ax.get_ylim() == (3.5, -0.5)  # 4 lanes, worker 0 on top
    texts = legend_texts(ax)
    assert all(any(t.startswith(o) for t in texts) for o in OUTCOMES)
    assert "backoff" in texts
    # a backoff line runs between the lanes, never across a bar (or a label on one)
    for (_, y0), (_, y1) in lines.get_segments():
        assert y0 == y1 and 0.4 < y0 % 1 < 0.5


def test_stacked_timelines_keep_their_tick_numbers_and_show_one_legend(run):
    attempts, _ = run
    fig, axs = plt.subplots(3, 1, sharex=True)
    for i, ax in enumerate(axs):
        plot.timeline(attempts, ax=ax, legend=i == 0)
    fig.canvas.draw()
    assert [ax.get_legend() is not None for ax in axs] == [True, False, False]
    for ax in axs:
        assert any(t.get_text() for t in ax.get_xticklabels())
    plt.close(fig)


def test_timeline_max_workers_and_given_ax(run):
    attempts, _ = run
    fig, given = plt.subplots()
    ax = plot.timeline(attempts, ax=given, max_workers=2)
    assert ax is given and ax.figure is fig
    assert ax.get_ylim() == (1.5, -0.5)
    n = sum(len(c.get_paths()) for c in ax.collections if isinstance(c, PolyCollection))
    assert n == (attempts["worker"] < 2).sum()
    assert "of 4" in ax.get_title()


def test_timeline_draws_200k_attempts_as_one_collection_per_outcome():
    n = 200_000
    rng = np.random.default_rng(0)
    start = np.sort(rng.uniform(0, 100, n))
    dur = rng.uniform(0.001, 0.01, n)
    attempts = pd.DataFrame(
        {
            "worker": rng.integers(0, 32, n),
            "start_s": start,
            "end_s": start + dur,
            "outcome": rng.choice(["ok", "retry", "failed"], n),
            "backoff_s": np.where(rng.random(n) < 0.1, 0.01, np.nan),
        }
    )
    ax = plot.timeline(attempts)
    ax.figure.canvas.draw()
    polys = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(polys) == 3  # ok, retry, failed: not one artist per attempt
    assert sum(len(c.get_paths()) for c in polys) == n


def test_latency_percentile_lines(run):
    _, jobs = run
    ax = plot.latency(jobs)
    labelled(ax)
    vlines = [ln for ln in ax.get_lines() if ln.get_label().startswith("p")]
    assert len(vlines) == 3
    p50 = np.percentile(jobs["latency_s"] * 1e3, 50)
    assert vlines[0].get_xdata()[0] == pytest.approx(p50)
    texts = legend_texts(ax)
    assert all("ms" in t for t in texts if t.startswith("p"))
    assert {"ok", "failed", "cancelled"} <= set(texts)


def test_queue_depth_counts():
    jobs = pd.DataFrame(
        {
            "submitted_s": [0.0, 0.0, 0.0, 0.5],
            "first_start_s": [1, 2, 3, np.nan],
            "end_s": [1.5, 2.5, 3.5, np.nan],
        }
    )
    ax = plot.queue_depth(jobs)
    labelled(ax)
    queued, running = ax.get_lines()
    q = dict(zip(queued.get_xdata(), queued.get_ydata(), strict=True))
    # the never-started job (submitted at 0.5) stays queued until the run's end (3.5)
    assert q == {0.0: 3, 0.5: 4, 1.0: 3, 2.0: 2, 3.0: 1, 3.5: 0}
    assert max(running.get_ydata()) == 1
    assert len(legend_texts(ax)) == 2


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


def test_contention_scatter_and_summary():
    frames = []
    for n, ratio in [(1, 0.9), (4, 0.5)]:
        attempts, _ = make_run(n_workers=n, cpu_ratio=ratio)
        frames.append(attempts.assign(workers=n, backend="thread"))
    attempts = pd.concat(frames, ignore_index=True)
    summary = plot.contention_summary(attempts)
    assert list(summary.index) == [1, 4]
    np.testing.assert_allclose(summary["wait_fraction"], [0.1, 0.5])
    ax = plot.contention(attempts, max_points=30)
    labelled(ax)
    assert len(ax.collections) == 2
    assert sum(len(c.get_offsets()) for c in ax.collections) == 30
    texts = legend_texts(ax)
    assert "1 worker: wait 10%" in texts and "4 workers: wait 50%" in texts  # not "1 workers"
    assert "cpu = wall (no waiting)" in texts
    two = pd.concat([attempts, attempts.assign(backend="process")], ignore_index=True)
    assert len(plot.contention_summary(two)) == 4
    assert "process, 4 workers: wait 50%" in legend_texts(plot.contention(two))


def test_run_plots_accessor(run):
    attempts, jobs = run
    rp = plot.RunPlots(SimpleNamespace(attempts=attempts, jobs=jobs, meta={"workers": 4}))
    assert isinstance(rp.timeline(max_workers=3), Axes)
    assert isinstance(rp.latency(), Axes)
    assert isinstance(rp.queue_depth(), Axes)
    ax = rp.contention()
    assert any(t.startswith("4 workers") for t in legend_texts(ax))


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
