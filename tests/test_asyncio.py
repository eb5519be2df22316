"""The asyncio backend: async def handlers as tasks, the same trace, engine retries,
timeouts by task cancellation, qlab.current() per task; qlab.arun and AsyncPool."""

from __future__ import annotations

import asyncio
import threading

import pytest

import qlab
from qlab.backends.aio.backend import AsyncioBackend


async def double(x):
    await asyncio.sleep(0)
    return 2 * x


async def whoami(x):
    await asyncio.sleep(0)
    ctx = qlab.current()
    await asyncio.sleep(0)  # other tasks ran meanwhile: still this task's job
    return ctx.job_id, qlab.current().job_id, ctx.attempt


class AsyncFlaky:
    """Fails attempts 1..n of every job with OSError."""

    def __init__(self, n: int) -> None:
        self.n = n

    async def __call__(self, x):
        await asyncio.sleep(0)
        if qlab.current().attempt <= self.n:
            raise OSError("flaky")
        return x


async def sleepy(x):
    await asyncio.sleep(60 if x == 0 else 0)  # job 0 only ends by its timeout
    return x


@pytest.mark.parametrize("backend", ["asyncio", AsyncioBackend(concurrency=8)])
def test_results_and_trace_columns_match_the_thread_backend(backend):
    run = qlab.run(double, range(20), workers=2, backend=backend, keep_results=True)
    assert run.jobs.result.tolist() == [2 * x for x in range(20)]
    assert run.meta["backend"] == "asyncio"
    ref = qlab.run(abs, range(3), workers=2, keep_results=True)
    assert list(run.jobs.columns) == list(ref.jobs.columns)
    assert list(run.attempts.columns) == list(ref.attempts.columns)
    assert run.summary()["ok"] == 20


@pytest.mark.parametrize("backend", ["asyncio", AsyncioBackend(concurrency=16)])
def test_current_is_per_task(backend):
    run = qlab.run(whoami, range(50), workers=4, backend=backend, keep_results=True)
    assert [r[:2] for r in run.jobs.result] == [(j, j) for j in range(50)]
    assert {r[2] for r in run.jobs.result} == {1}


def test_retries_are_scheduled_by_the_engine():
    retry = qlab.Retry(max_retries=2, backoff=qlab.Constant(0.001))
    run = qlab.run(AsyncFlaky(2), range(5), workers=3, backend="asyncio", retry=retry)
    assert run.jobs.status.eq("ok").all() and run.jobs.attempts.tolist() == [3] * 5
    assert run.attempts.backoff_s.dropna().eq(0.001).all()


@pytest.mark.parametrize("backend", ["asyncio", AsyncioBackend(concurrency=4)])
def test_timeout_cancels_the_task(backend):
    run = qlab.run(sleepy, range(4), workers=2, backend=backend, timeout=0.1, retry=1)
    att = run.attempts
    assert att[att.job_id == 0].outcome.tolist() == ["timeout", "timeout"]
    assert att[att.job_id > 0].outcome.eq("ok").all()
    assert run.jobs.status.tolist() == ["failed", "ok", "ok", "ok"]
    assert run.meta["abandoned_threads"] == 0  # nothing abandoned: the task was cancelled


def test_a_sync_handler_is_a_clear_error_before_any_job():
    with pytest.raises(TypeError, match="handler: backend='asyncio' runs async def"):
        qlab.run(abs, range(3), backend="asyncio")


def test_arun_many_concurrent_jobs_with_a_full_trace():
    n = 2000
    started = {"n": 0}

    async def main():
        everyone = asyncio.Event()  # set when all n jobs are awaiting at once

        async def job(x):
            started["n"] += 1
            if started["n"] == n:
                everyone.set()
            await asyncio.wait_for(everyone.wait(), 30)
            return x

        return await qlab.arun(job, range(n), workers=n, keep_results=True)

    run = asyncio.run(main())
    assert run.summary()["ok"] == n and len(run.attempts) == n
    assert run.jobs.result.tolist() == list(range(n))
    assert run.meta["concurrency"] == n and run.meta["drivers"] == 2
    # the worker column is the task lane: every one of the n lanes ran a job
    assert sorted(run.attempts.worker) == list(range(n))


async def maybe_fail(x):
    await asyncio.sleep(0)
    if x < 0:
        raise OSError("negative")
    return 2 * x


def test_async_pool_submits_on_the_callers_loop():
    async def main():
        async with qlab.AsyncPool(maybe_fail, workers=10) as pool:
            values = await asyncio.gather(*(pool.submit(i) for i in range(10)))
            with pytest.raises(OSError, match="negative"):
                await pool.submit(-1)
        return values, pool.trace()

    values, run = asyncio.run(main())
    assert values == [2 * i for i in range(10)]
    assert run.jobs.status.tolist() == ["ok"] * 10 + ["failed"]


def test_bad_input_names_the_parameter():
    with pytest.raises(ValueError, match="concurrency"):
        AsyncioBackend(concurrency=0)
    with pytest.raises(ValueError, match="workers"):
        qlab.AsyncPool(double, workers=0)
    with pytest.raises(ValueError, match="drivers"):
        asyncio.run(qlab.arun(double, [1], workers=2, drivers=0))


@pytest.mark.parametrize("backend", ["asyncio", AsyncioBackend(concurrency=8)])
def test_a_stop_cancels_the_running_tasks(backend):
    run = _stopped_once_running(backend, jobs=20, workers=2)
    assert run.meta["interrupted"] == "stopped"
    assert run.jobs.status.eq("cancelled").all()
    assert run.attempts.outcome.eq("cancelled").all() and len(run.attempts) >= 1


@pytest.mark.timeout(60)
def test_workers_are_lanes_behind_few_driver_threads():
    n = 1000
    seen: dict = {"started": 0, "threads": set()}

    async def job(x):
        # every lane awaits at once: the last of n to start releases them all
        seen["started"] += 1
        if seen["started"] == n:
            seen["all"].set()
        elif seen["started"] == 1:
            seen["all"] = asyncio.Event()
        seen["threads"] |= {t.name for t in threading.enumerate() if t.name.startswith("qlab-")}
        await asyncio.wait_for(seen["all"].wait(), 30)
        return qlab.current().worker

    run = qlab.run(job, range(n), workers=n, backend="asyncio", keep_results=True)
    assert run.summary()["ok"] == n
    # the trace's worker is the lane: n lanes, each ran one job, as qlab.current() says
    assert sorted(run.attempts.worker) == list(range(n))
    by_job = run.attempts.set_index("job_id").worker
    assert [by_job[j] for j in range(n)] == run.jobs.result.tolist()
    assert run.meta["drivers"] == 2 and run.meta["concurrency"] == n
    workers = {t for t in seen["threads"] if t.startswith("qlab-worker-")}
    assert workers == {"qlab-worker-0", "qlab-worker-1"}


def test_a_lane_runs_one_attempt_at_a_time():
    run = qlab.run(double, range(300), workers=7, backend="asyncio")
    att = run.attempts.sort_values(["worker", "start_s"])
    assert set(att.worker) <= set(range(7))
    for _, lane in att.groupby("worker"):
        assert (lane.start_s.to_numpy()[1:] >= lane.end_s.to_numpy()[:-1]).all()


@pytest.mark.timeout(60)
def test_a_stop_cancels_many_lanes_and_returns_the_jobs_not_started():
    run = _stopped_once_running("asyncio", jobs=300, workers=100, started=100)
    assert run.jobs.status.eq("cancelled").all() and len(run.jobs) == 300
    att = run.attempts
    assert att.outcome.eq("cancelled").all() and len(att) == 100
    assert sorted(att.worker) == list(range(100))


def test_one_async_workload_sweeps_threads_and_the_event_loop():
    from qlab.workloads import asleep

    sw = qlab.sweep(asleep(ms=1), backend=["thread", "asyncio"], workers=[1, 8], jobs=40,
                    repeats=1)  # fmt: skip
    assert sorted(zip(sw.df.backend, sw.df.workers, strict=True)) == [
        ("asyncio", 1), ("asyncio", 8), ("thread", 1), ("thread", 8)
    ]  # fmt: skip
    assert (sw.df.ok == 40).all()


def test_an_async_handler_without_a_sync_twin_is_refused_on_threads():
    with pytest.raises(TypeError, match="async def: use backend='asyncio'"):
        qlab.run(double, range(3), backend="thread")


@pytest.mark.timeout(60)
def test_one_backend_object_serves_a_pool_after_a_stopped_one():
    backend = AsyncioBackend()
    first = _stopped_once_running(backend, jobs=5, workers=3)
    assert first.jobs.status.eq("cancelled").all()  # its tasks were cancelled (a kill)
    again = qlab.run(double, range(5), workers=3, backend=backend, keep_results=True)
    assert again.jobs.result.tolist() == [0, 2, 4, 6, 8]


def _stopped_once_running(backend, jobs: int, workers: int, started: int = 1) -> qlab.Run:
    """A run of handlers that never end, stopped (``stop=``) once ``started`` of them
    have started."""
    enough, stop = threading.Event(), threading.Event()
    count = {"n": 0}  # (the handlers all run on the loop's one thread)

    async def forever(x):
        count["n"] += 1
        if count["n"] == started:
            enough.set()
        await asyncio.sleep(3600)

    helper = threading.Thread(target=lambda: (enough.wait(30), stop.set()))
    helper.start()
    try:
        return qlab.run(forever, range(jobs), workers=workers, backend=backend, stop=stop,
                        grace=0.1)  # fmt: skip
    finally:
        helper.join()
