"""The asyncio backend's parts: the event loop, a lane's batches in flight, the wait
for a rate-limit token, and a flight's rows in columns (see :mod:`qlab.backends.asyncio`).
Which handlers are async: :func:`qlab.checks.is_async`; each task's ``qlab.current()``:
``qlab.context.TASK_STATE``.

Example:
    >>> loop, kind = new_loop()
    >>> loop.close(); kind in ("asyncio", "uvloop")
    True
"""

from __future__ import annotations

import asyncio
import collections
import math
import queue
from typing import Any

from qlab.backends.base import BatchResult, Failure
from qlab.batches import Batch
from qlab.codes import CANCELLED, CRASHED, RETRY, TIMEOUT
from qlab.context import Cancelled, WorkerState

__all__ = [
    "Lane",
    "Limiter",
    "columns",
    "failure",
    "new_loop",
    "wait_turn",
]

_SLICE_S = 0.02  # a task waiting for its token looks at the pool's stop flag this often


def new_loop() -> tuple[asyncio.AbstractEventLoop, str]:
    """A fresh event loop: uvloop's if it is installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop(), "asyncio"
    return uvloop.new_event_loop(), "uvloop"


def failure(
    row: int, exc: BaseException, state: WorkerState, scope: Any, is_permanent: Any
) -> Failure:
    """Classify an attempt's error: its deadline passed (TIMEOUT), the pool stopped it
    (CANCELLED), a BaseException (CRASHED), anything else retryable (RETRY)."""
    etype, msg = type(exc).__name__, str(exc)
    if isinstance(exc, TimeoutError) and scope is not None and scope.expired():
        msg = f"attempt exceeded timeout={state.timeout}s; its task was cancelled"
        return Failure(row, TIMEOUT, etype, msg, False, TimeoutError(msg))
    if isinstance(exc, asyncio.CancelledError) or (
        isinstance(exc, Cancelled) and state.cancel_event.is_set()
    ):
        return Failure(row, CANCELLED, etype, msg or "task cancelled", False, Cancelled(msg))
    if not isinstance(exc, Exception):
        return Failure(row, CRASHED, etype, msg, False, exc)
    return Failure(row, RETRY, etype, msg, is_permanent(exc), exc)


class Lane:
    """One worker's batches in flight: the driver thread waits on ``done``. Each
    counter has one writer (the driver thread, or the loop's for ``finished``)."""

    __slots__ = ("done", "finished", "items", "launched", "returned", "sem")

    def __init__(self) -> None:
        self.launched = self.returned = 0  # batches launched / returned to the engine
        self.items = 0  # jobs launched
        self.finished = 0  # jobs that ended (or did not start)
        self.done: queue.SimpleQueue[BatchResult] = queue.SimpleQueue()
        self.sem: Limiter | None = None  # made in the loop's thread


class Limiter:
    """A semaphore whose release is O(1): Python 3.11's ``asyncio.Semaphore`` scans
    all its waiters at each release, quadratic with thousands of queued jobs.

    Example:
        >>> import asyncio
        >>> async def demo():
        ...     lim = Limiter(1)
        ...     await lim.acquire()
        ...     waiter = asyncio.ensure_future(lim.acquire())
        ...     await asyncio.sleep(0)
        ...     lim.release()
        ...     await waiter
        ...     return lim.free
        >>> asyncio.run(demo())
        0
    """

    __slots__ = ("free", "waiters")

    def __init__(self, n: int) -> None:
        self.free = n
        self.waiters: collections.deque[asyncio.Future] = collections.deque()

    async def acquire(self) -> None:
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return
        fut = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # granted, then cancelled: pass it on
                self.release()
            raise

    def release(self) -> None:
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.free += 1


async def wait_turn(batch: Any, i: int, state: WorkerState) -> float:
    """Wait until attempt ``i`` of a paced batch may start (its rate-limit token's
    not-before time, on the run's clock ``state.now``); the seconds waited.

    The task sleeps (``asyncio.sleep``) in slices of at most 20 ms and looks at the
    clock again after each, so it never starts early even when the loop's clock and
    the run's differ; it leaves early if the pool stops (``state.stop`` or its cancel
    event; the caller then does not start the attempt). On a fake clock it jumps the
    clock instead, as :meth:`qlab.ratelimit.PacedBatch.wait_turn` does.

    Example:
        >>> import threading
        >>> from qlab.ratelimit import PacedBatch
        >>> now = [10.0]
        >>> state = WorkerState(0, None, None, threading.Event(), lambda: now[0])
        >>> asyncio.run(wait_turn(PacedBatch(range(1), 1, ["a"], [9.5]), 0, state))
        0.0
    """
    until = batch.not_before[i]
    now = state.now()
    if now >= until:
        return 0.0
    if batch.clock is not None:  # a fake clock: jumped at once, nothing blocks
        return batch.wait_turn(i, state)
    event = state.cancel_event
    while not (state.stop or event.is_set()):
        left = until - state.now()
        if left <= 0:
            break
        await asyncio.sleep(min(left, _SLICE_S))
    return max(state.now() - now, 0.0)


def columns(batch: Batch, rows: list, res: BatchResult, want_results: bool) -> BatchResult:
    """A flight's rows in columns: the jobs that ran (``res.items``, in the batch's
    order) and those that did not start (``res.rest``, back to the queue uncharged).
    A row is ``(t0, t1, value, failure, throttle_s)``; a paced batch's waits go to
    ``res.throttle``, in the rows' order."""
    ran, rest = [], []
    res.results = [] if want_results else None
    throttle = res.throttle
    if throttle is None and getattr(batch, "not_before", None) is not None:
        throttle = res.throttle = [0.0] * len(res.t0)
    for item, row in zip(batch, rows, strict=True):
        if row is None:
            rest.append(item)
            continue
        t0, t1, value, fail, waited = row
        if fail is not None:
            fail.row = len(ran)
            res.failures.append(fail)
        ran.append(item)
        res.t0.append(t0)
        res.t1.append(t1)
        res.cpu.append(math.nan)
        if throttle is not None:
            throttle.append(waited)
        if res.results is not None:
            res.results.append(value)
    res.items, res.rest = Batch.of(ran), Batch.of(rest)
    return res
