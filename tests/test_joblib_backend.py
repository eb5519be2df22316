"""joblib's own expectations of a parallel backend, ported to the ``"qlab"`` backend.

Each case restates, in our words, a case of joblib's ``joblib/test/test_parallel.py``
(named in its docstring) and runs on the qlab backend with thread and with process
workers. Where joblib's test reads ``Parallel``'s private state, ours observes the
same thing through ``qlab.joblib.trace()`` (batches, their sizes, their workers).
"""

from __future__ import annotations

import os
import threading

import joblib
import pytest
from joblib import Parallel, delayed, parallel_config

import qlab.joblib
from qlab.joblib import QlabBackend

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=["thread", "process"])
def inner(request: pytest.FixtureRequest) -> str:
    """The qlab backend under joblib's ``"qlab"`` backend."""
    return request.param


@pytest.fixture(autouse=True)
def _pools():
    """Every test ends with the warm pools shut down (no worker left behind)."""
    yield
    qlab.joblib.shutdown()


def square(x: int) -> int:
    return x * x


def keyword(x: int, y: int = 0) -> int:
    return x + y


def divide(x: int, y: int) -> float:
    return x / y


def where(_: object = None) -> tuple[int, int]:
    return os.getpid(), threading.get_ident()


class Finicky(Exception):
    """An exception whose __init__ takes four arguments and does not call the base
    class's (joblib's MyExceptionWithFinickyInit): it must survive the trip back from a
    worker process."""

    def __init__(self, a: object, b: object, c: object, d: object) -> None:
        pass


def raise_finicky(i: int) -> int:
    if i == 7:
        raise Finicky("a", "b", "c", "d")
    return i


def interrupt(x: int) -> int:
    if x == 0:
        raise KeyboardInterrupt
    return x


def nested(inner_backend: str | None) -> list[int]:
    return Parallel(n_jobs=2, backend=inner_backend)(delayed(square)(i) for i in range(3))


def nested_raise(_: int) -> None:
    Parallel(n_jobs=2)(delayed(divide)(1, j) for j in (1, 0))


# -- results and their order (test_simple_parallel, test_parallel_kwargs) -------------


@pytest.mark.parametrize("n_jobs", [1, 2, -1, -2])
def test_results_in_order(inner: str, n_jobs: int) -> None:
    """test_simple_parallel: the results are the sequential results, in order."""
    out = Parallel(n_jobs=n_jobs, backend="qlab", inner=inner)(
        delayed(square)(i) for i in range(50)
    )
    assert out == [i * i for i in range(50)]


def test_keyword_arguments(inner: str) -> None:
    """test_parallel_kwargs: keyword arguments reach the function."""
    with parallel_config(backend="qlab", inner=inner, n_jobs=3):
        out = Parallel()(delayed(keyword)(x, y=1) for x in range(10))
    assert out == [x + 1 for x in range(10)]


def test_exhausted_iterator(inner: str) -> None:
    """test_parallel_with_exhausted_iterator: nothing to do gives []."""
    assert Parallel(n_jobs=2, backend="qlab", inner=inner)(iter([])) == []


def test_lambda(inner: str) -> None:
    """test_lambda_expression: lambdas run (cloudpickled to worker processes)."""
    out = Parallel(n_jobs=2, backend="qlab", inner=inner)(
        delayed(lambda x: x**2)(i) for i in range(10)
    )
    assert out == [i**2 for i in range(10)]


# -- n_jobs (test_invalid_njobs, test_njobs_converted_to_int, test_effective_n_jobs) ------


def test_n_jobs_minus_one_is_every_cpu() -> None:
    backend = QlabBackend()
    assert backend.effective_n_jobs(-1) == joblib.cpu_count()
    assert backend.effective_n_jobs(-2) == max(joblib.cpu_count() - 1, 1)
    assert backend.effective_n_jobs(None) == 1


@pytest.mark.parametrize("n_jobs", [0, 0.5])
def test_invalid_n_jobs(n_jobs: float) -> None:
    """test_invalid_njobs: n_jobs=0 (and 0.5, which joblib makes 0) has no meaning."""
    with pytest.raises(ValueError, match="n_jobs"):
        Parallel(n_jobs=n_jobs, backend="qlab")(delayed(square)(i) for i in range(3))


def test_n_jobs_string_converted(inner: str) -> None:
    """test_njobs_converted_to_int: n_jobs="2" runs on 2 workers."""
    with qlab.joblib.trace() as t:
        out = Parallel(n_jobs="2", backend="qlab", inner=inner, batch_size=1)(
            delayed(square)(i) for i in range(10)
        )
    assert out == [i * i for i in range(10)]
    assert t.run.jobs.worker.nunique() <= 2


def test_bad_inner_backend_named() -> None:
    with pytest.raises(ValueError, match="inner"):
        QlabBackend(inner="carrier-pigeon")


# -- exceptions (test_error_capture, test_exception_dispatch, test_nested_exception_...) --


def test_error_type_reaches_caller(inner: str) -> None:
    """test_error_capture: the task's exception type is what Parallel raises."""
    with pytest.raises(ZeroDivisionError):
        Parallel(n_jobs=2, backend="qlab", inner=inner)(
            delayed(divide)(x, y) for x, y in zip((0, 1), (1, 0), strict=True)
        )


def test_finicky_exception(inner: str) -> None:
    """test_error_capture: an exception with an unusual __init__ arrives whole."""
    with pytest.raises(Finicky) as info:
        Parallel(n_jobs=2, backend="qlab", inner=inner)(
            delayed(raise_finicky)(i) for i in range(30)
        )
    assert info.value.args == ("a", "b", "c", "d")


def test_keyboard_interrupt_in_a_task(inner: str) -> None:
    """test_error_capture: a KeyboardInterrupt in a task reaches the caller, and the
    backend still works afterwards (with the same Parallel object)."""
    with Parallel(n_jobs=2, backend="qlab", inner=inner) as p:
        with pytest.raises(KeyboardInterrupt):
            p(delayed(interrupt)(x) for x in (1, 0))
        assert p(delayed(square)(x) for x in range(5)) == [0, 1, 4, 9, 16]


def test_error_in_the_task_iterator(inner: str) -> None:
    """test_error_in_task_iterator: an error of the caller's generator propagates,
    whether raised before, during or long after the pre-dispatch."""

    def gen(raise_at: int):
        for i in range(20):
            if i == raise_at:
                raise ValueError("iterator raising")
            yield i

    with Parallel(n_jobs=2, backend="qlab", inner=inner) as p:
        for at in (0, 5, 19):
            with pytest.raises(ValueError, match="iterator raising"):
                p(delayed(square)(i) for i in gen(at))


def test_nested_exception(inner: str) -> None:
    """test_nested_exception_dispatch: an error two Parallel levels down keeps its type."""
    with pytest.raises(ZeroDivisionError):
        Parallel(n_jobs=2, backend="qlab", inner=inner)(delayed(nested_raise)(i) for i in range(4))


# -- nested Parallel calls (test_nested_loop, test_nested_backend_context_manager) -------


@pytest.mark.parametrize("child", [None, "threading", "sequential", "qlab"])
def test_nested_parallel(inner: str, child: str | None) -> None:
    """test_nested_loop: a Parallel call inside a task runs (here on each child
    backend), and gives its results to the outer task."""
    with parallel_config(backend="qlab", inner=inner):
        out = Parallel(n_jobs=2)(delayed(nested)(child) for _ in range(3))
    assert out == [[0, 1, 4]] * 3


# -- batch_size (test_invalid_batch_size, test_batching_auto_*, statistics reset) --------


def test_batch_size_as_given(inner: str) -> None:
    """batch_size=4: tasks go four to a batch (joblib splits the last ones smaller, to
    keep both workers busy at the end)."""
    with qlab.joblib.trace() as t:
        out = Parallel(n_jobs=2, backend="qlab", inner=inner, batch_size=4, pre_dispatch="all")(
            delayed(square)(i) for i in range(40)
        )
    assert out == [i * i for i in range(40)]
    tasks = t.run.jobs.tasks
    assert tasks.sum() == 40
    assert tasks.iloc[0] == tasks.max() == 4


@pytest.mark.parametrize("batch_size", [0, -1, 1.42])
def test_invalid_batch_size(batch_size: float) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        Parallel(n_jobs=2, backend="qlab", batch_size=batch_size)


def test_auto_batching_groups_quick_tasks_and_resets(inner: str) -> None:
    """test_batching_auto_subprocesses, test_backend_batch_statistics_reset: quick tasks
    are sent several to a batch, and the next call starts from batches of one."""
    for _ in range(2):
        with qlab.joblib.trace() as t:
            Parallel(n_jobs=2, backend="qlab", inner=inner)(delayed(id)(i) for i in range(3000))
        tasks = t.run.jobs.tasks
        assert tasks.sum() == 3000
        assert tasks.iloc[0] == 1
        assert tasks.max() > 1


# -- generators (test_parallel_return_order_with_return_as_generator_parameter...) ------


def test_generator_results_in_order(inner: str) -> None:
    gen = Parallel(n_jobs=2, backend="qlab", inner=inner, return_as="generator")(
        delayed(square)(i) for i in range(20)
    )
    assert not isinstance(gen, list)
    assert list(gen) == [i * i for i in range(20)]


def test_unordered_generator_gives_quick_results_first(inner: str) -> None:
    """test_parallel_unordered_generator_returns_fastest_first: a slow task (it waits on
    a gate) does not hold back the others. On worker processes, qlab sends each worker
    its next batch while it runs one (pipelining), so one quick batch may wait behind the
    slow one there: 8 of the 9 come first at least (all 9 on threads)."""
    from tests.helpers import SocketGate

    gate = SocketGate()
    first = 9 if inner == "thread" else 8
    try:
        tasks = [delayed(gate)(-1)] + [delayed(square)(i) for i in range(9)]
        gen = Parallel(n_jobs=2, backend="qlab", inner=inner, return_as="generator_unordered",
                       batch_size=1)(tasks)  # fmt: skip
        quick = [next(gen) for _ in range(first)]
        gate.release()
        rest = list(gen)
        assert -1 not in quick
        assert sorted(quick + rest) == [-1] + [i * i for i in range(9)]
    finally:
        gate.close()


def test_generator_traced_after_the_block(inner: str) -> None:
    """A generator consumed after its trace ended gives plain results (the batches
    submitted during the block are in the trace, those submitted later are not)."""
    with qlab.joblib.trace() as t:
        gen = Parallel(n_jobs=2, backend="qlab", inner=inner, return_as="generator")(
            delayed(square)(i) for i in range(6)
        )
    assert list(gen) == [i * i for i in range(6)]
    jobs = t.run.jobs
    assert 0 < jobs.tasks.sum() <= 6
    assert set(jobs.status) == {"ok"}


# -- abort on error (test_abort_backend) ------------------------------------------------


@pytest.mark.parametrize("n_jobs", [2, -1])
def test_abort_on_error(inner: str, n_jobs: int) -> None:
    """test_abort_backend: the first task fails; Parallel raises without running the
    other 100 (they would wait on a gate that opens only after the error)."""
    from tests.helpers import SocketGate

    gate = SocketGate()
    try:
        tasks = [delayed(divide)(1, 0)] + [delayed(gate)(i) for i in range(100)]
        with qlab.joblib.trace() as t, pytest.raises(ZeroDivisionError):
            Parallel(n_jobs=n_jobs, backend="qlab", inner=inner, batch_size=1)(tasks)
        gate.release()
        qlab.joblib.shutdown()  # the gate tasks that had started finish
    finally:
        gate.close()
    jobs = t.run.jobs
    assert jobs.tasks.sum() < 101
    assert jobs.status.value_counts()["failed"] == 1
    assert set(jobs.status) <= {"ok", "failed", "cancelled"}


# -- callbacks: lazy dispatch (test_dispatch_multiprocessing) ---------------------------


def test_callbacks_dispatch_lazily(inner: str) -> None:
    """test_dispatch_multiprocessing: with pre_dispatch=3 only 3 tasks are taken from
    the iterator at first; the 4th is taken by the callback of a finished batch."""
    seen: list[int] = []

    with qlab.joblib.trace() as t:

        def produce():
            for i in range(6):
                if i == 3:  # the 4th item: some batch must be done by now
                    seen.append(int((t.run.jobs.status == "ok").sum()))
                yield i

        out = Parallel(n_jobs=2, backend="qlab", inner=inner, batch_size=1, pre_dispatch=3)(
            delayed(square)(i) for i in produce()
        )
    assert out == [i * i for i in range(6)]
    assert seen and seen[0] >= 1


# -- the pool: reused across calls, thread limits ----------------------------------------


def test_pool_reused_across_parallel_calls(inner: str) -> None:
    """As joblib's backends do, later Parallel calls run on the same workers: three
    calls with n_jobs=2 see at most 2 (process, thread) workers, from one pool."""
    seen = set()
    for _ in range(3):
        seen |= set(
            Parallel(n_jobs=2, backend="qlab", inner=inner, batch_size=1)(
                delayed(where)(i) for i in range(8)
            )
        )
    assert 1 <= len(seen) <= 2
    assert qlab.joblib.shutdown() == 1


def test_sharedmem_with_threads() -> None:
    """require="sharedmem": thread workers share the caller's objects."""
    box: list[int] = []
    Parallel(n_jobs=2, backend="qlab", require="sharedmem")(
        delayed(box.append)(i) for i in range(5)
    )
    assert sorted(box) == list(range(5))


def blas_threads(_: object = None) -> list[int]:
    from threadpoolctl import threadpool_info

    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_inner_max_num_threads(inner: str) -> None:
    """test_threadpool_limitation_in_child_context: the workers' BLAS uses at most
    inner_max_num_threads threads."""
    import numpy  # noqa: F401  (loads the BLAS that threadpoolctl inspects)

    if not blas_threads():
        pytest.skip("numpy is not linked to a BLAS that threadpoolctl sees")
    with parallel_config(backend="qlab", inner=inner, inner_max_num_threads=1):
        out = Parallel(n_jobs=2)(delayed(blas_threads)(i) for i in range(2))
    assert out == [[1] * len(out[0])] * 2
