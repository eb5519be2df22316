"""``qlab.observe(executor)``: trace the calls of an executor that qlab did not make.

Wrap a ``ThreadPoolExecutor``, a ``ProcessPoolExecutor``, a loky executor, a Dask
``Client.get_executor()`` (any ``concurrent.futures.Executor``) and use the wrapper in
its place; ``trace()`` then gives a :class:`qlab.Run` with one job per submit, in the
same shapes as qlab's own runs (queue wait, service, worker, CPU time, outcome), so
qlab and its peers go on the same charts with the same code.

How each call is timed: the wrapper submits a small function around the call that
reads ``time.perf_counter`` where the call runs (and ``time.thread_time`` in other
processes; in-process calls have ``cpu_s`` NaN, see ``_local``).

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
import weakref
from array import array
from typing import Any

from qlab.executor.dispatch import fn_name

__all__ = ["Observed", "observe"]

# a job's record for qlab.observe_run: [submitted, start, end, cpu, worker key, error
# type, error, cancelled] (the last is True for a cancelled call, "crashed" when the
# executor failed it)
_SUB, _T0, _T1, _CPU, _WHO, _ETYPE, _ERR, _CANCEL = range(8)
_NAN = math.nan


class _Calls:
    """The calls so far, in columns: a submit appends to arrays and creates no
    object that the garbage collector must visit again and again (a list per call
    would cost a few microseconds a call in collections on a long run)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sub, self.t0, self.t1, self.cpu = (array("d") for _ in range(4))
        self.fn = array("i")  # index into names
        self.names: list[str] = []
        self.name_ix: dict[str, int] = {}
        self.who: dict[int, Any] = {}  # call -> (pid, thread) or thread id
        self.err: dict[int, tuple[str, str]] = {}
        self.fate: dict[int, Any] = {}  # call -> weakref of its Future, True, "crashed"

    def add(self, name: str) -> int:
        code = self.name_ix.get(name)
        with self.lock:
            if code is None:
                code = self.name_ix.setdefault(name, len(self.names))
                if code == len(self.names):
                    self.names.append(name)
            i = len(self.sub)
            self.sub.append(time.perf_counter())
            self.t0.append(_NAN)
            self.t1.append(_NAN)
            self.cpu.append(_NAN)
            self.fn.append(code)
        return i

    def records(self) -> tuple[list[list], list[str]]:
        """Per-call records and function names, for :func:`qlab.executor.observe_run.build_run`."""
        with self.lock:
            n = len(self.sub)
            cols: list[Any] = [self.sub[:n], self.t0[:n], self.t1[:n], self.cpu[:n], self.fn[:n]]
            names = list(self.names)
        who, err, fate = dict(self.who), dict(self.err), dict(self.fate)
        records = []
        for i in range(n):
            etype, msg = err.get(i, (None, None))
            rec = [cols[0][i], cols[1][i], cols[2][i], cols[3][i], who.get(i), etype, msg, False]
            f = fate.get(i, False)
            rec[_CANCEL] = _cancelled(f(), rec) if isinstance(f, weakref.ref) else f
            records.append(rec)
        return records, [names[c] for c in cols[4]]


def observe(executor: cf.Executor, *, in_process: bool | None = None) -> Observed:
    """Wrap ``executor`` so that every call submitted through the wrapper is traced.

    Args:
        executor: any ``concurrent.futures.Executor``.
        in_process: do its calls run in this process? By default: yes for a
            ``ThreadPoolExecutor`` and a :class:`qlab.Executor` on threads.

    Raises:
        TypeError: ``executor`` is not a ``concurrent.futures.Executor``.
    Example:
        >>> import qlab
        >>> from concurrent.futures import ThreadPoolExecutor
        >>> with ThreadPoolExecutor(2) as pool:
        ...     obs = qlab.observe(pool)
        ...     print(obs.submit(abs, -3).result())
        3
        >>> obs.trace().jobs["status"].tolist()
        ['ok']
    """
    if not isinstance(executor, cf.Executor):
        raise TypeError(f"executor must be a concurrent.futures.Executor, got {executor!r}")
    if in_process is None:
        backend = getattr(getattr(executor, "_pool", None), "_backend", None)
        in_process = isinstance(executor, cf.ThreadPoolExecutor) or (
            getattr(backend, "name", None) in ("thread", "inline", "asyncio")
        )
    return Observed(executor, bool(in_process))


def _local(calls: _Calls, i: int, fn: Any, args: tuple, kwargs: dict) -> Any:
    """A call in this process: its times go straight into its columns. (No CPU time:
    a thread-CPU clock read is a system call, ~1-2 us with the GIL held, which would
    slow the submitting thread as much as the rest of the wrapper.)"""
    calls.who[i] = threading.get_ident()
    calls.t0[i] = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    except BaseException as exc:
        calls.err[i] = (type(exc).__name__, str(exc))
        raise
    finally:
        calls.t1[i] = time.perf_counter()


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
        self._calls = _Calls()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> cf.Future:
        """Submit ``fn(*args, **kwargs)`` to the wrapped executor, traced."""
        calls = self._calls
        i = calls.add(fn_name(fn))
        if self.in_process:
            fut = self.executor.submit(_local, calls, i, fn, args, kwargs)
            calls.fate[i] = weakref.ref(fut)  # read by trace(): cheaper than a callback
            return fut
        inner = self.executor.submit(_remote, fn, args, kwargs)
        outer = _Linked(inner)
        inner.add_done_callback(lambda f: _settle(f, outer, calls, i))
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
        from qlab.executor.observe_run import build_run

        records, fns = self._calls.records()
        meta = {
            "backend": type(self.executor).__name__,
            "workers": getattr(self.executor, "_max_workers", None),
            "workload": "qlab.hooks",
            "retry": None,
        }
        return build_run(records, fns, self._origin, meta)


def _cancelled(fut: cf.Future | None, rec: list) -> bool:
    """Was an in-process call cancelled? Its Future says so; a call whose Future is
    gone (nothing holds it: not queued) and that never started was cancelled."""
    if fut is None:
        return math.isnan(rec[_T0]) and rec[_ETYPE] is None
    return fut.cancelled()


def _settle(inner: cf.Future, outer: _Linked, calls: _Calls, i: int) -> None:
    """Move the inner Future's outcome and the call's times to the caller's Future."""
    if inner.cancelled():
        calls.fate[i] = True
        cf.Future.cancel(outer)
        outer.set_running_or_notify_cancel()
        return
    exc = inner.exception()
    if exc is not None:  # the executor failed the call (a pickling error, a dead worker)
        calls.err[i] = (type(exc).__name__, str(exc))
        calls.t0[i] = calls.t1[i] = time.perf_counter()  # when the caller learnt it
        calls.fate[i] = "crashed"
        if outer.set_running_or_notify_cancel():
            outer.set_exception(exc)
        return
    value, err, t0, t1, cpu, who = inner.result()
    calls.t0[i], calls.t1[i], calls.cpu[i], calls.who[i] = t0, t1, cpu, who
    if err is not None:
        calls.err[i] = (type(err).__name__, str(err))
    if not outer.set_running_or_notify_cancel():
        return
    if err is not None:
        outer.set_exception(err)
    else:
        outer.set_result(value)
