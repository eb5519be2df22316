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


class ShutsItsOwnPool:
    """A job that calls ``shutdown(wait=True)`` on the pool (or executor) running it."""

    def __init__(self) -> None:
        self.owner = None

    def __call__(self, x: int) -> str:
        try:
            self.owner.shutdown(wait=True)
        except RuntimeError as exc:
            return f"refused: {exc}"
        return "returned"


async def _async_shuts(box, x):
    try:
        box.owner.shutdown(wait=True)
    except RuntimeError as exc:
        return f"refused: {exc}"
    return "returned"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("backend", ["thread", "inline", "asyncio"])
def test_a_job_shutting_down_its_own_pool_is_refused_at_once(backend):
    """Defect 11: pool.shutdown(wait=True) from one of its own jobs deadlocked."""
    import functools

    job = ShutsItsOwnPool()
    fn = functools.partial(_async_shuts, job) if backend == "asyncio" else job
    with qlab.Pool(fn, workers=2, backend=backend, retry=None) as pool:
        job.owner = pool
        fut = pool.submit(1)
    assert fut.result().startswith("refused: shutdown(wait=True) from one of the pool's own jobs")
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(2)


@pytest.mark.timeout(30)
def test_a_call_shutting_down_its_own_executor_is_refused_at_once():
    """Defect 11: Executor.shutdown(wait=True) from one of its own calls deadlocked;
    ThreadPoolExecutor raises "cannot join current thread" at once."""
    job = ShutsItsOwnPool()
    ex = qlab.Executor(workers=2)
    job.owner = ex
    try:
        fut = ex.submit(job, 1)
        assert fut.result(timeout=20).startswith("refused: cannot join current thread")
        with pytest.raises(RuntimeError):
            ex.submit(job, 2)
    finally:
        ex.shutdown(wait=True)
