"""The explorer's Sweep tab, driven headless: the scaling chart grows point by point,
then one chart with its fit; with a stand-in sweep and with qlab.sweep."""

from __future__ import annotations

import os

import pandas as pd
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

import qlab

pytest.importorskip("ipywidgets")
pytest.importorskip("matplotlib")

from qlab import widgets
from tests.helpers import html_of, png_count

WAIT_S = 60  # a bound on any background task, not a sleep


# -- the explorer: sweeps ------------------------------------------------------------------


class FakeSweep:
    def __init__(self, df: pd.DataFrame) -> None:
        self.df = df

    def fit(self) -> pd.DataFrame:
        return qlab.usl.fit_frame(self.df)


def fake_sweep(
    workload=None,
    workers=range(1, 17),
    backend="thread",
    jobs=None,
    repeats=3,
    seed=0,
    retry=None,
    progress=False,
    keep_runs=False,
    hooks=(),
    **run_options,
):
    """qlab.sweep's API, made of plain runs (hooks go to every run)."""
    rows = []
    for b in [backend] if isinstance(backend, str) else backend:
        for w in workers:
            for r in range(repeats):
                run = qlab.run(
                    workload, range(jobs), w, backend=b, seed=seed, retry=retry, hooks=hooks
                )
                s = run.summary()
                rows.append({"backend": b, "workers": w, "repeat": r, "throughput": s.throughput})
    return FakeSweep(pd.DataFrame(rows))


def test_sweep_tab_draws_the_scaling_chart_point_by_point(monkeypatch):
    monkeypatch.setattr(widgets.explorer, "sweep_function", lambda: (fake_sweep, ""))
    app = widgets.explore(workload="sleep", ms=1, sweep_jobs=40, sweep_workers=(1, 4))
    assert not app.sweep_button.disabled
    app.sweep_button.click()
    sweep = app.wait(WAIT_S)
    assert sweep is app.last_sweep and len(sweep.df) == 4
    assert [p["workers"] for p in app.sweep_live.points] == [1, 2, 3, 4]
    assert png_count(app.sweep_live.chart) == 1  # the final chart, with its fit
    assert png_count(app.sweep_output) == 0  # one chart after a sweep, not two
    html = html_of(app.sweep_output)
    assert "USL fit per backend" in html and "sigma" in html


def test_sweep_tab_says_when_sweeps_are_missing(monkeypatch):
    monkeypatch.setattr(widgets.explorer, "sweep_function", lambda: (None, "no qlab.sweep here"))
    app = widgets.explore()
    assert app.sweep_button.disabled
    assert "no qlab.sweep here" in html_of(app.sweep_output)
    assert not app.start_sweep()


def test_sweep_tab_with_qlab_sweep():
    if widgets.controls.sweep_function()[0] is None:
        pytest.skip("qlab.sweep is not there yet (qlab/sweeps.py): the fake sweep stands in")
    app = widgets.explore(
        workload="sleep", ms=1, sweep_jobs=40, sweep_workers=(1, 3), repeats=1, retries=0
    )
    app.sweep_button.click()
    sweep = app.wait(WAIT_S)
    assert sorted(sweep.df["workers"]) == [1, 2, 3]
    assert len(app.sweep_live.points) >= 3
    assert png_count(app.sweep_live.chart) + png_count(app.sweep_output) == 1
