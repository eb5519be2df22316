"""Run charts (timeline, latency, queue depth), contention and ``run.plot``, on small
synthetic frames (Agg backend)."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection

from qlab import plot
from tests.plot_data import (
    OUTCOMES,
    labelled,
    legend_texts,
    make_run,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def run():
    return make_run()


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


def test_timeline_groups_lanes_by_host_when_there_are_several(run):
    """Workers 0 and 2 on node-b, 1 and 3 on node-a, and worker 0 moved to node-a for
    its last attempts (a replaced Dask worker): a lane per (host, worker), in host
    order, a line between the hosts and each host's name on its group."""
    attempts, _ = run
    host = np.where(attempts["worker"] % 2 == 1, "node-a", "node-b").astype(object)
    moved = (attempts["worker"] == 0) & (attempts["start_s"] > attempts["start_s"].median())
    host[moved.to_numpy()] = "node-a"
    ax = plot.timeline(attempts.assign(host=pd.Categorical(host)))
    lanes = [("node-a", 0), ("node-a", 1), ("node-a", 3), ("node-b", 0), ("node-b", 2)]
    ys = [0.8, 1.8, 2.8, 4.6, 5.6]  # each host's lanes below a 0.8-lane band with its name
    assert ax.get_ylim() == pytest.approx((6.1, -0.5)) and "on 2 hosts" in ax.get_title()
    assert ax.get_yticks() == pytest.approx(ys)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "1", "3", "0", "2"]
    assert [t.get_text() for t in ax.texts] == ["node-a", "node-b"]
    assert [t.xy[1] for t in ax.texts] == pytest.approx([-0.1, 3.7])  # in the bands
    assert [line.get_ydata()[0] for line in ax.get_lines()] == pytest.approx([3.3])
    polys = [c for c in ax.collections if isinstance(c, PolyCollection)]
    centre = sorted(float(p.vertices[:4, 1].mean()) for c in polys for p in c.get_paths())
    pairs = zip(host, attempts["worker"], strict=True)
    assert centre == pytest.approx(sorted(ys[lanes.index(pair)] for pair in pairs))
    one = plot.timeline(attempts.assign(host=pd.Categorical(["node-a"] * len(attempts))))
    assert one.get_ylim() == (3.5, -0.5) and not one.texts  # one host: lanes are workers


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
