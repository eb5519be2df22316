"""``qlab.joblib.trace()``: a :class:`qlab.Run` of the joblib batches run inside a block.

joblib has no hook for observers, so tracing works on the backends themselves, loky,
threading, Dask and ``"qlab"`` alike: while a trace is active, ``Parallel.__call__``
first gives the backend of the call (from ``backend=``, ``parallel_config`` or joblib's
defaults) a *traced subclass* of its class as its class (``traced(LokyBackend)`` is
still a LokyBackend for every ``isinstance`` check, and pickles as one). A traced
backend's ``submit`` wraps each batch in :class:`Timed`, which reads
``time.perf_counter`` where the batch runs (worker processes on one machine share
that clock) and, in other processes, ``time.thread_time``; the times come back with
the result (or on the exception) and the subclass unwraps them before joblib sees
them. Without an active trace, a traced subclass only passes calls through.

What a trace records: one job per batch that joblib sent to a backend (``tasks`` says
how many ``delayed`` calls it held), its submit, start and end, the (process,
thread) that ran it, and its error. Not recorded: tasks that joblib runs in the
caller without a backend (``n_jobs=1``), and nested ``Parallel`` calls inside tasks.
A trace sees every ``Parallel`` call of this process while it is active.

Example:
    >>> import joblib, qlab.joblib
    >>> with qlab.joblib.trace() as t:
    ...     out = joblib.Parallel(n_jobs=2, backend="threading", batch_size=1)(
    ...         joblib.delayed(abs)(-i) for i in range(4))
    >>> out, len(t.run.jobs), int(t.run.jobs.tasks.sum())
    ([0, 1, 2, 3], 4, 4)
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import itertools
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

from joblib import parallel as jp

from qlab.joblib.timed import NAN, OPEN, TIMES, Done, Timed, note

__all__ = ["JoblibTrace", "Timed", "trace", "traced"]

_LOCK = threading.Lock()
_ACTIVE: list[JoblibTrace] = []
_SAVED: dict[str, Any] = {}  # what the traces replaced: Parallel.__call__
_CLASSES: dict[type, type] = {}  # backend class -> its traced subclass
_TOKENS = itertools.count()


class JoblibTrace:
    """The batches recorded by one :func:`trace` block; ``run`` is their Run."""

    def __init__(self) -> None:
        self.origin = time.perf_counter()
        self._lock = threading.Lock()
        # per batch: [submitted, start, end, cpu, worker, error type, error, cancelled]
        self._records: list[list[Any]] = []
        self._fns: list[str] = []
        self._tasks: list[int] = []
        self._backends: list[str] = []

    def open(self, fn: str, tasks: int, backend: str) -> int:
        """A batch was submitted: its record's index."""
        with self._lock:
            self._records.append([time.perf_counter(), NAN, NAN, NAN, None, None, None, False])
            self._fns.append(fn)
            self._tasks.append(tasks)
            self._backends.append(backend)
            return len(self._records) - 1

    def note(self, i: int, start: float, end: float, cpu: float, who: Any) -> None:
        with self._lock:
            self._records[i][1:5] = [start, end, cpu, who]

    def close(self, i: int, error: BaseException | None, cancelled: bool) -> None:
        """The batch is done: its outcome (times the worker did not report are the
        parent's: submit to callback, on an unknown worker)."""
        with self._lock:
            r = self._records[i]
            if math.isnan(r[2]) and not cancelled:
                r[1:5] = [r[0], time.perf_counter(), NAN, ("?", 0)]
            if error is not None:
                r[5], r[6] = type(error).__qualname__, str(error)
                r[7] = "crashed" if isinstance(error, cf.BrokenExecutor) else False
            r[7] = r[7] or cancelled

    @property
    def run(self) -> Any:
        """A :class:`qlab.Run`: one job per batch (``tasks``: its joblib tasks,
        ``joblib_backend``: the backend class that ran it, ``fn``: its first task's
        function), one attempt each; batches still running are ``pending``."""
        import pandas as pd

        from qlab.executor.observe_run import build_run

        with self._lock:
            records = [list(r) for r in self._records]
            fns, tasks, names = list(self._fns), list(self._tasks), list(self._backends)
        meta = {"backend": "joblib", "workload": "joblib.Parallel", "joblib_backends":
                sorted(set(names))}  # fmt: skip
        run = build_run(records, fns, self.origin, meta)
        run.jobs.insert(2, "tasks", pd.Series(tasks, dtype="int64"))
        run.jobs.insert(3, "joblib_backend", pd.Categorical(names))
        return run

    def __repr__(self) -> str:
        return f"<qlab.joblib trace: {len(self._records)} batches>"


@contextlib.contextmanager
def trace() -> Iterator[JoblibTrace]:
    """Record every joblib batch that a backend runs while the block is active.

    Yields:
        A :class:`JoblibTrace`; ``t.run`` is the :class:`qlab.Run` (during the block:
        what ran so far).

    Example:
        >>> import joblib, qlab.joblib
        >>> with qlab.joblib.trace() as t:
        ...     _ = joblib.Parallel(n_jobs=2, backend="qlab")(
        ...         joblib.delayed(divmod)(i, 3) for i in range(6))
        >>> t.run.jobs.status.unique().tolist()
        ['ok']
        >>> qlab.joblib.shutdown()
        1
    """
    t = JoblibTrace()
    with _LOCK:
        _ACTIVE.append(t)
        if len(_ACTIVE) == 1:
            _SAVED["__call__"] = jp.Parallel.__call__
            jp.Parallel.__call__ = _traced_call(jp.Parallel.__call__)
    try:
        yield t
    finally:
        with _LOCK:
            _ACTIVE.remove(t)
            if not _ACTIVE:
                jp.Parallel.__call__ = _SAVED.pop("__call__")


def _traced_call(call: Any) -> Any:
    """``Parallel.__call__`` that first gives the call's backend its traced class.
    (joblib has no hook for observers; ``_backend`` is where ``Parallel`` keeps the
    backend it resolved, from ``backend=``, ``parallel_config`` or its defaults.)"""

    @functools.wraps(call)
    def __call__(self: Any, iterable: Any) -> Any:
        backend = getattr(self, "_backend", None)
        if backend is not None and type(backend) not in _CLASSES.values():
            backend.__class__ = traced(type(backend))
        return call(self, iterable)

    return __call__


def traced(cls: type) -> type:
    """The traced subclass of the joblib backend class ``cls`` (made once per class)."""
    with contextlib.suppress(KeyError):
        return _CLASSES[cls]
    if cls in _CLASSES.values():
        return cls

    class Traced(cls):
        def submit(self, func: Any, callback: Any = None) -> Any:
            with _LOCK:
                tracers = list(_ACTIVE)
            if not tracers:
                return super().submit(func, callback)
            token = next(_TOKENS)
            name, n = _fn_name(func), _size(func)
            OPEN[token] = [(t, t.open(name, n, cls.__name__)) for t in tracers]
            settle = functools.partial(_settle, token)
            done = settle if callback is None else _then(settle, callback)
            return super().submit(Timed(func, token), callback=done)

        def retrieve_result_callback(self, out: Any) -> Any:
            return _unwrap(super().retrieve_result_callback, out)

        def retrieve_result(self, out: Any, timeout: float | None = None) -> Any:
            return _unwrap(super().retrieve_result, out, timeout)

        def __reduce_ex__(self, protocol: Any) -> Any:
            # pickles as the backend it wraps (nested backends travel to workers)
            rv = super().__reduce_ex__(protocol)
            if isinstance(rv, tuple) and rv[1] and rv[1][0] is type(self):
                rv = (rv[0], (cls, *rv[1][1:]), *rv[2:])
            return rv

    Traced.__name__ = cls.__name__  # what joblib prints ("Using backend LokyBackend...")
    Traced.__qualname__ = f"traced({cls.__qualname__})"
    _CLASSES[cls] = Traced
    return Traced


def _then(first: Any, second: Any) -> Any:
    def callback(out: Any) -> None:
        first(out)
        second(out)

    return callback


def _settle(token: int, out: Any) -> None:
    """joblib's callback for a traced batch is about to run: close its records from
    ``out`` (a Future, or the value or wrapped exception that a Pool hands over)."""
    if token not in OPEN:
        return
    error, cancelled, value = None, False, out
    if isinstance(out, cf.Future):
        cancelled = out.cancelled()
        error = None if cancelled else out.exception()
        value = None if cancelled or error is not None else out.result()
        wrapped = getattr(value, "exc", None)  # a KeyboardInterrupt come back as a value
        if not isinstance(value, list | Done) and isinstance(wrapped, BaseException):
            error, value = wrapped, None  # (a batch's results are a list)
    elif isinstance(out, BaseException) or type(out).__name__ == "_ExceptionWithTraceback":
        error = getattr(out, "exc", out)
    times = getattr(error, TIMES, None) if error is not None else getattr(value, "times", None)
    if isinstance(times, tuple) and (error is not None or isinstance(value, Done)):
        note(token, times)  # from another process (in this one, Timed noted them)
    for t, i in OPEN.pop(token, ()):
        t.close(i, error, cancelled)


def _unwrap(retrieve: Any, *args: Any) -> Any:
    """The result without the times that travelled with it."""
    try:
        value = retrieve(*args)
    except BaseException as exc:
        with contextlib.suppress(AttributeError):
            delattr(exc, TIMES)
        raise
    return value.value if isinstance(value, Done) else value


def _fn_name(batch: Any) -> str:
    """The name of a batch's first task's function (through scikit-learn's wrapper)."""
    try:
        fn = batch.items[0][0]
    except (AttributeError, IndexError, TypeError):
        return type(batch).__name__
    fn = getattr(fn, "function", fn)
    if isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return name if isinstance(name, str) else type(fn).__name__


def _size(batch: Any) -> int:
    try:
        return len(batch)
    except TypeError:
        return 1
