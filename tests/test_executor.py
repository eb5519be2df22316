"""qlab.Executor beyond the standard (trace, pickling, retries, timeouts) and
qlab.observe on the standard executors and their peers."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading

import pytest

import qlab
from tests.helpers import SocketGate
from tests.test_executor_funcs import exit_now, mul, pass_through_gate


class Flaky:
    """Fails its first ``n`` calls in a process (a retry then succeeds)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, x):
        if qlab.current().attempt <= self.n:
            raise OSError(f"attempt {qlab.current().attempt}")
        return x


def test_trace_has_one_job_per_submit_with_fn():
    with qlab.Executor(2) as ex:
        list(ex.map(mul, range(3), range(3)))
        ex.submit(divmod, 1, 0).exception()
        ex.submit(lambda: 0).result()
    run = ex.trace()
    names = run.jobs.fn.tolist()
    assert names[:4] == ["mul", "mul", "mul", "divmod"] and names[4].endswith("<lambda>")
    assert run.jobs.status.tolist() == ["ok", "ok", "ok", "failed", "ok"]
    assert run.attempts.fn.tolist() == run.jobs.fn.tolist()
    assert run.meta["workload"] == "qlab.Executor"
    assert ex.trace() is run  # the final Run, once joined


def test_trace_while_running_shows_pending():
    gate = SocketGate()
    try:
        with qlab.Executor(1) as ex:
            f = ex.submit(pass_through_gate, gate, True)
            assert gate.started.wait(30)
            run = ex.trace()
            assert run.jobs.status.tolist() == ["pending"]
            assert run.jobs.fn.tolist() == ["pass_through_gate"]
            gate.release()
            assert f.result() is True
    finally:
        gate.close()


def test_process_pickles_each_function_once():
    with qlab.Executor(2, backend="process") as ex:
        assert list(ex.map(mul, range(200), range(200))) == [i * i for i in range(200)]
        assert [ex.submit(lambda x: x + 1, i).result() for i in range(3)] == [1, 2, 3]
        fn = lambda x: -x  # noqa: E731 - one function, submitted many times
        assert sum(f.result() for f in [ex.submit(fn, i) for i in range(50)]) == -1225
        # mul once, fn once, and each of the three lambdas (three distinct functions)
        assert ex.pickles == 5


def test_no_retries_by_default_and_opt_in():
    with qlab.Executor(2) as ex, pytest.raises(OSError, match="attempt 1"):
        ex.submit(Flaky(1), 5).result()
    assert ex.trace().attempts.outcome.tolist() == ["failed"]
    with qlab.Executor(2, retry=qlab.Retry(max_retries=2, backoff=None)) as ex:
        assert ex.submit(Flaky(2), 5).result() == 5
    assert ex.trace().jobs.attempts.tolist() == [3]


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_timeout_fails_the_call_with_timeout_error(backend):
    gate = SocketGate()
    try:
        with qlab.Executor(1, backend=backend, timeout=0.2) as ex:
            f = ex.submit(pass_through_gate, gate, True)
            try:
                with pytest.raises(TimeoutError, match="timeout"):
                    f.result()
                assert ex.submit(mul, 6, 7).result() == 42
            finally:
                gate.release()  # an abandoned thread finishes its call
    finally:
        gate.close()
    assert ex.trace().attempts.outcome.tolist() == ["timeout", "ok"]


def test_bad_input_names_the_parameter():
    with pytest.raises(ValueError, match="workers"):
        qlab.Executor(0)
    with pytest.raises(ValueError, match="timeout"):
        qlab.Executor(2, timeout=-1)
    with pytest.raises(TypeError, match="workers= or max_workers="):
        qlab.Executor(2, max_workers=2)
    with qlab.Executor(1) as ex:
        with pytest.raises(TypeError, match="fn must be callable"):
            ex.submit(42)
        with pytest.raises(ValueError, match="chunksize"):
            ex.map(abs, [1], chunksize=0)
        with pytest.raises(ValueError, match="buffersize"):
            ex.map(abs, [1], buffersize=0)
    with (
        qlab.Executor(1, backend="process") as ex,
        pytest.raises(TypeError, match="fn cannot be pickled"),
    ):
        ex.submit(_Unpicklable())
    assert len(ex.trace().jobs) == 0  # nothing ran


class _Unpicklable:
    def __call__(self):
        return 0

    def __reduce__(self):
        raise TypeError("no pickling")


def test_map_is_lazy_and_bounded():
    taken = []

    def args():
        for i in range(100):
            taken.append(i)
            yield i

    with qlab.Executor(2) as ex:
        it = ex.map(abs, args(), buffersize=4)
        assert len(taken) == 4  # submitted at the call
        assert next(it) == 0
        assert len(taken) == 5  # one more per result taken
        assert sum(it) == sum(range(1, 100))


def test_run_in_executor_is_traced():
    ex = qlab.Executor(2)

    async def main():
        loop = asyncio.get_running_loop()
        a = await loop.run_in_executor(ex, pow, 2, 10)
        b = await asyncio.wait_for(asyncio.wrap_future(ex.submit(abs, -3)), 30)
        return a, b

    try:
        assert asyncio.run(main()) == (1024, 3)
    finally:
        ex.shutdown()
    assert ex.trace().jobs.fn.tolist() == ["pow", "abs"]


def test_crashed_worker_fails_one_call():
    with qlab.Executor(1, backend="process") as ex:
        assert isinstance(ex.submit(exit_now, 3).exception(), RuntimeError)
        assert ex.submit(mul, 2, 2).result() == 4


def test_asyncio_executor_runs_coroutines_and_refuses_plain_functions():
    async def double(x):
        await asyncio.sleep(0)
        return 2 * x

    with qlab.Executor(4, backend="asyncio") as ex:
        assert list(ex.map(double, range(5))) == [0, 2, 4, 6, 8]
        with pytest.raises(TypeError, match="async def"):
            ex.submit(abs, 1)
    assert all(name.endswith("double") for name in ex.trace().jobs.fn)


# -- qlab.observe -----------------------------------------------------------------------


def _observed_run(executor):
    with qlab.observe(executor) as ex:
        fs = [ex.submit(mul, i, 3) for i in range(6)] + [ex.submit(divmod, 1, 0)]
        assert [f.result() for f in fs[:-1]] == [i * 3 for i in range(6)]
        with pytest.raises(ZeroDivisionError):
            fs[-1].result()
    return ex.trace()


@pytest.mark.parametrize("kind", ["thread", "process", "qlab"])
def test_observe_traces_standard_executors(kind):
    executor = {
        "thread": lambda: cf.ThreadPoolExecutor(2),
        "process": lambda: cf.ProcessPoolExecutor(2),
        "qlab": lambda: qlab.Executor(2),
    }[kind]()
    run = _observed_run(executor)
    jobs = run.jobs
    assert jobs.status.tolist() == ["ok"] * 6 + ["failed"]
    assert jobs.fn.tolist() == ["mul"] * 6 + ["divmod"]
    assert jobs.error_type.tolist()[-1] == "ZeroDivisionError"
    assert (jobs.queue_wait_s >= 0).all() and (jobs.service_s >= 0).all()
    assert set(jobs.worker) <= {0, 1, 2}  # (process, thread) pairs, numbered
    assert run.summary()["ok"] == 6


def test_observe_cancelled_calls_are_cancelled_jobs():
    gate = SocketGate()
    try:
        with qlab.observe(cf.ThreadPoolExecutor(1)) as ex:
            first = ex.submit(pass_through_gate, gate, True)
            assert gate.started.wait(30)
            later = ex.submit(mul, 1, 1)
            assert later.cancel()
            assert ex.trace().jobs.status.tolist() == ["pending", "cancelled"]
            gate.release()
            first.result()
    finally:
        gate.close()
    assert ex.trace().jobs.status.tolist() == ["ok", "cancelled"]


def test_observe_refuses_non_executors():
    with pytest.raises(TypeError, match="executor must be"):
        qlab.observe(object())


def test_observe_dask_client_executor():
    distributed = pytest.importorskip("distributed")
    with distributed.Client(
        processes=False, n_workers=1, threads_per_worker=2, dashboard_address="127.0.0.1:0"
    ) as client:
        run = _observed_run(client.get_executor())
    assert run.jobs.status.tolist() == ["ok"] * 6 + ["failed"]
    assert run.meta["backend"] == "ClientExecutor"


@pytest.mark.timeout(60)
def test_map_closed_early_cancels_the_calls_not_started():
    started, gate = threading.Event(), threading.Event()

    def hold_one(x):
        if x == 1:
            started.set()
            gate.wait(30)
        return x

    with qlab.Executor(1, batch_size=1) as ex:  # one call per batch: 2.. wait in the queue
        it = ex.map(hold_one, range(50), buffersize=20)
        assert next(it) == 0
        assert started.wait(30)
        it.close()  # the calls not started (2..19) are cancelled; call 1 runs on
        gate.set()
    jobs = ex.trace().jobs
    assert jobs.status.tolist() == ["ok", "ok"] + ["cancelled"] * 18


def test_map_cells_settle_once_and_cancel_only_what_has_not_started():
    from concurrent.futures import CancelledError, InvalidStateError

    from qlab.executor.mapcells import Chunk

    chunk = Chunk(3)
    a, b, c = chunk.cells()
    assert not c.done()
    assert a.set_running_or_notify_cancel() and not a.cancel()  # running: not cancelled
    a.set_exception(ZeroDivisionError("boom"))
    with pytest.raises(InvalidStateError):
        a.set_result(1)
    assert b.cancel() and b.cancelled() and not b.set_running_or_notify_cancel()
    with pytest.raises(TimeoutError):
        chunk.result(2, end=0.0)  # c is pending: the deadline has passed
    with pytest.raises(ZeroDivisionError, match="boom"):
        chunk.result(0, None)
    with pytest.raises(CancelledError):
        chunk.result(1, None)
    assert chunk.values == [None, None, None]  # the chunk lets go of what it handed over
