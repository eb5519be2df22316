"""The asyncio backend's parts: the event loop, a driver's batches in flight, the
pool's lanes, the wait for a rate-limit token, and a flight's rows in columns (see
:mod:`qlab.backends.asyncio`).
Which handlers are async: :func:`qlab.core.checks.is_async`; each task's ``qlab.current()``:
``qlab.core.context.TASK_STATE``.

Example:
    >>> loop, kind = new_loop()
    >>> loop.close(); kind in ("asyncio", "uvloop")
    True
"""

from __future__ import annotations

import asyncio
import math
import queue
import threading
from typing import Any

from qlab.core.batches import Batch
from qlab.core.codes import CANCELLED, CRASHED, RETRY, TIMEOUT
from qlab.core.context import Cancelled, WorkerState
from qlab.core.protocol import BatchResult, Failure

__all__ = [
    "Feed",
    "Flight",
    "Lanes",
    "columns",
    "failure",
    "new_loop",
    "serve_in_thread",
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


def serve_in_thread(loop: asyncio.AbstractEventLoop) -> threading.Thread:
    """Run ``loop`` forever in a ``qlab-asyncio-loop`` thread (started, and running,
    when this returns); once stopped, the loop closes itself."""
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    loop.set_exception_handler(_quiet_dropped_lanes)
    thread = threading.Thread(target=serve, name="qlab-asyncio-loop", daemon=True)
    thread.start()
    ready.wait()
    return thread


def _quiet_dropped_lanes(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's error handler: a lane task left behind when the pool stopped for good
    (its handler did not end after cancellation; the backend logged it and gave its
    attempt a row) is dropped with the loop, silently; anything else is reported."""
    task = context.get("task")
    coro = task.get_coro() if isinstance(task, asyncio.Task) else None
    if "destroyed but it is pending" in context.get("message", "") and (
        getattr(coro, "__qualname__", "") == "AsyncioBackend._lane"
    ):
        return
    loop.default_exception_handler(context)


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


class Feed:
    """One driver's batches in flight: the driver thread waits on ``done``. Each
    counter has one writer (the driver thread, or the loop's for ``finished``)."""

    __slots__ = ("done", "finished", "items", "launched", "returned")

    def __init__(self) -> None:
        self.launched = self.returned = 0  # batches launched / returned to the engine
        self.items = 0  # jobs launched
        self.finished = 0  # jobs that ended (or did not start)
        self.done: queue.SimpleQueue[BatchResult] = queue.SimpleQueue()


class Flight:
    """One batch's jobs on the lanes: each fills its row; the last to end hands the
    rows over. ``paced``: the batch carries rate-limit tokens."""

    __slots__ = ("batch", "driver", "feed", "left", "paced", "res", "rows", "settled")

    def __init__(self, batch: Batch, res: BatchResult, feed: Feed, driver: WorkerState) -> None:
        self.batch, self.res, self.feed = batch, res, feed
        self.driver = driver  # the driver's state: its ``stop`` says the pool stops
        self.rows: list[Any] = [None] * len(batch)
        self.left = len(batch)  # jobs not ended yet
        self.paced = getattr(batch, "not_before", None) is not None
        self.settled = False


class Lanes:
    """The pool's ``n`` lanes: each lane is a task that runs one attempt at a time;
    its number is the attempts' ``worker`` and its state is what ``qlab.current()``
    reads. A lane's state is made when first needed and kept for the next lane task
    that takes it; the lane given back last is taken first, so a pool with more lanes
    than jobs uses few of them.

    Example:
        >>> import threading
        >>> lanes = Lanes(2, None, None, threading.Event(), lambda: 0.0)
        >>> a, b = lanes.take(), lanes.take()
        >>> lanes.take() is None, a.worker, b.worker
        (True, 0, 1)
        >>> lanes.give(a); lanes.take().worker, lanes.running
        (0, 2)
    """

    __slots__ = ("_args", "free", "made", "n", "running")

    def __init__(self, n: int, seed: int | None, timeout: float | None, event: Any, now: Any):
        self.n = n
        self._args = (seed, timeout, event, now)
        self.made = 0  # lanes made so far
        self.running = 0  # lanes taken (a task runs each)
        self.free: list[WorkerState] = []  # a stack

    def take(self) -> WorkerState | None:
        """A free lane, or None if all ``n`` run."""
        if self.running >= self.n:
            return None
        self.running += 1
        if self.free:
            return self.free.pop()
        self.made += 1
        return WorkerState(self.made - 1, *self._args)

    def give(self, lane: WorkerState) -> None:
        """Give a lane back (its task ends)."""
        lane.cur = None
        self.running -= 1
        self.free.append(lane)


async def wait_turn(batch: Any, i: int, state: WorkerState) -> float:
    """Wait until attempt ``i`` of a paced batch may start (its rate-limit token's
    not-before time, on the run's clock ``state.now``); the seconds waited.

    The task sleeps (``asyncio.sleep``) in slices of at most 20 ms and looks at the
    clock again after each, so it never starts early even when the loop's clock and
    the run's differ; it leaves early if the pool stops (``state.stop`` or its cancel
    event; the caller then does not start the attempt). On a fake clock it jumps the
    clock instead, as :meth:`qlab.engine.ratelimit.PacedBatch.wait_turn` does.

    Example:
        >>> import threading
        >>> from qlab.engine.ratelimit import PacedBatch
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
    A row is ``(t0, t1, value, failure, throttle_s, lane)``; a paced batch's waits go to
    ``res.throttle``, in the rows' order."""
    ran: list[tuple] = []
    rest: list[tuple] = []
    lanes = res.lanes = []
    res.results = [] if want_results else None
    throttle = res.throttle
    if throttle is None and getattr(batch, "not_before", None) is not None:
        throttle = res.throttle = [0.0] * len(res.t0)
    for item, row in zip(batch, rows, strict=True):
        if row is None:
            rest.append(item)
            continue
        t0, t1, value, fail, waited, lane = row
        if fail is not None:
            fail.row = len(ran)
            res.failures.append(fail)
        ran.append(item)
        res.t0.append(t0)
        res.t1.append(t1)
        res.cpu.append(math.nan)
        lanes.append(lane)
        if throttle is not None:
            throttle.append(waited)
        if res.results is not None:
            res.results.append(value)
    res.items, res.rest = Batch.of(ran), Batch.of(rest)
    return res
