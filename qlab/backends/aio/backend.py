"""The asyncio backend: ``async def`` handlers run as tasks on one event loop.

``workers`` is the number of jobs awaiting at once, and it may be 10,000: each worker
is a *lane*, a task that runs one attempt at a time (its number is the trace's
``worker`` and ``qlab.current().worker``), and the lanes are fed by a few driver
threads (:meth:`AsyncioBackend.drivers`: ``min(workers, 2)`` by default), not one
thread each. A driver hands its batches to the event loop, which queues their jobs
and starts lane tasks (:class:`~qlab.backends.aio.parts.Lanes`) while fewer than
``workers`` run; a lane runs queued jobs until none is left, then ends. A job costs
no task of its own. The driver takes more batches ahead while its share of the lanes
has room, and gets each batch back when its last job ends. The loop runs in a thread
of its own (``qlab-asyncio-loop``; uvloop's if it is installed), or is a running loop
the caller gives (``AsyncioBackend(loop=...)``; see :mod:`qlab.aio`)::

    driver thread (a few)                     event loop thread
    ------------------------------            --------------------------------------
    run_batch --call_soon_threadsafe------>   jobs queued; lane tasks (<= workers)
              (and batches taken ahead)       each run them one by one:
                                                  async with asyncio.timeout(timeout):
                                                      await handler(payload)
              <--- feed.done: BatchResult ---  a batch's rows (and lanes) once its
              (ahead=_MORE: come back for      last job ends
               the driver's other batches)

``AsyncioBackend(concurrency=N)`` sets the lanes apart from the workers: the pool's
``workers`` are then its driver threads, and ``N`` lanes run.

Under ``rate_limit=`` a batch is a :class:`qlab.engine.ratelimit.PacedBatch`: each task,
on its lane, sleeps (``asyncio.sleep``) until its attempt's token time on
the run's clock, and the wait is the attempt's ``throttle_s``.

``timeout=`` is ``asyncio.timeout``: a late attempt's task is cancelled at its
deadline and recorded as ``timeout`` (retryable), and nothing is abandoned. A pool
that stops for good (the grace is over, a second Ctrl-C) cancels the running tasks;
a task still running half a second later (a handler slow to cancel: it awaits in its
``except CancelledError``) is not waited for: its attempt gets a ``cancelled`` row
ending then, its batch goes back to its driver, and the loop stops with it.
``qlab.current()`` works inside a coroutine: each lane task sets its state in a
``ContextVar`` (a handler's own context variables, like a thread's, outlive its job
on that lane). CPU time is not measured per attempt (tasks interleave on one
thread): ``cpu_s`` is NaN. A handler that is not ``async def`` is a TypeError at
start, before any job.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from qlab.backends.aio.parts import (
    Feed,
    Flight,
    Lanes,
    columns,
    failure,
    new_loop,
    serve_in_thread,
    wait_turn,
)
from qlab.core.batches import Batch
from qlab.core.checks import check_int, is_async
from qlab.core.codes import CANCELLED
from qlab.core.context import TASK_STATE, Cancelled, WorkerState
from qlab.core.protocol import BatchResult, Failure, JobSpec, Slot

__all__ = ["DRIVERS", "AsyncioBackend", "is_async"]

log = logging.getLogger("qlab")

DRIVERS = 2  # driver threads by default: one settles batches while another feeds
POLL_S = 0.005  # a driver with room in its share of lanes looks for jobs this often
_MORE = Batch(range(0), 1, ())  # "come back for this driver's other batches in flight"
_KILL_WAIT_S = 0.5  # after a stop for good, how long cancelled tasks get to end


class AsyncioBackend:
    """Runs ``async def`` handlers on an event loop: ``workers`` lanes, few threads.

    Args:
        loop: a running event loop (in another thread) to use instead of a fresh one.
        concurrency: lanes, if not the pool's ``workers`` (then each worker is a
            driver thread).
        drivers: the most driver threads (default :data:`DRIVERS`).

    Example:
        >>> import qlab, asyncio
        >>> async def double(x):
        ...     await asyncio.sleep(0)
        ...     return 2 * x
        >>> run = qlab.run(double, range(3), workers=2, backend="asyncio", keep_results=True)
        >>> run.jobs.result.tolist(), run.meta["backend"], run.meta["concurrency"]
        ([0, 2, 4], 'asyncio', 2)
    """

    name = "asyncio"
    can_kill = False
    in_caller = False
    max_workers = 1_000_000  # lanes are tasks started as jobs come: cheap
    runs_coroutines = True  # handlers are ``async def`` (the engine checks before start)
    batch_target_s = 0.02

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        concurrency: int | None = None,
        drivers: int | None = None,
    ) -> None:
        for name, value in (("concurrency", concurrency), ("drivers", drivers)):
            if value is not None:
                check_int(name, value, 1)
        self._given = loop
        self.concurrency = concurrency
        self._most = drivers or DRIVERS
        self._per_feed = 1  # jobs in flight per driver (its share of the lanes)
        self._feeds: dict[int, Feed] = {}
        self._flights: set[Flight] = set()  # batches with jobs not ended
        self._pending: collections.deque[tuple[Flight, int]] = collections.deque()
        self._lane_tasks: dict[int, asyncio.Task] = {}  # lane -> its running task
        self._running: dict[int, tuple[Flight, int, float]] = {}  # lane -> its attempt
        self.lanes: Lanes | None = None
        self._cancel = threading.Event()  # every lane's cancel flag (a pool stop)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._killed = False

    def drivers(self, workers: int) -> int:
        """The engine's driver threads for ``workers`` workers (see the module doc)."""
        return workers if self.concurrency is not None else min(workers, self._most)

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
        self._take_ahead = take_ahead
        # a backend object may serve one pool after another: nothing of the last one
        self._feeds, self._flights, self._lane_tasks, self._running = {}, set(), {}, {}
        self._pending.clear()
        self._cancel, self._killed = threading.Event(), False
        total, drivers = self.concurrency or workers, self.drivers(workers)
        self._per_feed = -(-total // drivers)
        # batches of about 20 ms of work per lane: many jobs run at once
        self.batch_target_s = 0.02 * self._per_feed
        self.lanes = Lanes(total, spec.seed, spec.timeout, self._cancel, spec.clock.now)
        if self._given is not None:
            self.loop, kind = self._given, "given"
        else:
            self.loop, kind = new_loop()
            self._thread = serve_in_thread(self.loop)
        return {
            "startup_s": time.perf_counter() - t,
            "event_loop": kind,
            "drivers": drivers,
            "concurrency": total,
        }

    def new_event(self, worker: int) -> threading.Event:
        return self._cancel

    def run_batch(self, slot: Slot, batch: Batch, res: BatchResult) -> BatchResult:
        """Start ``batch``'s jobs as tasks (and more batches taken ahead while the
        driver's share of lanes has room); return the first of its batches to
        finish, with ``ahead`` set to come back for the others."""
        feed = self._feeds.get(slot.worker)
        if feed is None:
            feed = self._feeds[slot.worker] = Feed()
            if not slot.ema:  # a share of lanes runs at once: take a full share at
                # first, not single jobs until the first batch ends (the engine sizes
                # batches as batch_target_s / ema, and smooths ema as batches end)
                slot.ema = self.batch_target_s / self._per_feed
        if batch is not _MORE:
            self._launch(slot, feed, batch, res)
        while True:
            self._top_up(slot, feed)
            try:  # with room in its share, come back now and then to fill it
                out = feed.done.get(timeout=POLL_S if self._per_feed > 1 else None)
            except queue.Empty:
                continue
            feed.returned += 1
            out.ahead = _MORE if feed.launched > feed.returned else None
            return out

    def _top_up(self, slot: Slot, feed: Feed) -> None:
        """Take more batches while fewer than ``per_feed`` of the driver's jobs are in
        flight."""
        budget = self._per_feed
        while budget > 0 and feed.items - feed.finished < self._per_feed and not slot.state.stop:
            following = self._take_ahead(slot)
            if following is None:
                return
            budget -= len(following)
            self._launch(slot, feed, following, BatchResult())

    def _launch(self, slot: Slot, feed: Feed, batch: Batch, res: BatchResult) -> None:
        feed.launched += 1
        feed.items += len(batch)
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self._start_flight, Flight(batch, res, feed, slot.state))

    def _start_flight(self, flight: Flight) -> None:
        """Queue the batch's jobs for the lanes, and start lane tasks for them while
        fewer than ``workers`` run (in the loop's thread)."""
        pending, lanes = self._pending, self.lanes
        assert lanes is not None
        pending.extend([(flight, i) for i in range(len(flight.batch))])
        self._flights.add(flight)
        create = self.loop.create_task  # type: ignore[union-attr]
        for _ in range(len(pending)):
            lane = lanes.take()
            if lane is None:
                break
            self._lane_tasks[lane.worker] = create(self._lane(lane))
        if self._killed:  # the pool stopped for good meanwhile
            self._cancel_all()

    async def _lane(self, lane: WorkerState) -> None:
        """A lane: run queued jobs one at a time until none is left. (A task per
        lane, not per job: a job costs no task, and no context copy.)"""
        pending, spec = self._pending, self.spec
        handler, timeout, now = spec.handler, spec.timeout, lane.now
        TASK_STATE.set(lane)
        try:
            while pending:
                flight, i = pending.popleft()
                row, claimed = None, False
                try:
                    job_id, attempt, payload = flight.batch[i]
                    waited = 0.0
                    if flight.paced:  # wait for the attempt's rate-limit token
                        waited = await wait_turn(flight.batch, i, flight.driver)
                        if self._cancel.is_set():
                            continue
                    if flight.driver.stop:
                        continue  # the pool stops: the job goes back (row None)
                    t0 = now()
                    lane.cur = (job_id, attempt, t0)
                    self._running[lane.worker], claimed = (flight, i, t0), True
                    value = fail = scope = None
                    try:
                        if timeout is None:
                            value = await handler(payload)
                        else:
                            async with asyncio.timeout(timeout) as scope:
                                value = await handler(payload)
                    except KeyboardInterrupt:
                        raise
                    except BaseException as exc:
                        fail = failure(0, exc, lane, scope, spec.is_permanent)
                    row = (t0, now(), value, fail, waited, lane.worker)
                finally:  # unless _reap gave the attempt its row already
                    if not claimed or self._running.pop(lane.worker, None) is not None:
                        self._done(flight, i, row)
                if self._killed:
                    break  # the pool stopped for good: end the lane
        finally:
            del self._lane_tasks[lane.worker]
            self.lanes.give(lane)  # type: ignore[union-attr]

    def _done(self, flight: Flight, i: int, row: tuple | None) -> None:
        """Row ``i`` of a flight; the last one hands the rows to the driver."""
        flight.rows[i] = row
        flight.feed.finished += 1
        flight.left -= 1
        if not flight.left and not flight.settled:
            flight.settled = True
            self._flights.discard(flight)
            res = columns(flight.batch, flight.rows, flight.res, self.spec.want_results)
            flight.feed.done.put(res)

    def _cancel_all(self) -> None:
        """After a kill: cancel the lanes; then hand over what they left."""
        tasks = list(self._lane_tasks.values())
        for task in tasks:
            task.cancel()
        self.loop.create_task(self._reap(tasks))  # type: ignore[union-attr]

    async def _reap(self, tasks: list[asyncio.Task]) -> None:
        """Jobs still queued when the lanes ended (a lane cancelled before it
        started, or between attempts) did not run: they go back (row None)."""
        if tasks:
            await asyncio.wait(tasks, timeout=_KILL_WAIT_S)
        while self._pending:
            self._done(*self._pending.popleft(), None)
        now = self.spec.clock.now()
        if self._running:
            log.warning(
                "%d task(s) did not end within %ss of their cancellation: their "
                "attempts are recorded as cancelled",
                len(self._running),
                _KILL_WAIT_S,
            )
        for lane, (flight, i, t0) in list(self._running.items()):
            # a handler slow to cancel: its attempt ends now, as cancelled, with a row
            del self._running[lane]
            why = f"stopped; the task did not end within {_KILL_WAIT_S}s of its cancellation"
            fail = Failure(0, CANCELLED, "CancelledError", why, False, Cancelled(why))
            self._done(flight, i, (t0, now, None, fail, 0.0, lane))

    def runs_here(self) -> bool:
        """Is the calling thread the event loop's (where the handlers run)?"""
        loop = self.loop
        if loop is None or loop.is_closed():
            return False
        try:
            return asyncio.get_running_loop() is loop
        except RuntimeError:
            return False

    def overdue(self, slot: Slot, now: float) -> None:
        """Nothing to take away: a late attempt's task is cancelled at its deadline."""
        return None

    def stop_intake(self) -> None:
        """Tasks see their driver's ``state.stop`` themselves."""

    def stop_worker(self, slot: Slot) -> None:
        """Nothing to stop (timeouts cancel their task)."""

    def close(self, kill: bool = False) -> None:
        """With ``kill``, cancel the running tasks (the first time; their drivers then
        return); else stop the loop and join its thread."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        if kill and not self._killed:
            self._killed = True
            if self._flights:  # their drivers then return
                loop.call_soon_threadsafe(self._cancel_all)
                return
        if self._thread is None:  # the caller's loop: leave it running
            return
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(5.0)
        if self._thread.is_alive():  # a handler blocks the loop without awaiting
            log.warning("the event loop did not stop: a handler blocks it; abandoned")
            self._thread.name = "qlab-abandoned-asyncio-loop"

    def info(self) -> dict[str, Any]:
        """How many lanes ever ran a job (``lanes_used``)."""
        return {} if self.lanes is None else {"lanes_used": self.lanes.made}
