"""The asyncio backend: ``async def`` handlers run as tasks on one event loop.

Each worker is a lane: its driver thread hands its batches to the event loop, where
each job of a batch is a task, at most ``per_lane`` running at once in the lane (one,
so ``workers`` jobs await at once; with ``AsyncioBackend(concurrency=N)``,
``ceil(N / workers)`` each, and the lane takes more batches ahead while it has room,
returning each batch when its last job ends). The loop runs in a thread of its own
(``qlab-asyncio-loop``; uvloop's if it is installed), or is a running loop the caller
gives (``AsyncioBackend(loop=...)``; see :mod:`qlab.aio`)::

    driver thread (one per lane)              event loop thread
    ------------------------------            --------------------------------------
    run_batch --call_soon_threadsafe------>   a task per job (per_lane at once):
              (and batches taken ahead)           async with asyncio.timeout(timeout):
                                                      await handler(payload)
              <--- lane.done: BatchResult ---  a batch's rows once all its jobs end
              (ahead=_MORE: come back for the lane's other batches)

Under ``rate_limit=`` a batch is a :class:`qlab.ratelimit.PacedBatch`: each task,
once it has its place in the lane, sleeps (``asyncio.sleep``) until its attempt's
token time on the run's clock, and the wait is the attempt's ``throttle_s``.

``timeout=`` is ``asyncio.timeout``: a late attempt's task is cancelled at its
deadline and recorded as ``timeout`` (retryable), and nothing is abandoned. A pool
that stops for good (the grace is over, a second Ctrl-C) cancels the running tasks.
``qlab.current()`` works inside a coroutine: each task sees its own job through a
``ContextVar``. CPU time is not measured per attempt (tasks interleave on one
thread): ``cpu_s`` is NaN. A handler that is not ``async def`` is a TypeError at
start, before any job.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from qlab.backends.asyncio_parts import (
    Lane,
    Limiter,
    columns,
    failure,
    new_loop,
    wait_turn,
)
from qlab.backends.base import BatchResult, JobSpec, Slot
from qlab.batches import Batch
from qlab.checks import is_async
from qlab.context import TASK_STATE, WorkerState

__all__ = ["AsyncioBackend", "is_async"]

log = logging.getLogger("qlab")

_POLL_S = 0.005  # a lane with room looks for more jobs this often
_MORE = Batch(range(0), 1, ())  # "come back for this lane's other batches in flight"


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
    runs_coroutines = True  # handlers are ``async def`` (the engine checks before start)
    batch_target_s = 0.02

    def __init__(
        self, loop: asyncio.AbstractEventLoop | None = None, concurrency: int | None = None
    ) -> None:
        if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
            raise ValueError(f"concurrency must be an int >= 1 or None, got {concurrency!r}")
        self._given = loop
        self.concurrency = concurrency
        self._per_lane = 1
        self._lanes: dict[int, Lane] = {}
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
        self._take_ahead = take_ahead
        if self.concurrency is not None:
            self._per_lane = -(-self.concurrency // workers)
            # batches of about 20 ms of work per job slot: many jobs run at once
            self.batch_target_s = 0.02 * self._per_lane
        if self._given is not None:
            self.loop, kind = self._given, "given"
        else:
            self.loop, kind = new_loop()
            ready = threading.Event()
            self._thread = threading.Thread(
                target=self._serve, args=(ready,), name="qlab-asyncio-loop", daemon=True
            )
            self._thread.start()
            ready.wait()
        meta: dict[str, Any] = {"startup_s": time.perf_counter() - t, "event_loop": kind}
        if self.concurrency is not None:
            meta["lanes"], meta["concurrency"] = workers, self.concurrency
        return meta

    def _serve(self, ready: threading.Event) -> None:
        loop = self.loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def new_event(self, worker: int) -> threading.Event:
        return threading.Event()

    def run_batch(self, slot: Slot, batch: Batch, res: BatchResult) -> BatchResult:
        """Start ``batch``'s jobs as tasks (and, with ``concurrency``, more batches
        taken ahead while the lane has room); return the first of the lane's batches
        to finish, with ``ahead`` set to come back for the others."""
        assert self.loop is not None
        lane = self._lanes.setdefault(slot.worker, Lane())
        if batch is not _MORE:
            self._launch(slot, lane, batch, res)
        while True:
            self._top_up(slot, lane)
            try:  # with room in the lane, come back now and then to fill it
                out = lane.done.get(timeout=_POLL_S if self._per_lane > 1 else None)
            except queue.Empty:
                continue
            lane.returned += 1
            out.ahead = _MORE if lane.launched > lane.returned else None
            return out

    def _top_up(self, slot: Slot, lane: Lane) -> None:
        """Take more batches while the lane runs fewer than ``per_lane`` jobs (while
        job speed is unknown, batches are single jobs: take a few dozen at most)."""
        budget = 64 if slot.ema == 0 else self._per_lane
        while budget > 0 and lane.items - lane.finished < self._per_lane and not slot.state.stop:
            following = self._take_ahead(slot)
            if following is None:
                return
            budget -= len(following)
            self._launch(slot, lane, following, BatchResult())

    def _launch(self, slot: Slot, lane: Lane, batch: Batch, res: BatchResult) -> None:
        lane.launched += 1
        lane.items += len(batch)
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self._start_flight, slot, lane, batch, res)

    def _start_flight(self, slot: Slot, lane: Lane, batch: Batch, res: BatchResult) -> None:
        if lane.sem is None:
            lane.sem = Limiter(self._per_lane)
        task = self.loop.create_task(self._flight(slot.state, lane, batch, res))  # type: ignore[union-attr]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flight(self, state: WorkerState, lane: Lane, batch: Batch, res: BatchResult) -> None:
        """Run a batch's jobs, at most ``per_lane`` at a time in the lane; hand the
        rows (in the batch's order; jobs that did not start go back) to the lane."""
        paced = batch if getattr(batch, "not_before", None) is not None else None
        if len(batch) == 1:
            rows: list[Any] = [None]
            try:
                rows[0] = await self._one(state, lane, batch[0], paced, 0)
            finally:
                lane.done.put(columns(batch, rows, res, self.spec.want_results))
            return
        tasks = [
            asyncio.ensure_future(self._one(state, lane, item, paced, i))
            for i, item in enumerate(batch)
        ]
        try:
            await asyncio.wait(tasks)
        except asyncio.CancelledError:  # the pool stops for good: so do the attempts
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)  # each records its cancelled attempt
        finally:
            rows = [
                None if t.cancelled() or not t.done() or t.exception() else t.result()
                for t in tasks
            ]
            lane.done.put(columns(batch, rows, res, self.spec.want_results))

    async def _one(
        self, lane_state: WorkerState, lane: Lane, item: tuple, paced: Batch | None, i: int
    ) -> tuple | None:
        """One attempt: (t0, t1, value, failure, throttle_s), or None if it did not
        start. ``paced``: the batch, if it carries rate-limit tokens (row ``i``'s)."""
        try:
            return await self._attempt(lane_state, lane, item, paced, i)
        finally:
            lane.finished += 1

    async def _attempt(
        self, lane_state: WorkerState, lane: Lane, item: tuple, paced: Batch | None, i: int
    ) -> tuple | None:
        job_id, attempt, payload = item
        spec = self.spec
        assert lane.sem is not None
        await lane.sem.acquire()
        try:
            if lane_state.stop:
                return None
            state = WorkerState(
                lane_state.worker, spec.seed, spec.timeout, lane_state.cancel_event, spec.clock.now
            )
            waited = 0.0
            if paced is not None:  # rate limit: wait for this attempt's token, holding
                # its place in the lane as a worker thread would (tokens are in order)
                waited = await wait_turn(paced, i, lane_state)
                if lane_state.stop or state.cancel_event.is_set():
                    return None
            TASK_STATE.set(state)
            t0 = state.now()
            state.cur = (job_id, attempt, t0)
            value = fail = None
            scope = None
            try:
                if spec.timeout is None:
                    value = await spec.handler(payload)
                else:
                    async with asyncio.timeout(spec.timeout) as scope:
                        value = await spec.handler(payload)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                fail = failure(0, exc, state, scope, spec.is_permanent)
            return t0, state.now(), value, fail, waited
        finally:
            lane.sem.release()

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
        if kill and self._tasks and not self._cancelled_once:  # their lanes then return
            self._cancelled_once = True
            loop.call_soon_threadsafe(lambda: [t.cancel() for t in list(self._tasks)])
            return
        if self._thread is None:  # the caller's loop: leave it running
            return
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(5.0)
        if self._thread.is_alive():  # a handler blocks the loop without awaiting
            log.warning("the event loop did not stop: a handler blocks it; abandoned")
            self._thread.name = "qlab-abandoned-asyncio-loop"

    def info(self) -> dict[str, Any]:
        return {}
