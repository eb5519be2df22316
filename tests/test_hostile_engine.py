"""Issue 27's engine defects, found by hostile use: each test failed before its fix.

Stops and Ctrl-C on every backend (the inline one included), a Ctrl-C while the Run
is being built, absurd worker counts, a job that shuts down its own pool, a fake
clock's timeouts, and the Prometheus hook's server on every path.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest

import qlab

pytestmark = pytest.mark.timeout(60)


class StopAfter:
    """A handler that sets ``stop`` when job ``n`` runs (no timer, no sleep)."""

    def __init__(self, stop: threading.Event, n: int) -> None:
        self.stop, self.n = stop, n

    def __call__(self, x: int) -> int:
        if x == self.n:
            self.stop.set()
        return x


def test_inline_honours_stop_between_jobs():
    """Defect 6: the inline backend ran all 40 jobs after stop= was set."""
    stop = threading.Event()
    run = qlab.run(StopAfter(stop, 4), range(40), workers=2, backend="inline", stop=stop)
    counts = run.jobs.status.value_counts()
    assert run.meta["interrupted"] == "stopped"
    assert counts.get("ok", 0) + counts.get("cancelled", 0) == 40
    assert counts.get("ok", 0) == 5 and counts.get("cancelled", 0) == 35


class SigintAt:
    """A handler that sends this process a real SIGINT (Ctrl-C) at job ``n``."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, x: int) -> int:
        if x == self.n:
            os.kill(os.getpid(), signal.SIGINT)
        return x


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals")
def test_inline_honours_ctrl_c_between_jobs():
    """Defect 6: after Ctrl-C the inline backend still ran every job."""
    run = qlab.run(SigintAt(3), range(100), workers=1, backend="inline")
    counts = run.jobs.status.value_counts()
    assert run.meta["interrupted"] == "SIGINT"
    assert counts.get("ok", 0) == 4 and counts.get("cancelled", 0) == 96


def test_a_ctrl_c_while_the_run_is_built_does_not_lose_it(monkeypatch):
    """Defect 9: a Ctrl-C that arrived while run() built its Run (after the signal
    guard was lifted) escaped as KeyboardInterrupt, and the Run was lost."""
    from qlab import results

    real_init, sent = results.Run.__init__, []

    def init_with_ctrl_c(self, *args, **kwargs):
        if not sent:  # a real SIGINT, delivered while the first Run is being built
            sent.append(1)
            os.kill(os.getpid(), signal.SIGINT)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(results.Run, "__init__", init_with_ctrl_c)
    run = qlab.run(abs, range(20), workers=2)
    assert sent and run.meta["interrupted"] == "SIGINT"
    assert (run.jobs.status == "ok").sum() == 20
