"""Issue 25, "a user's first hour": sweeps within a budget, fits that say when they do not
fit, and the rough edges found by trying qlab as a new user. One regression test each."""

from __future__ import annotations

import doctest
import inspect
import io
import logging
import os
import re
import threading
import warnings

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

import qlab
from qlab import usl, workloads
from qlab.cli import main
from qlab.lab.load import knee
from qlab.lab.sweep_result import Sweep, frame

WAIT_S = 60  # a bound on any background task, not a sleep


# -- sweeps within a budget ------------------------------------------------------------------


def test_a_planned_sweep_states_its_plan_and_runs_it(caplog):
    with caplog.at_level("INFO", logger="qlab.lab.sweep.plan"):
        sw = qlab.sweep(workloads.sleep(ms=1), workers=[1, 2], budget="2s", progress=False)
    plan = sw.meta["plan"]
    assert re.fullmatch(r"2 points × .+ jobs × 3 repeats ≈ [\d.]+s \(budget 2s\)", plan), plan
    assert any(plan in r.getMessage() for r in caplog.records)
    planned = sw.meta["jobs_per_run"]["thread memory"]
    assert sw.df.groupby("workers")["jobs"].first().to_dict() == {
        int(w): j for w, j in planned.items()
    }


def test_the_budget_stops_extra_repeats_and_says_so():
    sw = qlab.sweep(workloads.sleep(ms=1), workers=[1, 2, 4], jobs=20, budget="0.05s",
                    progress=False)  # fmt: skip
    points = sw.points
    assert points["runs"].tolist() == [1, 1, 1]
    assert points["budget_cut"].all() and not points["precise"].any()
    assert points["why_not_precise"].str.contains("budget was spent after 1 repeat").all()


def test_repeats_asked_for_run_whatever_the_budget():
    sw = qlab.sweep(workloads.sleep(ms=1), workers=[1, 2, 4], jobs=20, repeats=2,
                    budget="0.05s", progress=False)  # fmt: skip
    assert sw.points["runs"].tolist() == [2, 2, 2]
    assert not sw.df["budget_cut"].any()


def test_budget_shares_the_time_left_point_by_point():
    from qlab.lab.sweep_plan import Budget

    now = [0.0]
    budget = Budget(30.0, points=3, clock=lambda: now[0])
    budget.start_point()  # share: 10 s
    now[0] = 8.0
    assert budget.allows(last_run_s=3.0)  # ends at 11 s: within half a run of 10 s
    assert not budget.allows(last_run_s=5.0)  # ends at 13 s
    now[0] = 29.0
    budget.start_point()
    assert not budget.allows(last_run_s=2.0)  # past the whole budget


@pytest.mark.parametrize("bad", ["soon", "-1s", 0, "2 parsecs", True])
def test_a_bad_budget_names_the_parameter(bad):
    from qlab.lab.sweep_plan import parse_budget

    with pytest.raises(ValueError, match="budget"):
        qlab.sweep(abs, workers=[1], budget=bad, progress=False)
    assert parse_budget("1m30s") == 90.0


# -- fits that say when they do not fit -------------------------------------------------------

FLAT = [100, 40, 120, 30, 110, 35, 105, 45]  # an SQLite-like curve: no USL shape


def test_a_fit_that_does_not_fit_says_so_at_the_users_line():
    with pytest.warns(usl.MisfitWarning, match="does not describe") as seen:
        fit = usl.fit(range(1, 9), FLAT)  # this line
    assert seen[0].filename == __file__
    assert not fit.fits and fit.misfit.startswith("R² =")
    assert "does not fit" in repr(fit) and fit.to_dict()["fits"] is False


def test_sigma_on_its_bound_is_said_so_not_ns():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = usl.fit(range(1, 9), [100.0] * 8)
    assert (
        fit.sigma == pytest.approx(1.0) and fit.sigma_on_bound and fit.to_dict()["sigma_on_bound"]
    )
    assert "sigma=1 (on its bound)" in repr(fit)


def _sweep_of(workers, throughput) -> Sweep:
    zeros = dict.fromkeys(("jobs", "ok", "failed", "cancelled", "retries", "repeats_taken",
                           "hosts", "cores"), 1)  # fmt: skip
    point = {"backend": "thread", "queue": "memory", "repeat": 0, "others_cpus": 0.0, **zeros}
    rows = [
        point | {"workers": w, "throughput": x} for w, x in zip(workers, throughput, strict=True)
    ]
    return Sweep(frame(rows), {"confidence": 0.95})


def test_one_sweep_warns_once_and_its_legend_says_why():
    import matplotlib.pyplot as plt

    sw = _sweep_of(range(1, 9), FLAT)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        sw.fit()
        fig = sw.plot()
    misfits = [w for w in seen if issubclass(w.category, usl.MisfitWarning)]
    assert len(misfits) == 1 and misfits[0].filename == __file__
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("the USL does not fit: R² =" in t for t in labels), labels
    assert any(r"$\sigma$=1 (on its bound)," in t for t in labels), labels  # σ = 1: not "n.s."
    plt.close(fig)


# -- the rough edges --------------------------------------------------------------------------


def test_explorer_stop_button_stops_a_sweep():
    pytest.importorskip("ipywidgets")
    from qlab import widgets

    started, clicked = threading.Event(), threading.Event()

    class Gate(qlab.Hook):
        def on_start(self, meta):
            started.set()
            clicked.wait(WAIT_S)

    app = widgets.explore(workload="sleep", ms=1, sweep_jobs=20, sweep_workers=(1, 4),
                          hooks=[Gate()])  # fmt: skip
    app.sweep_button.click()
    try:
        assert started.wait(WAIT_S)
        assert not app.stop_button.disabled
        app.stop_button.click()
    finally:
        clicked.set()
        app.stop()  # whatever the button did: no sweep left running after the test
        sweep = app.wait(WAIT_S)
    assert sweep.meta["interrupted"].startswith("stopped") and len(sweep.df) == 0
    assert app.stop_button.disabled


def test_progress_falls_back_to_a_text_bar_without_tqdm_widgets(monkeypatch):
    import tqdm.notebook
    import tqdm.std

    from qlab.hooks.progress import TqdmProgress

    monkeypatch.setattr(tqdm.notebook, "IProgress", None)  # ipywidgets missing
    bar = TqdmProgress(tqdm_class=tqdm.notebook.tqdm, file=io.StringIO())
    qlab.run(workloads.noop(), range(10), hooks=[bar])
    assert type(bar.bar) is tqdm.std.tqdm and bar.bar.n == 10


def test_executor_workers_0_says_0():
    with pytest.raises(ValueError, match="workers must be an int >= 1, got 0"):
        qlab.Executor(workers=0)


def test_sweep_load_knee_needs_rising_latency():
    assert knee([100, 200, 300, 400], [2.34e-3, 2.28e-3, 2.24e-3, 2.24e-3]) is None
    assert knee([1, 2, 3, 4, 5], [1.0, 1.1, 1.3, 2.0, 6.0]) == 4.0


def test_run_save_refuses_a_file_name(tmp_path):
    run = qlab.run(abs, range(5))
    with pytest.raises(ValueError, match="saved as a folder"):
        run.save(tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


def test_sweep_unknown_keyword_names_sweep_and_suggests_workers():
    with pytest.raises(TypeError, match=r"sweep\(\) got an unexpected keyword argument "
                                        r"'worker'; did you mean 'workers'\?"):  # fmt: skip
        qlab.sweep(abs, worker=[1, 2])


def test_handler_is_the_callables_name_everywhere(capsys):
    for kwargs in ({"handler": abs}, {"workload": abs}):
        sw = qlab.sweep(workers=[1, 2], jobs=5, repeats=1, progress=False, **kwargs)
        assert sw.meta["workload"] == "builtins.abs"
    with pytest.raises(TypeError, match="not both"):
        qlab.sweep(handler=abs, workload=abs)
    assert main(["run", "--handler", "sleep:ms=0", "--jobs", "5", "-q"]) == 0
    assert "Jobs: 5" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_kept_dict_results_round_trip_save_and_load(tmp_path, fmt):
    def handler(payload):
        if payload % 2:
            raise qlab.Permanent("odd")
        return {"x": 1, "tags": ["a"]}

    run = qlab.run(handler, range(4), keep_results=True, retry=0)
    back = qlab.load_run(run.save(tmp_path / "run", format=fmt))
    assert back.jobs["result"].tolist() == [{"x": 1, "tags": ["a"]}, None] * 2
    assert type(back.jobs["result"][0]["x"]) is int


@pytest.mark.parametrize("method", ["on_start", "on_end"])
def test_a_failing_hook_is_logged_once_at_warning(caplog, method):
    class Bad(qlab.Hook):
        pass

    def boom(self, arg):
        raise RuntimeError("boom")

    setattr(Bad, method, boom)
    with caplog.at_level(logging.WARNING, logger="qlab"):
        qlab.sweep(abs, workers=[1, 2], jobs=5, repeats=2, hooks=[Bad()], progress=False)
    said = [r for r in caplog.records if "failed in" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING
    assert method in said[0].getMessage() and said[0].exc_info is not None


def test_cli_version_help_and_progress_flags(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"qlab {qlab.__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "``" not in capsys.readouterr().out
    args = ["sweep", "--workers", "1,2,3", "--jobs", "5", "--repeats", "1", "--no-progress"]
    assert main([*args, "--handler", "sleep:ms=0", "-q"]) == 0
    assert "efficiency" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--timeout", "-2"])
    assert exit_.value.code == 2 and "must be a number > 0, got -2" in capsys.readouterr().err


def test_every_public_name_has_a_docstring_with_a_running_example():
    lacking = []
    for name in qlab.__all__:
        obj = getattr(qlab, name)
        tests = doctest.DocTestFinder(recurse=False).find(obj, name, module=False, globs={})
        examples = [e for t in tests for e in t.examples
                    if not e.options.get(doctest.SKIP)]  # fmt: skip
        if not inspect.getdoc(obj) or not examples:
            lacking.append(name)
    assert lacking == []


def test_sweep_df_keeps_its_columns_with_the_budget_flag():
    df = pd.DataFrame(frame([]))
    assert "budget_cut" in df.columns and np.dtype(df["budget_cut"].dtype) == np.dtype(bool)


def test_a_hook_that_shows_progress_keeps_the_sweeps_own_bar_away(monkeypatch):
    """Regression: in Jupyter a sweep drew its own bar on top of the one the caller's
    hook (the explorer's live view, a bar) already shows."""
    import sys

    from qlab.hooks.progress import SweepProgress
    from qlab.lab.sweep import _progress

    monkeypatch.setitem(sys.modules, "ipykernel", sys)  # as if in a Jupyter kernel
    assert isinstance(_progress(None), SweepProgress)
    assert _progress(None, [SweepProgress()]) is None
    assert _progress(None, [qlab.Hook()]) is not None  # a plain hook shows nothing
    assert isinstance(_progress(True, [SweepProgress()]), SweepProgress)  # asked for
