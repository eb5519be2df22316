"""CPython's executor conformance tests, ported to ``qlab.Executor``.

Written for qlab after the tests in CPython's ``Lib/test/test_concurrent_futures/``
(executor.py, test_wait.py, test_as_completed.py, test_shutdown.py, test_deadlock.py);
each test names the one it ports. Nothing is copied: the tests are rewritten for
pytest, and for the two backends (thread and process, as CPython generates one class
per executor kind). A job that must be running while the test acts blocks on a
:class:`tests.helpers.SocketGate` (picklable, so it works in worker processes) instead
of an Event or a sleep.

Intended differences (qlab on purpose, each test says where):

- ``workers=`` (``max_workers=`` also accepted); the error for 0 names ``workers``.
- A worker process that dies, or a call whose argument or result does not pickle or
  unpickle (raising, exiting or crashing), fails that call only, charged one attempt:
  its Future gets ``qlab.WorkerCrashed`` (a death), ``qlab.JobFailed`` (a result, or
  a ``SystemExit`` while unpickling) or the unpickling error; the executor is not
  broken and runs the next calls (CPython: ``BrokenProcessPool`` on every pending
  Future, and no new submits).
- ``map`` submits its calls lazily, ``buffersize`` ahead; ``chunksize`` is accepted and
  ignored (qlab sizes batches itself).
- The process backend keeps each distinct function (cloudpickled once) while the
  executor lives, so ``test_no_stale_references`` runs on threads only.
- Quick calls travel in batches once more calls are ready than there are workers (at
  least 5 ms of work per batch, by their function's measured speed; a function whose
  speed is not known yet goes one call at a time): a call batched behind one that
  blocks comes back when the batch ends. While no more calls are ready than
  workers, each worker takes one (so ``test_map_timeout`` and
  ``test_wait_first_exception`` hold as in CPython); ``batch_size=1`` gives one call
  per batch always, as the standard executors run them.

``test_free_reference`` and ``test_no_stale_references`` pin a fixed engine defect: a
driver thread kept its last batch's payloads and results alive until it took its next.
"""

from __future__ import annotations

import concurrent.futures as cf
import pickle
import subprocess
import sys
import threading
import time
import weakref

import pytest

import qlab
from tests.helpers import SocketGate
from tests.test_executor_funcs import (
    CrashAtPickle,
    CrashAtUnpickle,
    ErrorAtPickle,
    ErrorAtUnpickle,
    ExitAtPickle,
    ExitAtUnpickle,
    MyObject,
    capture,
    crash,
    exit_now,
    identity,
    leave,
    make_dummy_object,
    mul,
    pass_through_gate,
    refuse,
    return_instance,
    return_lock,
    value_or_instance,
    wait_and_raise,
)

WORKERS = 2


@pytest.fixture(params=["thread", "process"])
def backend(request):
    return request.param


@pytest.fixture
def executor(backend):
    ex = qlab.Executor(WORKERS, backend=backend)
    yield ex
    ex.shutdown(wait=True)


@pytest.fixture
def gate2():
    g = SocketGate()
    yield g
    g.close()


def finished_futures():
    """CPython's util: a successful, an exceptional, a cancelled and a cancelled-and-
    notified Future, made by hand."""
    ok, err, cancelled, notified = cf.Future(), cf.Future(), cf.Future(), cf.Future()
    ok.set_result(42)
    err.set_exception(OSError())
    cancelled.cancel()
    notified.cancel()
    notified.set_running_or_notify_cancel()
    return ok, err, cancelled, notified


# -- executor.py: ExecutorTest ----------------------------------------------------------


def test_submit(executor):  # ExecutorTest.test_submit
    assert executor.submit(pow, 2, 8).result() == 256


def test_submit_keyword(executor):  # ExecutorTest.test_submit_keyword
    assert executor.submit(mul, 2, y=8).result() == 16
    assert executor.submit(capture, 1, self=2, fn=3).result() == ((1,), {"self": 2, "fn": 3})
    with pytest.raises(TypeError):
        executor.submit(fn=capture, arg=1)
    with pytest.raises(TypeError):
        executor.submit(arg=1)


def test_map(executor):  # ExecutorTest.test_map
    expected = list(map(pow, range(10), range(10)))
    assert list(executor.map(pow, range(10), range(10))) == expected
    assert list(executor.map(pow, range(10), range(10), chunksize=3)) == expected


def test_map_exception(executor):  # ExecutorTest.test_map_exception
    it = executor.map(divmod, [1, 1, 1, 1], [2, 3, 0, 5])
    assert next(it) == (0, 1)
    assert next(it) == (0, 1)
    with pytest.raises(ZeroDivisionError):
        next(it)


def test_map_timeout(executor, gate):  # ExecutorTest.test_map_timeout (a gate, not sleep(6))
    results = []
    with pytest.raises(TimeoutError):
        for r in executor.map(pass_through_gate, [gate] * 3, [False, False, True], timeout=0.5):
            results.append(r)
    assert results == [False, False]
    gate.release()


def test_shutdown_race_issue12456(executor):  # ExecutorTest.test_shutdown_race_issue12456
    executor.map(str, [2] * (WORKERS + 1))
    executor.shutdown()


def test_no_stale_references():  # ExecutorTest.test_no_stale_references (threads only)
    with qlab.Executor(WORKERS) as ex:
        obj = MyObject()
        collected = threading.Event()
        ref = weakref.ref(obj, lambda _: collected.set())
        ex.submit(obj.my_method).result()
        del obj
        assert collected.wait(0.5), "stale reference not collected"
        assert ref() is None


def test_max_workers_negative():  # ExecutorTest.test_max_workers_negative
    for number in (0, -1):
        with pytest.raises(ValueError, match="workers"):  # qlab's message names workers
            qlab.Executor(max_workers=number)


def test_free_reference(executor):  # ExecutorTest.test_free_reference
    for obj in executor.map(make_dummy_object, range(10)):
        wr = weakref.ref(obj)
        del obj
        assert wr() is None


# -- test_wait.py: WaitTests ------------------------------------------------------------


def test_wait_20369(executor):  # WaitTests.test_20369
    future = executor.submit(mul, 1, 2)
    done, not_done = cf.wait([future, future], return_when=cf.ALL_COMPLETED)
    assert done == {future} and not_done == set()


def test_wait_first_completed(executor, gate):  # WaitTests.test_first_completed
    _, _, cancelled, _ = finished_futures()
    f1 = executor.submit(mul, 21, 2)
    f2 = executor.submit(pass_through_gate, gate, True)
    try:
        done, not_done = cf.wait([cancelled, f1, f2], return_when=cf.FIRST_COMPLETED)
        assert done == {f1} and not_done == {cancelled, f2}
    finally:
        gate.release()
    f2.result()


def test_wait_first_exception(executor, gate, gate2):  # WaitTests.test_first_exception
    try:
        f1 = executor.submit(mul, 2, 21)
        f2 = executor.submit(wait_and_raise, gate)
        f3 = executor.submit(pass_through_gate, gate2, True)
        f1.add_done_callback(lambda _: gate.release())  # f1 ends before f2 raises
        done, pending = cf.wait([f1, f2, f3], return_when=cf.FIRST_EXCEPTION)
        assert done == {f1, f2} and pending == {f3}
    finally:
        gate.release()
        gate2.release()
    f3.result()


def test_wait_first_exception_some_done(
    executor, gate
):  # test_first_exception_some_already_complete
    ok, _, cancelled, notified = finished_futures()
    f1 = executor.submit(divmod, 21, 0)
    f2 = executor.submit(pass_through_gate, gate, True)
    try:
        done, pending = cf.wait([ok, cancelled, notified, f1, f2], return_when=cf.FIRST_EXCEPTION)
        assert done == {ok, notified, f1} and pending == {cancelled, f2}
    finally:
        gate.release()
    f2.result()


def test_wait_all_completed(executor):  # WaitTests.test_all_completed
    ok, err, _, notified = finished_futures()
    f1 = executor.submit(divmod, 2, 0)
    f2 = executor.submit(mul, 2, 21)
    done, pending = cf.wait([ok, notified, err, f1, f2], return_when=cf.ALL_COMPLETED)
    assert done == {ok, notified, err, f1, f2} and pending == set()


def test_wait_timeout(executor, gate):  # WaitTests.test_timeout
    ok, err, _, notified = finished_futures()
    future = executor.submit(pass_through_gate, gate, True)
    try:
        done, pending = cf.wait([notified, err, ok, future], timeout=0.05)
        assert done == {notified, err, ok} and pending == {future}
    finally:
        gate.release()
    future.result()


# -- test_as_completed.py: AsCompletedTests ---------------------------------------------


def test_as_completed_no_timeout(executor):  # AsCompletedTests.test_no_timeout
    ok, err, _, notified = finished_futures()
    f1, f2 = executor.submit(mul, 2, 21), executor.submit(mul, 7, 6)
    assert set(cf.as_completed([ok, err, notified, f1, f2])) == {ok, err, notified, f1, f2}


def test_as_completed_times_out(executor, gate):  # AsCompletedTests.test_future_times_out
    ok, err, _, notified = finished_futures()
    blocked = executor.submit(pass_through_gate, gate, True)
    seen = set()
    try:
        with pytest.raises(TimeoutError, match=r"1 \(of 4\) futures unfinished"):
            for f in cf.as_completed([ok, err, notified, blocked], timeout=0.05):
                seen.add(f)
        assert seen == {ok, err, notified}
    finally:
        gate.release()
    blocked.result()


def test_as_completed_duplicates(executor):  # AsCompletedTests.test_duplicate_futures
    f = executor.submit(pow, 2, 3)
    assert len(list(cf.as_completed([f, f, f]))) == 1


# -- test_shutdown.py: ExecutorShutdownTest ---------------------------------------------


def test_run_after_shutdown(executor):  # ExecutorShutdownTest.test_run_after_shutdown
    executor.shutdown()
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        executor.submit(pow, 2, 5)


def test_hang_issue12364(executor):  # ExecutorShutdownTest.test_hang_issue12364
    fs = [executor.submit(time.sleep, 0.001) for _ in range(50)]
    executor.shutdown()
    for f in fs:
        f.result()


def test_cancel_futures(backend, gate):  # ExecutorShutdownTest.test_cancel_futures
    ex = qlab.Executor(1, backend=backend)  # one worker, held by the gate: no timing
    first = ex.submit(pass_through_gate, gate, True)
    assert gate.started.wait(30)
    fs = [ex.submit(pow, 2, 3) for _ in range(49)]
    ex.shutdown(wait=False, cancel_futures=True)
    gate.release()
    ex.shutdown(wait=True)
    cancelled = [f for f in fs if f.cancelled()]
    assert len(cancelled) > 20
    others = [f for f in [first, *fs] if not f.cancelled()]
    assert others and all(f.done() and f.exception() is None for f in others)
    jobs = ex.trace().jobs  # the trace agrees
    assert (jobs.status == "cancelled").sum() == len(cancelled)


def test_hang_gh94440(executor):  # ExecutorShutdownTest.test_hang_gh94440 (pytest-timeout)
    executor.submit(int).result()
    executor.submit(int).cancel()
    executor.shutdown(wait=True)


def test_context_manager_shutdown(backend):  # test_context_manager_shutdown
    with qlab.Executor(WORKERS, backend=backend) as e:
        assert list(e.map(abs, range(-5, 5))) == [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]
    # the leak check (tests/conftest.py) sees that every worker was joined


def test_del_shutdown(backend):  # test_del_shutdown: dropped without shutdown()
    ex = qlab.Executor(WORKERS, backend=backend)
    res = ex.map(abs, range(-5, 5))
    del ex  # its map iterator keeps it until the results are taken
    assert list(res) == [abs(v) for v in range(-5, 5)]


def test_shutdown_no_wait(backend):  # test_shutdown_no_wait
    ex = qlab.Executor(WORKERS, backend=backend)
    res = ex.map(abs, range(-5, 5))
    ex.shutdown(wait=False)
    assert list(res) == [abs(v) for v in range(-5, 5)]


SCRIPT = """if 1:
    import sys, time, qlab
    def sleep_and_print(t, msg):
        time.sleep(t)
        print(msg)
        sys.stdout.flush()
    t = qlab.Executor(3)
    t.submit(sleep_and_print, 0.1, "apple")
    {last}
"""


@pytest.mark.parametrize("last", ["", "t.shutdown(wait=False)"])
def test_interpreter_shutdown(last):  # test_interpreter_shutdown, test_hang_gh83386
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(last=last)], capture_output=True, timeout=50
    )
    assert out.returncode == 0 and not out.stderr, out.stderr
    assert out.stdout.strip() == b"apple"


# -- test_deadlock.py: ExecutorDeadlockTest (intended difference: nothing breaks) ------
#
# A call whose argument or result fails while it is pickled or unpickled (raising,
# exiting, or crashing the process that handles it) fails that call alone: it is
# charged one attempt, the executor runs the next call, and shutdown(wait=True)
# returns. (CPython: BrokenProcessPool for the exits and crashes, and a broken pool.)
# On the thread backend nothing is pickled: the same calls succeed.

JOB_FAILED = (qlab.JobFailed, "could not be unpickled|cannot be pickled")
CRASHED = (qlab.WorkerCrashed, "died")

# (CPython test, function, argument, what the process backend gives: (type, match))
PICKLING_CASES = [
    ("test_error_at_task_pickle", id, ErrorAtPickle, (TypeError, "cannot be pickled")),
    ("test_exit_at_task_unpickle", id, ExitAtUnpickle, (qlab.JobFailed, "SystemExit")),
    ("test_error_at_task_unpickle", id, ErrorAtUnpickle, (pickle.UnpicklingError, "refused")),
    ("test_crash_at_task_unpickle", id, CrashAtUnpickle, CRASHED),
    ("test_crash_during_result_pickle", return_instance, CrashAtPickle, CRASHED),
    ("test_exit_during_result_pickle", return_instance, ExitAtPickle, JOB_FAILED),
    ("test_error_during_result_pickle", return_instance, ErrorAtPickle, JOB_FAILED),
    ("test_error_during_result_unpickle", return_instance, ErrorAtUnpickle, JOB_FAILED),
    ("test_exit_during_result_unpickle", return_instance, ExitAtUnpickle, JOB_FAILED),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("case", "fn", "cls", "expected"), PICKLING_CASES, ids=lambda v: v)
def test_pickling_failure(backend, case, fn, cls, expected):  # ExecutorDeadlockTest.<case>
    ex = qlab.Executor(WORKERS, backend=backend)
    try:
        arg = cls if fn is return_instance else cls()
        f = ex.submit(fn, arg)
        if backend == "thread":
            assert f.result(timeout=10) is not None  # nothing pickled: the call just runs
        else:
            etype, match = expected
            with pytest.raises(etype, match=match):
                f.result(timeout=10)
        assert ex.submit(pow, 2, 3).result(timeout=10) == 8  # not broken
    finally:
        ex.shutdown(wait=True)
    attempts = ex.trace().attempts
    assert attempts.job_id.tolist() == [0, 1]  # charged once, never requeued uncharged
    if backend == "process":
        assert attempts.outcome[0] == ("crashed" if expected is CRASHED else "failed")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("cls", [ExitAtUnpickle, CrashAtUnpickle, ErrorAtUnpickle])
def test_bad_argument_in_a_batch(cls):  # only its call fails, once; the others run once
    args: list = list(range(300))
    args[150] = cls()
    with qlab.Executor(WORKERS, backend="process", batch_size=64) as ex:
        fs = [ex.submit(identity, a) for a in args]
        failed = [i for i, f in enumerate(fs) if f.exception(timeout=30) is not None]
        assert ex.submit(pow, 2, 3).result() == 8
    assert failed == [150]
    assert all(fs[i].result() == a for i, a in enumerate(args) if i != 150)
    attempts = ex.trace().attempts
    assert attempts.job_id.is_unique and len(attempts) == 301  # each charged once
    assert ex.trace().meta["batches"] < 100  # the others still travelled in batches


@pytest.mark.timeout(60)
@pytest.mark.parametrize("cls", [ErrorAtUnpickle, ExitAtUnpickle])
def test_bad_result_in_a_batch(cls):  # one result that does not unpickle fails its call only
    args: list = list(range(400))
    args[200] = cls
    with qlab.Executor(WORKERS, backend="process", batch_size=100) as ex:
        fs = [ex.submit(value_or_instance, a) for a in args]
        failed = [i for i, f in enumerate(fs) if f.exception(timeout=30) is not None]
    assert failed == [200]
    with pytest.raises(qlab.JobFailed, match="could not be unpickled in the parent"):
        fs[200].result()
    assert [f.result() for i, f in enumerate(fs) if i != 200] == args[:200] + args[201:]
    assert (ex.trace().attempts.outcome == "failed").sum() == 1


@pytest.mark.timeout(30)
def test_exit_during_func(backend):  # ExecutorDeadlockTest.test_exit_during_func_exec_on_worker
    with qlab.Executor(WORKERS, backend=backend) as ex:
        with pytest.raises(SystemExit):
            ex.submit(leave).result(timeout=10)
        assert ex.submit(pow, 2, 3).result(timeout=10) == 8


@pytest.mark.timeout(30)
def test_error_during_func(backend):  # test_error_during_func_exec_on_worker
    with qlab.Executor(WORKERS, backend=backend) as ex:
        with pytest.raises(pickle.UnpicklingError):
            ex.submit(refuse).result(timeout=10)
        assert ex.submit(pow, 2, 3).result(timeout=10) == 8


@pytest.mark.timeout(30)
def test_crash_during_func():  # ExecutorDeadlockTest.test_crash_during_func_exec_on_worker
    with qlab.Executor(WORKERS, backend="process") as ex:
        f = ex.submit(exit_now, 1)
        with pytest.raises(RuntimeError, match="died"):
            f.result()
        assert ex.submit(pow, 2, 3).result() == 8  # not broken
    assert ex.trace().attempts.outcome.tolist() == ["crashed", "ok"]


@pytest.mark.timeout(30)
def test_error_at_task_pickle_lock():  # ExecutorDeadlockTest.test_error_at_task_pickle
    with qlab.Executor(WORKERS, backend="process") as ex:
        f = ex.submit(id, threading.Lock())
        with pytest.raises(TypeError, match="cannot be pickled"):
            f.result()
        assert ex.submit(pow, 2, 3).result() == 8


@pytest.mark.timeout(30)
def test_error_during_result_pickle_lock():  # test_error_during_result_pickle_on_worker
    with qlab.Executor(WORKERS, backend="process") as ex:
        with pytest.raises(qlab.JobFailed, match="cannot be pickled"):
            ex.submit(return_lock).result()
        assert ex.submit(pow, 2, 3).result() == 8


@pytest.mark.timeout(30)
def test_shutdown_deadlock():  # ExecutorDeadlockTest.test_shutdown_deadlock
    with qlab.Executor(WORKERS, backend="process") as ex:
        f = ex.submit(crash)
        ex.shutdown(wait=True)
        with pytest.raises(qlab.WorkerCrashed):
            f.result()


@pytest.mark.timeout(30)
def test_shutdown_deadlock_pickle():  # ExecutorDeadlockTest.test_shutdown_deadlock_pickle
    with qlab.Executor(WORKERS, backend="process") as ex:
        ex.submit(id, 42).result()
        f = ex.submit(id, ErrorAtPickle())
        ex.shutdown(wait=False)
        with pytest.raises(TypeError, match="cannot be pickled"):
            f.result(timeout=10)


@pytest.mark.timeout(60)
def test_crash_big_data():  # ExecutorDeadlockTest.test_crash_big_data
    data = "a" * (1 << 20)  # more than a pipe holds
    with qlab.Executor(WORKERS, backend="process") as ex:
        with pytest.raises(qlab.WorkerCrashed):
            list(ex.map(crash, [data] * 10))
        assert ex.submit(pow, 2, 3).result() == 8
