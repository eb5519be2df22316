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
    from qlab.trace import results

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
    with pytest.raises(RuntimeError, match="after shutdown"):  # the standard wording (#28)
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


@pytest.mark.parametrize("backend", ["thread", "process", "inline", "asyncio"])
def test_a_million_workers_on_ten_jobs_start_ten(backend):
    """Defect 8: workers=10**6 on 10 jobs hung (the thread backend was still starting
    after 90 s; the process backend forked thousands of processes)."""
    handler = qlab.workloads.asleep(0) if backend == "asyncio" else qlab.workloads.noop()
    run = qlab.run(handler, range(10), workers=10**6, backend=backend)
    assert run.meta["workers"] == 10**6 and run.meta["workers_started"] == 10
    assert (run.jobs.status == "ok").sum() == 10
    assert run.attempts.worker.max() < 10


@pytest.mark.parametrize(
    ("backend", "limit"), [("thread", "10,000"), ("process", "512"), ("inline", "10,000")]
)
def test_workers_above_the_backends_limit_is_a_clear_error(backend, limit):
    """Defect 8: with no job count to cap them, a million workers is refused before
    any job, naming the parameter and the backend's limit."""
    msg = f"workers=1,000,000 is above the {backend} backend's limit of {limit} workers"
    with pytest.raises(ValueError, match=msg):
        qlab.run(abs, iter(range(10)), workers=10**6, backend=backend)
    with pytest.raises(ValueError, match=msg):
        qlab.Pool(abs, workers=10**6, backend=backend)


def test_asyncio_lanes_stay_cheap_far_above_the_thread_limit():
    """Defect 8: the asyncio backend's lanes are not threads: 100,000 of them start
    (as jobs come), on a generator whose length is not known."""
    handler = qlab.workloads.asleep(0)
    run = qlab.run(handler, iter(range(50)), workers=100_000, backend="asyncio")
    assert run.meta["concurrency"] == 100_000 and (run.jobs.status == "ok").sum() == 50


@pytest.mark.timeout(120)
def test_cli_with_a_million_workers_and_two_jobs_finishes():
    """Defect 8: ``qlab run --workers 1000000 --jobs 2`` hung."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "qlab", "run", "--workers", "1000000", "--jobs", "2", "--json"],
        capture_output=True, text=True, timeout=100, check=True,
    )  # fmt: skip
    summary = json.loads(out.stdout)
    assert summary["ok"] + summary["failed"] == 2


def _slow_on_the_real_clock(x: int) -> str:
    threading.Event().wait(3)  # the workload: 3 s of real time, no cancel check
    return "done"


def test_fake_clock_a_handlers_real_time_is_invisible_as_documented():
    """Defect 10, the documented difference (qlab.testing.FakeClock): 3 s of real time
    in a handler is 0 s on a FakeClock, so timeout=1 does not fire there; on the real
    clock the same attempt is a timeout (its thread abandoned)."""
    from qlab.testing import FakeClock

    fake = qlab.run(_slow_on_the_real_clock, [0], workers=1, timeout=1, retry=None,
                    clock=FakeClock())  # fmt: skip
    assert fake.attempts.outcome.tolist() == ["ok"] and fake.attempts.duration_s[0] == 0.0
    real = qlab.run(_slow_on_the_real_clock, [0], workers=1, timeout=1, retry=None)
    assert real.attempts.outcome.tolist() == ["timeout"]


def test_fake_clock_time_spent_on_the_clock_times_out_exactly_as_on_the_real_clock():
    """Defect 10: a handler that spends 3 s on the run's clock under timeout=1 is a
    timeout on a FakeClock as on the real clock (there: a 3 s cancellable sleep), and
    on the FakeClock it lasts exactly 3.0 s and takes no real time."""
    from qlab.testing import FakeClock

    clock = FakeClock()

    def three_seconds_on_the_clock(x: int) -> None:
        clock.advance(3)
        qlab.current().cancelled.check()

    def three_seconds_real(x: int) -> None:
        qlab.current().cancelled.wait(3)
        qlab.current().cancelled.check()

    fake = qlab.run(three_seconds_on_the_clock, [0], workers=1, timeout=1, retry=None,
                    clock=clock)  # fmt: skip
    real = qlab.run(three_seconds_real, [0], workers=1, timeout=1, retry=None)
    assert fake.attempts.outcome.tolist() == real.attempts.outcome.tolist() == ["timeout"]
    assert fake.attempts.duration_s[0] == 3.0


class SlowToCancel:
    """An async handler that takes 3 s to honour a cancellation; the 5th job to start
    sets ``stop``."""

    def __init__(self, stop: threading.Event, running: int) -> None:
        self.stop, self.running, self.started = stop, running, 0

    async def __call__(self, x: int) -> None:
        import asyncio

        self.started += 1  # the loop's thread only
        if self.started == self.running:
            self.stop.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(3)
            raise


def test_asyncio_stop_with_handlers_slow_to_cancel_leaves_nothing_behind():
    """Defect 5: with handlers slow to cancel, stop= returned with 6 of 11 jobs still
    pending, 2 attempt rows for 5 started attempts, and qlab-abandoned threads alive."""
    stop = threading.Event()
    run = qlab.run(SlowToCancel(stop, 5), range(11), workers=5, backend="asyncio",
                   stop=stop, grace=1)  # fmt: skip
    alive = [t.name for t in threading.enumerate() if t.name.startswith("qlab-")]
    assert alive == []  # at once, not after a while
    assert run.meta["interrupted"] == "stopped"
    assert (run.jobs.status == "cancelled").sum() == 11
    assert sorted(run.attempts.job_id) == list(range(5))  # one row per started attempt
    assert (run.attempts.outcome == "cancelled").all() and run.meta["abandoned_threads"] == 0
