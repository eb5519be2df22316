"""The live view and the explorer app (its Run tab, its static picture), driven headless.

Widgets work without a kernel (ipywidgets 8 gives them a dummy comm); buttons are
clicked with ``button.click()`` and background tasks awaited with ``app.wait()``.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading

import pandas as pd
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

import qlab
from qlab import workloads

ipywidgets = pytest.importorskip("ipywidgets")
pytest.importorskip("matplotlib")

from qlab import widgets  # noqa: E402
from tests.helpers import html_of, png_count  # noqa: E402

WAIT_S = 60  # a bound on any background task, not a sleep


def _counts(**kw):
    base = dict.fromkeys(("submitted", "ok", "failed", "cancelled", "retries", "attempts"), 0)
    return {**base, "unfinished": 0, "elapsed_s": 1.0, **kw}


class EventHook(qlab.Hook):
    """Sets ``progressed`` at the first progress tick of a run."""

    def __init__(self) -> None:
        self.progressed = threading.Event()

    def on_progress(self, counts):
        if counts["ok"] + counts["failed"] > 0:
            self.progressed.set()


# -- import cost -------------------------------------------------------------------------


def test_import_qlab_loads_neither_matplotlib_nor_ipywidgets():
    code = (
        "import qlab, sys; "
        "print('matplotlib' in sys.modules, 'ipywidgets' in sys.modules, 'tqdm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


def test_qlab_explore_is_the_widgets_explore():
    assert qlab.explore is widgets.explore


# -- the live view -----------------------------------------------------------------------


def test_live_view_labels_follow_the_counts():
    live = widgets.LiveView()
    live.on_start({"backend": "thread", "workers": 3})
    live.on_progress(_counts(submitted=200, ok=90, failed=10, retries=7, elapsed_s=2.0))
    assert "<b>100</b> / 200 completed" in live.labels["completed"].value
    assert "<b>10</b> failed" in live.labels["failed"].value
    assert "<b>7</b> retried" in live.labels["retried"].value
    assert "<b>50</b> jobs/s" in live.labels["throughput"].value
    assert (live.bar.value, live.bar.max) == (100, 200)
    assert "running" in live.status.value


def test_live_view_shows_the_final_counts_of_a_run():
    live = widgets.LiveView()
    qlab.run(workloads.seed(), range(100), workers=4, hooks=[live])
    assert "<b>100</b> / 100 completed" in live.labels["completed"].value
    assert "<b>90</b> failed" in live.labels["failed"].value
    assert "<b>270</b> retried" in live.labels["retried"].value
    assert "done" in live.status.value and live.bar.bar_style == "success"
    assert live.chart is None
    bundle = live._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_live_view_chart_grows_one_point_per_run():
    live = widgets.LiveView(chart=True, points=3)
    for w in (1, 2, 3):
        qlab.run(workloads.sleep(ms=1), range(30), workers=w, hooks=[live])
        assert len(live.points) == w
        assert png_count(live.chart) == 1  # redrawn, not appended
    assert [p["workers"] for p in live.points] == [1, 2, 3]
    assert all(p["throughput"] > 0 for p in live.points)
    assert "point 3 of 3" in live.status.value
    # the whole sweep's bar: runs done of runs planned, beside the current run's bar
    assert (live.sweep_bar.value, live.sweep_bar.max) == (3, 3)
    assert live.sweep_bar.bar_style == "success" and live.bar.max == 30
    live.reset(points=5)
    assert live.points == [] and live.chart.outputs == ()
    assert (live.sweep_bar.value, live.sweep_bar.max) == (0, 5)


def test_live_view_without_points_hides_the_sweep_bar_and_says_1_worker():
    live = widgets.LiveView()
    qlab.run(workloads.noop(), range(5), workers=1, hooks=[live])
    assert live.sweep_bar.layout.display == "none"
    assert "× 1 worker:" in live.status.value


# -- the explorer: runs --------------------------------------------------------------------


def test_explorer_runs_with_the_chosen_settings_and_shows_the_results():
    app = qlab.explore(workload="seed")
    assert isinstance(app, ipywidgets.Widget)
    app.controls["workers"].value = 3
    app.controls["jobs"].value = 120
    app.run_button.click()
    run = app.wait(WAIT_S)
    assert run is app.last_run
    assert len(run.jobs) == 120
    assert run.meta["backend"] == "thread" and run.meta["workers"] == 3
    s = run.summary()
    assert (s["ok"], s["failed"]) == (30, 90)  # the seed's rule: len("job-<i>") % 3
    html = html_of(app.output)
    assert "120 jobs, 30 ok, 90 failed" in html and "qlab-summary" in html
    assert png_count(app.output) == 2  # timeline and latency
    assert not app.run_button.disabled and app.stop_button.disabled
    assert "<b>120</b> / 120 completed" in app.live.labels["completed"].value


def test_explorer_builds_workload_failures_and_retry_policy_from_the_controls():
    app = widgets.explore(
        workload="sleep",
        ms=0.5,
        transient=0.3,
        permanent=0.1,
        retries=1,
        backoff="constant",
        base=0.001,
        seed=7,
        jobs=150,
    )
    assert not app.controls["ms"].disabled and not app.controls["base"].disabled
    assert app.handler() == workloads.flaky(workloads.sleep(ms=0.5), transient=0.3, permanent=0.1)
    assert app.retry() == qlab.Retry(max_retries=1, backoff=qlab.Constant(0.001))
    app.run_button.click()
    run = app.wait(WAIT_S)
    assert run.meta["seed"] == 7 and "Constant" in run.meta["retry"]
    assert run.jobs["attempts"].max() == 2
    assert set(run.failed["error_type"]) == {"Permanent", "TransientError"}
    # the same seed gives the same outcomes, as a plain qlab.run does
    ref = qlab.run(app.handler(), range(150), workers=4, retry=app.retry(), seed=7)
    cols = ["job_id", "status", "attempts", "error_type"]
    pd.testing.assert_frame_equal(run.jobs[cols], ref.jobs[cols])


def test_explorer_controls_follow_the_workload_and_backoff():
    app = widgets.explore(workload="seed", backoff="none")
    assert app.controls["ms"].disabled and app.controls["base"].disabled
    assert app.handler() == workloads.seed() and app.retry().backoff is None
    app.controls["workload"].value = "cpu"
    app.controls["backoff"].value = "exponential"
    assert not app.controls["ms"].disabled and not app.controls["base"].disabled
    app.controls["workload"].value = "flaky"
    app.controls["transient"].value = 0.5
    assert app.handler() == workloads.flaky(transient=0.5)


def test_explorer_runs_on_the_process_backend():
    app = widgets.explore(workload="sha256", backend="process", workers=2, jobs=40)
    app.run_button.click()
    run = app.wait(WAIT_S)
    assert run.meta["backend"] == "process" and len(run.jobs) == 40
    assert (run.jobs["status"] == "ok").all()


def test_stop_cancels_a_long_run_and_every_job_has_one_final_status():
    started = EventHook()
    app = widgets.explore(workload="sleep", ms=20, workers=2, jobs=2000, hooks=[started])
    app.run_button.click()
    assert app.running and not app.stop_button.disabled
    assert not app.start_run()  # one task at a time
    assert started.progressed.wait(WAIT_S)
    app.stop_button.click()
    run = app.wait(WAIT_S)
    jobs = run.jobs
    counts = jobs["status"].value_counts()
    assert counts["cancelled"] > 0 and counts["ok"] > 0
    assert counts.get("pending", 0) == 0 and counts.get("failed", 0) == 0
    assert jobs["job_id"].is_unique and jobs["status"].notna().all()
    assert run.meta["interrupted"] == "stopped"
    assert "Stopped" in html_of(app.output)
    assert app.live.bar.bar_style == "warning"
    assert "<b>stopped</b>" in app.live.status.value and "done" not in app.live.status.value
    assert "run stopped" in app.status.value
    assert app.sweep_status.value == "<i>ready</i>"  # the Sweep tab's line is its own
    # the denominator is the jobs requested, not the jobs submitted so far
    assert " / 2,000 completed" in app.live.labels["completed"].value
    assert app.live.bar.max == 2000
    app.stop()  # nothing running: a no-op


class HoldStart(qlab.Hook):
    """Holds a run in ``on_start`` (its workers up, no job submitted) until released."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def on_start(self, meta):
        self.entered.set()
        assert self.release.wait(WAIT_S)


def test_stop_while_the_run_starts():
    hold = HoldStart()
    app = widgets.explore(workload="sleep", ms=1, jobs=100, hooks=[hold])
    app.run_button.click()
    assert hold.entered.wait(WAIT_S)
    app.stop()
    hold.release.set()
    run = app.wait(WAIT_S)
    assert run.meta["interrupted"] == "stopped"
    assert "of the 100 jobs never started" in html_of(app.output)
    assert len(run.jobs) == 100 and (run.jobs["status"] == "cancelled").any()
    assert run.jobs["status"].isin(["ok", "cancelled"]).all()


def test_a_failed_task_is_shown_and_raised_by_wait(monkeypatch):
    app = widgets.explore(jobs=10)
    monkeypatch.setattr(app, "retry", lambda: "not a policy")
    app.run_button.click()
    with pytest.raises(TypeError, match="retry must be"):
        app.wait(WAIT_S)
    assert any(o.get("name") == "stderr" for o in app.output.outputs)
    assert "failed" in app.status.value and not app.run_button.disabled


def test_explore_names_a_bad_control():
    with pytest.raises(TypeError, match="unknown control"):
        widgets.explore(worker=3)
    with pytest.raises(ValueError, match="workload="):
        widgets.explore(workload="nope")


def test_close_stops_the_app():
    started = EventHook()
    app = widgets.explore(workload="sleep", ms=20, workers=1, jobs=1000, hooks=[started])
    app.run_button.click()
    assert started.progressed.wait(WAIT_S)
    app.close()
    assert not app.running and app.last_run.meta["interrupted"] == "stopped"


def test_live_view_counts_against_the_jobs_requested_from_the_start():
    live = widgets.LiveView(jobs=20_000)
    live.on_start({"backend": "thread", "workers": 2})
    live.on_progress(_counts(submitted=12_436, ok=2_436, elapsed_s=1.0))
    assert "<b>2,436</b> / 20,000 completed" in live.labels["completed"].value


def test_explorer_has_a_static_picture_for_readers_without_a_kernel():
    app = widgets.explore(workload="seed", jobs=50)
    bundle = app._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "qlab explorer (a static picture)" in bundle["text/html"]
    app.run_button.click()
    app.wait(WAIT_S)
    html = app.snapshot_html()
    assert "50 jobs, 10 ok, 40 failed" in html  # the run's summary
    assert html.count("data:image/png;base64,") == 2  # its timeline and latency charts
    assert "qlab-explorer-snapshot" in app.snapshot()._repr_html_()
    assert "text/html" in widgets.LiveView()._repr_mimebundle_()


def test_figure_output_is_a_png():
    fig = widgets.outputs.new_figure(2, 1)
    fig.add_subplot().plot([0, 1])
    out = widgets.figure_output(fig)
    assert base64.b64decode(out["data"]["image/png"]).startswith(b"\x89PNG")
