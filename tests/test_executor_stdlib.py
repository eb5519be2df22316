"""``qlab.Executor`` as a drop-in for the standard executors (issue 28).

Each test pins one gap that the standard library's own expectations found:
``multiprocessing.Manager`` proxies in process-backend calls, ``initializer=`` and
``initargs=`` (once per worker, and a failing one breaking the executor as the
standard ones do), ``max_tasks_per_child=``, the standard wording after shutdown,
batches sized per function, and idle workers taking calls as ``submit`` queues them.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from concurrent.futures.thread import BrokenThreadPool

import pytest

import qlab
from tests.test_executor_funcs import failing_init, init_tag, note_init, set_item

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["thread", "process"])
def backend(request):
    return request.param


def test_manager_dict_proxy_is_updated_by_a_process_call():
    with multiprocessing.Manager() as manager:
        shared = manager.dict()
        with qlab.Executor(2, backend="process") as ex:
            assert ex.submit(set_item, shared, "answer", 42).result(timeout=30) == "answer"
            assert list(ex.map(set_item, [shared] * 3, "abc", range(3))) == ["a", "b", "c"]
        assert dict(shared) == {"answer": 42, "a": 0, "b": 1, "c": 2}


# -- initializer= / initargs= ---------------------------------------------------------


def test_initializer_runs_once_per_worker(backend, gate, tmp_path):
    log = tmp_path / "init.log"
    with qlab.Executor(2, backend=backend, initializer=note_init, initargs=(str(log), "x")) as ex:
        held = [ex.submit(init_tag, gate) for _ in range(2)]  # one on each worker, held
        assert gate.wait_for(2)
        gate.release()
        assert [f.result() for f in held] == ["x", "x"]
        assert list(ex.map(init_tag, [None] * 50)) == ["x"] * 50
    lines = log.read_text().splitlines()
    assert len(lines) == 2 and len(set(lines)) == 2  # f(x) once in each worker
    assert ex.trace().jobs.worker.nunique() == 2


@pytest.mark.parametrize("backend", ["inline", "asyncio"])
def test_initializer_once_per_lane(backend, tmp_path):
    log = tmp_path / "init.log"

    async def atag():
        return init_tag()

    fn = atag if backend == "asyncio" else init_tag
    with qlab.Executor(2, backend=backend, initializer=note_init, initargs=(str(log), 7)) as ex:
        assert [ex.submit(fn).result() for _ in range(6)] == [7] * 6
    workers = ex.trace().jobs.worker.nunique()
    assert len(log.read_text().splitlines()) == workers


def test_failing_initializer_breaks_the_executor(backend):
    broken = BrokenThreadPool if backend == "thread" else BrokenProcessPool
    ex = qlab.Executor(2, backend=backend, initializer=failing_init)
    try:
        with pytest.raises(broken, match="initializer failed") as info:
            ex.submit(pow, 2, 3).result(timeout=30)
        assert "initializer failed on purpose" in repr(info.value.__cause__) + str(info.value)
        with pytest.raises(cf.BrokenExecutor):  # as the standard executors refuse then
            ex.submit(pow, 2, 3)
    finally:
        ex.shutdown(wait=True)


def test_initializer_is_checked_before_any_call():
    with pytest.raises(TypeError, match="initializer"):
        qlab.Executor(2, initializer=42)
    with pytest.raises(TypeError, match="initargs"):
        qlab.Executor(2, initializer=print, initargs=5)
    with pytest.raises(TypeError, match="initargs"):
        qlab.Executor(2, backend="process", initializer=print, initargs=(threading.Lock(),))


# -- max_tasks_per_child= -------------------------------------------------------------


def test_max_tasks_per_child_replaces_the_worker_process():
    with qlab.Executor(1, backend="process", max_tasks_per_child=2) as ex:
        pids = [ex.submit(os.getpid).result(timeout=30) for _ in range(6)]
        assert len(list(ex.map(abs, range(50)))) == 50
    assert len(set(pids)) == 3 and pids[0] == pids[1] and pids[2] == pids[3] != pids[1]
    assert ex.trace().meta["retired_workers"] == 28  # 56 calls, 2 per process


def test_max_tasks_per_child_is_checked():
    with pytest.raises(ValueError, match="max_tasks_per_child"):
        qlab.Executor(1, backend="process", max_tasks_per_child=0)
    with pytest.raises(ValueError, match="max_tasks_per_child"):
        qlab.Executor(1, backend="thread", max_tasks_per_child=3)


# -- the standard wording after shutdown ----------------------------------------------


def test_a_shut_pool_refuses_with_the_standard_words():
    pool = qlab.Pool(abs, 1)
    pool.shutdown()
    with pytest.raises(RuntimeError, match=r"^cannot schedule new futures after shutdown$"):
        pool.submit(1)


# -- batches per function; idle workers start as calls arrive -------------------------


def test_slow_calls_after_a_quick_one_spread_over_every_worker():
    with qlab.Executor(5) as ex:
        ex.submit(int).result()  # quick: its speed says nothing about sleep's
        t = time.perf_counter()
        fs = [ex.submit(time.sleep, 0.1) for _ in range(50)]
        cf.wait(fs)
        wall = time.perf_counter() - t
    jobs = ex.trace().jobs
    sleeps = jobs[jobs.fn == "sleep"]
    assert len(sleeps) == 50 and (sleeps.status == "ok").all()
    assert sleeps.worker.nunique() == 5  # none was batched behind another worker's
    print(f"50 x sleep(0.1) on 5 workers after one quick call: {wall:.2f} s")


def test_a_function_of_unknown_speed_is_never_batched(gate):
    with qlab.Executor(2) as ex:
        list(ex.map(abs, range(2000)))  # abs is known to be quick: its calls are batched
        held = ex.submit(gate, 0)  # the gate's speed is unknown: one call per take
        assert gate.started.wait(30)
        fs = [ex.submit(gate, i) for i in range(1, 4)]
        assert gate.wait_for(2)  # the other worker runs one of them...
        assert fs[1].cancel() and fs[2].cancel()  # ...and took no other behind it
        gate.release()
        assert [held.result(), fs[0].result()] == [0, 1]


def test_cancel_futures_right_after_submits_keeps_the_started_ones():
    ex = qlab.Executor(5)
    fs = [ex.submit(time.sleep, 0.01) for _ in range(50)]
    ex.shutdown(wait=True, cancel_futures=True)
    ran = [f for f in fs if not f.cancelled()]
    assert ran and all(f.result() is None for f in ran)
    assert (ex.trace().jobs.status == "ok").sum() == len(ran)
    print(f"running when shutdown(cancel_futures=True) came: {len(ran)} of 50")


def test_initializer_on_dask(dask_cluster, tmp_path):  # the session cluster: 2 workers
    log = tmp_path / "init.log"
    backend = qlab.backends.Dask(address=dask_cluster.address)
    with qlab.Executor(2, backend=backend, initializer=note_init, initargs=(str(log), "d")) as ex:
        assert set(ex.map(init_tag, [None] * 40)) == {"d"}
    lines = log.read_text().splitlines()
    assert 1 <= len(lines) <= 4  # once per (Dask worker process, lane) that ran calls
