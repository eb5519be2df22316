"""An Executor's workers' lifecycle: ``initializer=``, run once per worker before
its first call, and ``max_tasks_per_child=`` (:func:`retiring_backend`).

The standard executors run ``initializer(*initargs)`` when a worker thread or process
starts. In qlab the Executor's handler does it: :class:`InitDispatch` wraps
:func:`qlab.executor.dispatch.dispatch` and, before a worker's first call, runs the initializer
in that worker: once per worker thread (thread backend), per worker process (process
backend, and again in a process that replaces a dead or retired one), per lane
(inline and asyncio: one thread runs every lane) and per Dask worker process and
lane. Its state is kept per process, keyed by the executor's token, the process and
the worker, so that it holds however the handler travels (pickled once per process,
or once per Dask task).

A failing initializer breaks the executor, as it breaks a standard one: the call
that found it, and every later call in that process, fail with ``BrokenThreadPool``
(thread, inline, asyncio) or ``BrokenProcessPool`` (process, Dask), both
``concurrent.futures.BrokenExecutor``, chained to the initializer's error; and the
Executor refuses new calls once such a Future is settled.

Example:
    >>> import qlab
    >>> seen = []
    >>> with qlab.Executor(2, initializer=seen.append, initargs=("hi",)) as ex:
    ...     ex.submit(abs, -1).result()
    1
    >>> seen
    ['hi']
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import BrokenExecutor
from concurrent.futures.process import BrokenProcessPool
from concurrent.futures.thread import BrokenThreadPool
from typing import Any

from qlab.core.context import current_or_none

__all__ = [
    "AsyncInitDispatch",
    "InitDispatch",
    "check_initializer",
    "init_handler",
    "retiring_backend",
]

_DONE: set[tuple[str, int, int]] = set()  # (token, pid, worker) whose initializer ran
_BROKEN: dict[str, BaseException] = {}  # token -> the error of this process's failure
_LOCK = threading.Lock()


def check_initializer(initializer: Any, initargs: Any) -> tuple:
    """``initargs`` as a tuple, after checking both (TypeError naming the parameter).

    Example:
        >>> check_initializer(print, ["a"])
        ('a',)
    """
    if initializer is not None and not callable(initializer):
        raise TypeError(f"initializer must be callable or None, got {initializer!r}")
    if not isinstance(initargs, tuple | list):
        raise TypeError(f"initargs must be a tuple, got {initargs!r}")
    return tuple(initargs)


def init_handler(backend: str, is_async: bool, initializer: Any, initargs: Any) -> Any:
    """The pool's handler for an ``initializer`` (checked, and picklable for worker
    processes), or None without one."""
    initargs = check_initializer(initializer, initargs)
    if initializer is None:
        return None
    processes = backend in ("process", "dask")
    if processes:
        from qlab.core.pickling import check_picklable

        check_picklable("initializer", initializer)
        check_picklable("initargs", initargs)
    kind = AsyncInitDispatch if is_async else InitDispatch
    return kind(initializer, initargs, processes)


def retiring_backend(backend: Any, max_tasks: int) -> Any:
    """The process backend with ``max_tasks_per_child`` (ValueError elsewhere)."""
    if backend != "process":
        raise ValueError(
            f"max_tasks_per_child: only backend='process' replaces its workers, got {backend!r}"
        )
    from qlab.backends.process import ProcessBackend

    return ProcessBackend(max_tasks_per_child=max_tasks)


class InitDispatch:
    """The Executor's handler with an initializer: ``dispatch`` after :meth:`ready`.

    Args:
        initializer: called as ``initializer(*initargs)`` once per worker.
        initargs: its arguments.
        processes: the workers are processes (its failure is a ``BrokenProcessPool``).
    """

    def __init__(self, initializer: Callable[..., Any], initargs: tuple, processes: bool) -> None:
        self.initializer = initializer
        self.initargs = initargs
        self.processes = processes
        self.token = uuid.uuid4().hex

    def __call__(self, payload: tuple[Any, tuple, dict]) -> Any:
        self.ready()  # what it returns is ignored, as the standard executors do
        fn, args, kwargs = payload
        return fn(*args, **kwargs)

    def ready(self) -> Any:
        """Run the initializer if this worker has not; raise the executor's broken
        error if it failed here. Returns what it returned if that must be awaited."""
        key = (self.token, os.getpid(), _worker())
        if key in _DONE and self.token not in _BROKEN:
            return None
        with _LOCK:
            broken = _BROKEN.get(self.token)
            if broken is not None:
                raise self._broken(broken)
            if key in _DONE:
                return None
            _DONE.add(key)
        try:
            out = self.initializer(*self.initargs)
        except Exception as exc:
            with _LOCK:
                _BROKEN.setdefault(self.token, exc)
            raise self._broken(exc) from exc
        return out if hasattr(out, "__await__") else None

    def _broken(self, exc: BaseException) -> BrokenExecutor:
        kind = BrokenProcessPool if self.processes else BrokenThreadPool
        err = kind(
            f"a worker's initializer failed ({type(exc).__name__}: {exc}): "
            "the executor is not usable anymore"
        )
        err.__cause__ = exc
        return err

    def forget(self) -> None:
        """Drop this executor's state in this process (its shutdown)."""
        with _LOCK:
            _DONE.difference_update([k for k in _DONE if k[0] == self.token])
            _BROKEN.pop(self.token, None)


class AsyncInitDispatch(InitDispatch):
    """:class:`InitDispatch` for the asyncio backend: awaits the call (and the
    initializer, if it returns an awaitable)."""

    async def __call__(self, payload: tuple[Any, tuple, dict]) -> Any:
        pending = self.ready()
        if pending is not None:
            try:
                await pending
            except Exception as exc:
                with _LOCK:
                    _BROKEN.setdefault(self.token, exc)
                raise self._broken(exc) from exc
        fn, args, kwargs = payload
        return await fn(*args, **kwargs)


def _worker() -> int:
    """The worker (or lane) running the current call."""
    ctx = current_or_none()
    return -1 if ctx is None else ctx.worker
