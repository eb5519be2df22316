"""The asyncio backend: ``async def`` handlers run as tasks on one event loop.

Each worker is a lane: its driver thread hands each batch to the event loop as one
task, which awaits the handler on the batch's jobs one after another, so ``workers``
is the number of jobs awaiting at once. The loop runs in a thread of its own
(``qlab-asyncio-loop``; uvloop's if it is installed), or in a loop the caller gives
(``AsyncioBackend(loop=...)``, which must be running in another thread)::

    driver thread (one per worker)            event loop thread
    ------------------------------            --------------------------------------
    run_batch --run_coroutine_threadsafe-->   task: for each job of the batch:
                                                  async with asyncio.timeout(timeout):
                                                      await handler(payload)
              <--------- BatchResult -------  columns (t0, t1), failures, results

``timeout=`` is ``asyncio.timeout``: a late attempt's task is cancelled at its
deadline and recorded as ``timeout`` (retryable), and nothing is abandoned. A pool
that stops for good (a second Ctrl-C) cancels the running tasks. ``qlab.current()``
works inside a coroutine: each task sees its own job through a ``ContextVar``.
CPU time is not measured per attempt (tasks interleave on one thread): ``cpu_s`` is
NaN. A handler that is not ``async def`` is a TypeError at start, before any job.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from qlab import context
from qlab.backends.base import BatchResult, Failure, JobSpec, Slot
from qlab.batches import Batch
from qlab.codes import CANCELLED, CRASHED, RETRY, TIMEOUT
from qlab.context import Cancelled, WorkerState

__all__ = ["AsyncioBackend", "is_async"]

log = logging.getLogger("qlab")

# the WorkerState of the job that the running task is on
_TASK_STATE: contextvars.ContextVar[WorkerState | None] = contextvars.ContextVar(
    "qlab_task_state", default=None
)


class _TaskStates:
    """Bound as the loop thread's worker state (``qlab.current()`` reads one per
    thread): it answers with the running task's own state."""

    def __getattr__(self, name: str) -> Any:
        state = _TASK_STATE.get()
        if state is None:
            return (lambda: None) if name == "running" else None
        return getattr(state, name)


def is_async(fn: Any) -> bool:
    """Is ``fn`` an ``async def`` function (or a partial or callable object of one)?

    Example:
        >>> async def f(x): ...
        >>> is_async(f), is_async(abs)
        (True, False)
    """
    while isinstance(fn, functools.partial):
        fn = fn.func
    call = None if inspect.isroutine(fn) else getattr(type(fn), "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)


def new_loop() -> tuple[asyncio.AbstractEventLoop, str]:
    """A fresh event loop: uvloop's if it is installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop(), "asyncio"
    return uvloop.new_event_loop(), "uvloop"


class AsyncioBackend:
    """Runs ``async def`` handlers on an event loop; each worker is one task at a time.

    Args:
        loop: a running event loop (in another thread) to use instead of a fresh one.

    Example:
        >>> import qlab, asyncio
        >>> async def double(x):
        ...     await asyncio.sleep(0)
        ...     return 2 * x
        >>> run = qlab.run(double, range(3), workers=2, backend="asyncio", keep_results=True)
        >>> run.jobs.result.tolist(), run.meta["backend"]
        ([0, 2, 4], 'asyncio')
    """

    name = "asyncio"
    can_kill = False
    in_caller = False
    batch_target_s = 0.02

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._given = loop
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task] = set()
        self._cancelled_once = False

    def start(
        self, spec: JobSpec, workers: int, take_ahead: Callable[[Slot], Batch | None]
    ) -> dict[str, Any]:
        if not is_async(spec.handler):
            raise TypeError(
                f"handler: backend='asyncio' runs async def handlers, got {spec.handler!r}; "
                "use backend='thread' or 'process' for plain functions"
            )
        t = time.perf_counter()
        self.spec = spec
        if self._given is not None:
            self.loop, kind = self._given, "given"
            self.loop.call_soon_threadsafe(_bind)
        else:
            self.loop, kind = new_loop()
            ready = threading.Event()
            self._thread = threading.Thread(
                target=self._serve, args=(ready,), name="qlab-asyncio-loop", daemon=True
            )
            self._thread.start()
            ready.wait()
        return {"startup_s": time.perf_counter() - t, "event_loop": kind}

    def _serve(self, ready: threading.Event) -> None:
        loop = self.loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        _bind()
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def new_event(self, worker: int) -> threading.Event:
        return threading.Event()

    def run_batch(self, slot: Slot, batch: Batch, res: BatchResult) -> BatchResult:
        """Run ``batch`` as one task on the loop; wait for it in this driver thread."""
        assert self.loop is not None
        fut = asyncio.run_coroutine_threadsafe(self._batch(slot.state, batch, res), self.loop)
        return fut.result()

    async def _batch(self, state: WorkerState, batch: Batch, res: BatchResult) -> BatchResult:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        _TASK_STATE.set(state)
        spec, now = self.spec, state.now
        fn, timeout, is_permanent = spec.handler, spec.timeout, spec.is_permanent
        results = res.results = [] if spec.want_results else None
        try:
            for i, (job_id, attempt, payload) in enumerate(batch):
                if state.stop:
                    break
                t0 = now()
                state.cur = (job_id, attempt, t0)
                fail = None
                value = None
                try:
                    async with asyncio.timeout(timeout) as scope:
                        value = await fn(payload)
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:
                    fail = _failure(i, exc, state, scope, is_permanent)
                res.t0.append(t0)
                res.t1.append(now())
                res.cpu.append(math.nan)
                if results is not None:
                    results.append(value)
                if fail is not None:
                    res.failures.append(fail)
                    if fail.code in (CRASHED, CANCELLED):
                        break
        finally:
            state.cur = None
            self._tasks.discard(task)
        return res

    def overdue(self, slot: Slot, now: float) -> None:
        """Nothing to take away: a late attempt's task is cancelled at its deadline."""
        return None

    def stop_intake(self) -> None:
        """Lanes see ``state.stop`` themselves."""

    def stop_worker(self, slot: Slot) -> None:
        """Nothing to stop (timeouts cancel their task)."""

    def close(self, kill: bool = False) -> None:
        """With ``kill``, cancel the running tasks (the first time; their lanes then
        return); else stop the loop and join its thread."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        if kill and self._tasks and not self._cancelled_once:
            self._cancelled_once = True
            loop.call_soon_threadsafe(lambda: [t.cancel() for t in list(self._tasks)])
            return
        if self._thread is None:  # the caller's loop: leave it running
            loop.call_soon_threadsafe(_unbind)
            return
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(5.0)
        if self._thread.is_alive():  # a handler blocks the loop without awaiting
            log.warning("the event loop did not stop: a handler blocks it; abandoned")
            self._thread.name = "qlab-abandoned-asyncio-loop"

    def info(self) -> dict[str, Any]:
        return {}


def _failure(row: int, exc: BaseException, state: WorkerState, scope: Any, is_permanent) -> Failure:
    """Classify an attempt's error: its deadline passed (TIMEOUT), the pool stopped it
    (CANCELLED), a BaseException (CRASHED), anything else retryable (RETRY)."""
    etype, msg = type(exc).__name__, str(exc)
    if isinstance(exc, TimeoutError) and scope.expired():
        msg = f"attempt exceeded timeout={state.timeout}s; its task was cancelled"
        return Failure(row, TIMEOUT, etype, msg, False, TimeoutError(msg))
    if isinstance(exc, asyncio.CancelledError) or (
        isinstance(exc, Cancelled) and state.cancel_event.is_set()
    ):
        return Failure(row, CANCELLED, etype, msg or "task cancelled", False, Cancelled(msg))
    if not isinstance(exc, Exception):
        return Failure(row, CRASHED, etype, msg, False, exc)
    return Failure(row, RETRY, etype, msg, is_permanent(exc), exc)


def _bind() -> None:
    """Make ``qlab.current()`` in the loop's thread answer for the running task."""
    context._local.state = _TaskStates()


def _unbind() -> None:
    context._local.state = None
