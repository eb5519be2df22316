"""``qlab.observe(executor)``: trace the calls of an executor that qlab did not make.

Wrap a ``ThreadPoolExecutor``, a ``ProcessPoolExecutor``, a loky executor, a Dask
``Client.get_executor()`` (any ``concurrent.futures.Executor``) and use the wrapper in
its place; ``trace()`` then gives a :class:`qlab.Run` with one job per submit, in the
same shapes as qlab's own runs (queue wait, service, worker, CPU time, outcome), so
qlab and its peers go on the same charts with the same code.

How each call is timed: the wrapper submits a small function around the call that
reads ``time.perf_counter`` (and ``time.thread_time``) where the call runs.

- In the caller's process (a ``ThreadPoolExecutor``, a :class:`qlab.Executor` on
  threads): the times go straight into the job's record, and ``submit`` returns the
  executor's own Future.
- In other processes: the times come back with the result, and ``submit`` returns a
  Future linked to the executor's (``cancel`` and ``running`` ask the inner one).
  Worker processes on this machine share ``perf_counter``'s clock (CLOCK_MONOTONIC on
  Linux); on other machines the times are off by the clocks' offset.

``worker`` numbers each (process, thread) that ran a call, in order of first use.
Each call is one attempt (the peers do not retry): outcomes are ok or failed, and a
call cancelled before it ran is a cancelled job.

Example:
    >>> import qlab
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> with qlab.observe(ThreadPoolExecutor(2)) as ex:
    ...     results = list(ex.map(abs, [-1, -2, -3]))
    >>> run = ex.trace()
    >>> results, run.jobs.status.tolist(), run.jobs.fn.tolist()
    ([1, 2, 3], ['ok', 'ok', 'ok'], ['abs', 'abs', 'abs'])
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import os
import threading
import time
from typing import Any

from qlab.dispatch import fn_name

__all__ = ["Observed", "observe"]

# a job's record: [submitted, start, end, cpu, worker key, error type, error, cancelled]
# (the last is True for a cancelled call, "crashed" when the executor failed it)
_SUB, _T0, _T1, _CPU, _WHO, _ETYPE, _ERR, _CANCEL = range(8)
_NAN = math.nan


def observe(executor: cf.Executor, *, in_process: bool | None = None) -> Observed:
    """Wrap ``executor`` so that every call submitted through the wrapper is traced.

    Args:
        executor: any ``concurrent.futures.Executor``.
        in_process: do its calls run in this process? By default: yes for a
            ``ThreadPoolExecutor`` and a :class:`qlab.Executor` on threads.

    Raises:
        TypeError: ``executor`` is not a ``concurrent.futures.Executor``.
    """
    if not isinstance(executor, cf.Executor):
        raise TypeError(f"executor must be a concurrent.futures.Executor, got {executor!r}")
    if in_process is None:
        backend = getattr(getattr(executor, "_pool", None), "_backend", None)
        in_process = isinstance(executor, cf.ThreadPoolExecutor) or (
            getattr(backend, "name", None) in ("thread", "inline", "asyncio")
        )
    return Observed(executor, bool(in_process))


def _local(rec: list, fn: Any, args: tuple, kwargs: dict) -> Any:
    """A call in this process: its times go straight into its record."""
    rec[_WHO] = threading.get_ident()
    c0 = time.thread_time()
    rec[_T0] = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    except BaseException as exc:
        rec[_ETYPE], rec[_ERR] = type(exc).__name__, str(exc)
        raise
    finally:
        rec[_T1] = time.perf_counter()
        rec[_CPU] = time.thread_time() - c0


def _remote(fn: Any, args: tuple, kwargs: dict) -> tuple:
    """A call in another process: its times travel back with its result."""
    c0 = time.thread_time()
    t0 = time.perf_counter()
    try:
        value, exc = fn(*args, **kwargs), None
    except Exception as e:
        value, exc = None, e
    t1 = time.perf_counter()
    return value, exc, t0, t1, time.thread_time() - c0, (os.getpid(), threading.get_ident())


class _Linked(cf.Future):
    """The Future of a call run elsewhere: it settles when the inner one does."""

    def __init__(self, inner: cf.Future) -> None:
        super().__init__()
        self._inner = inner

    def cancel(self) -> bool:
        return self._inner.cancel() and super().cancel()

    def running(self) -> bool:
        return self._inner.running()


class Observed(cf.Executor):
    """An executor whose calls are traced (see :func:`observe`)."""

    def __init__(self, executor: cf.Executor, in_process: bool) -> None:
        self.executor = executor
        self.in_process = in_process
        self._origin = time.perf_counter()
        self._records: list[list] = []
        self._fns: list[str] = []
        self._lock = threading.Lock()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> cf.Future:
        """Submit ``fn(*args, **kwargs)`` to the wrapped executor, traced."""
        rec = [time.perf_counter(), _NAN, _NAN, _NAN, None, None, None, False]
        with self._lock:  # a job's id is its place in the records
            self._records.append(rec)
            self._fns.append(fn_name(fn))
        if self.in_process:
            fut = self.executor.submit(_local, rec, fn, args, kwargs)
            fut.add_done_callback(lambda f: f.cancelled() and rec.__setitem__(_CANCEL, True))
            return fut
        inner = self.executor.submit(_remote, fn, args, kwargs)
        outer = _Linked(inner)
        inner.add_done_callback(lambda f: _settle(f, outer, rec))
        return outer

    def map(self, fn: Any, *iterables: Any, timeout: float | None = None, chunksize: int = 1):
        """``concurrent.futures.Executor.map`` through this wrapper (``chunksize`` is
        not passed on: every call is traced on its own)."""
        return super().map(fn, *iterables, timeout=timeout)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Shut the wrapped executor down (``cancel_futures`` is passed on only when
        true: loky's executor does not take it)."""
        if cancel_futures:
            self.executor.shutdown(wait=wait, cancel_futures=True)
        else:
            self.executor.shutdown(wait=wait)

    def trace(self) -> Any:
        """A :class:`qlab.Run` of the calls so far (one job each; running and queued
        calls are ``pending``)."""
        from qlab.observe_run import build_run

        with self._lock:
            records = [list(r) for r in self._records]
            fns = list(self._fns)
        meta = {
            "backend": type(self.executor).__name__,
            "workers": getattr(self.executor, "_max_workers", None),
            "workload": "qlab.observe",
            "retry": None,
        }
        return build_run(records, fns, self._origin, meta)


def _settle(inner: cf.Future, outer: _Linked, rec: list) -> None:
    """Move the inner Future's outcome and the call's times to the caller's Future."""
    if inner.cancelled():
        rec[_CANCEL] = True
        cf.Future.cancel(outer)
        outer.set_running_or_notify_cancel()
        return
    exc = inner.exception()
    if exc is not None:  # the executor failed the call (a pickling error, a dead worker)
        rec[_ETYPE], rec[_ERR] = type(exc).__name__, str(exc)
        rec[_T0] = rec[_T1] = time.perf_counter()  # when the caller learnt it
        rec[_CANCEL] = "crashed"
        if outer.set_running_or_notify_cancel():
            outer.set_exception(exc)
        return
    value, err, t0, t1, cpu, who = inner.result()
    rec[_T0], rec[_T1], rec[_CPU], rec[_WHO] = t0, t1, cpu, who
    if err is not None:
        rec[_ETYPE], rec[_ERR] = type(err).__name__, str(err)
    if not outer.set_running_or_notify_cancel():
        return
    if err is not None:
        outer.set_exception(err)
    else:
        outer.set_result(value)
