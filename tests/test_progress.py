"""Progress bars (tqdm) for runs and sweeps: one bar per run, one over a sweep's points,
one rate in each; driven with a fake bar class, and once with a real text bar."""

from __future__ import annotations

import io

import qlab
from qlab import workloads
from qlab.hooks.progress import SweepProgress, TqdmProgress


class FakeBar:
    """Records what a progress hook does with its tqdm bar."""

    def __init__(self, total=None, desc=None, **kwargs):
        self.total, self.desc, self.kwargs = total, desc, kwargs
        self.n = 0
        self.totals = [total]
        self.postfix: dict | str | None = None
        self.closed = False

    def update(self, n=1):
        assert not self.closed, "update after close"
        self.n += n

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        self.postfix = dict(ordered_dict or {}, **kwargs)

    def set_postfix_str(self, s="", refresh=True):
        self.postfix = s

    def __setattr__(self, name, value):
        if name == "total" and "totals" in self.__dict__:
            self.totals.append(value)
        super().__setattr__(name, value)

    def close(self):
        self.closed = True


def _counts(**kw):
    base = dict.fromkeys(("submitted", "ok", "failed", "cancelled", "retries", "attempts"), 0)
    return {**base, "unfinished": 0, "elapsed_s": 1.0, **kw}


# -- tqdm progress -----------------------------------------------------------------------


def test_tqdm_progress_grows_its_total_with_the_jobs_submitted():
    hook = TqdmProgress(tqdm_class=FakeBar)
    hook.on_start({"backend": "thread", "workers": 2})
    bar = hook.bar
    assert bar.total is None and bar.desc == "thread x2"
    hook.on_progress(_counts(submitted=64, ok=10, failed=1, retries=3, elapsed_s=0.5))
    hook.on_progress(_counts(submitted=128, ok=100, failed=2, retries=5, elapsed_s=1.0))
    assert bar.totals[-2:] == [64, 128]
    assert bar.n == 102
    assert bar.postfix == {"ok": 100, "failed": 2, "retries": 5}  # one rate: tqdm's


def test_tqdm_progress_counts_against_the_jobs_requested():
    hook = TqdmProgress(total=1000, tqdm_class=FakeBar)
    hook.on_start({"backend": "thread", "workers": 2})
    hook.on_progress(_counts(submitted=64, ok=10))
    assert hook.bar.total == 1000


def test_tqdm_progress_ends_with_the_runs_counts_and_closes():
    hook = TqdmProgress(tqdm_class=FakeBar)
    run = qlab.run(workloads.seed(), (i for i in range(100)), workers=4, hooks=[hook])
    bar = hook.bar
    assert bar.closed
    assert (bar.n, bar.total) == (100, 100)
    assert bar.postfix["ok"] == 10 and bar.postfix["failed"] == 90
    assert bar.postfix["retries"] == run.summary()["retries"] == 270


def test_tqdm_progress_draws_a_real_text_bar():
    text = io.StringIO()
    hook = TqdmProgress(file=text)
    qlab.run(workloads.noop(), range(50), workers=2, hooks=[hook])
    assert (hook.bar.n, hook.bar.total) == (50, 50)
    last = text.getvalue().rsplit("\r", 1)[-1]
    assert "50/50" in last and "ok=50" in last and "failed=0" in last
    assert last.count("/s") == 1  # one rate in the bar (tqdm's job/s)


def test_tqdm_progress_counts_cancelled_jobs_as_done():
    hook = TqdmProgress(tqdm_class=FakeBar)
    hook.on_start({})
    hook.on_progress(_counts(submitted=10, ok=4, cancelled=6))
    assert hook.bar.n == 10 and hook.bar.postfix["cancelled"] == 6


def test_sweep_progress_advances_one_point_per_run_and_closes():
    points = SweepProgress(total=3, tqdm_class=FakeBar)
    for w in (1, 2, 3):
        qlab.run(workloads.noop(), range(20), workers=w, hooks=[points])
    assert points.bar.n == 3 and points.bar.closed
    assert points.bar.postfix.startswith("thread x3: ") and "jobs/s" in points.bar.postfix
    assert "rate" not in points.bar.kwargs["bar_format"]  # jobs/s only, no points/s


def test_sweep_progress_shows_the_current_runs_jobs():
    points = SweepProgress(total=2, tqdm_class=FakeBar)
    points.on_start({"backend": "process", "workers": 4})
    points.on_progress(_counts(submitted=200, ok=50, failed=5))
    assert points.bar.postfix == "process x4: 55/200 jobs"
    points.close()
    assert points.bar.closed
