"""The drivers: one loop per worker that takes batches, runs them on the backend and
settles them; and the paths that take a running batch away (timeout, abort).

Each worker has a driver thread (``qlab-worker-N``) that loops: take a batch from the
queue, hand it to the backend, settle what came back (:func:`qlab.core.settle.settle`,
applied by the queue). A backend with ``in_caller`` (inline) has no driver thread:
the caller's thread runs :meth:`Drivers.drive` whenever it would wait.

The workload's own resources (a server, a temporary folder) follow the pool: the
handler's ``__qlab_open__()`` runs in the parent before any worker starts, its
``__qlab_close__()`` after every worker is gone, on every path out.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from qlab.core.batches import EMPTY, Batch, sizer
from qlab.core.context import WorkerState
from qlab.core.protocol import BackendLost, BatchResult, Slot, crash_row
from qlab.core.settle import Settlement, settle
from qlab.engine.coordinator import Coordinator, progress_counts
from qlab.engine.futures import admit, resolve
from qlab.engine.parts import Parts
from qlab.engine.ratelimit import PacedBatch
from qlab.engine.speeds import Speeds
from qlab.engine.takeover import Takeover
from qlab.queues.memory import Phase
from qlab.trace.recorder import Recorder

__all__ = ["Drivers"]

log = logging.getLogger("qlab")


class Drivers(Takeover):
    """The workers of one pool, as the engine drives them, given the pool's parts."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.q = parts.queue
        self.backend = parts.backend
        self.spec = parts.spec
        self.slots: list[Slot] = []
        self.abandoned = 0  # threads left running a timed-out attempt
        self.results_dropped = 0  # results of jobs whose Future was cancelled meanwhile
        self.joined = False
        self._turn = 0  # the inline backend's next lane
        self.hard = False  # running attempts were stopped (workers are killed, not parked)
        self.coordinator: Coordinator | None = None
        self._starter: threading.Thread | None = None  # starts the drivers after the first
        self._opened: Any = None
        self._closed = False
        self.started = False
        # seconds per attempt of each kind of job (a backend whose lanes run a batch at
        # once takes the worker's own speed for a kind never measured)
        self.speeds = Speeds(prior=getattr(self.backend, "drivers", None) is not None)
        self._here = threading.local()  # a driver thread's slot

    # -- start -------------------------------------------------------------------------

    def start(self) -> None:
        """Open the workload, start the backend, the drivers and the coordinator."""
        parts, spec = self.parts, self.spec
        opener = getattr(spec.handler, "__qlab_open__", None)
        if callable(opener):
            opener()
            self._opened = spec.handler
        parts.meta.update(self.backend.start(spec, parts.workers, self.take_ahead))
        self.started = True
        drivers = getattr(self.backend, "drivers", None)  # lanes behind few drivers
        n = parts.workers if drivers is None else min(parts.workers, drivers(parts.workers))
        for w in range(max(n, 1)):
            rec = Recorder(w, parts.keep_results)
            parts.trace.recorders.append(rec)
            self.start_slot(w, rec, run=w == 0)
        parts.trace.origin = spec.clock.now()
        # the first submits wait for an idle worker to take their job (a thread each)
        self.q.handoffs = 0 if self.backend.in_caller or drivers is not None else n
        progress = self.emit_progress if len(parts.hooks) else None
        self.coordinator = Coordinator(self.q, spec.clock, spec.timeout, self.overdue, progress)
        if self.backend.in_caller or not getattr(self.backend, "start_later", False):
            self._start_later(self.slots[1:])
            return
        # the other threads start while the first worker already runs jobs (each start
        # waits for its thread to run: ~0.1 ms on a quiet machine, ms on a busy one)
        self._starter = threading.Thread(
            target=self._start_later, args=(self.slots[1:],), name="qlab-starter", daemon=True
        )
        self._starter.start()

    def _start_later(self, slots: list[Slot]) -> None:
        try:
            for slot in slots:
                if self.slots[slot.worker] is slot and not self.backend.in_caller:
                    self._start_thread(slot)
        finally:
            if self.coordinator is not None:  # set by start() before this thread starts
                self.coordinator.start()

    def _start_thread(self, slot: Slot) -> None:
        thread = threading.Thread(
            target=self._loop, args=(slot,), name=f"qlab-worker-{slot.worker}", daemon=True
        )
        thread.start()
        slot.thread = thread  # set once started: whoever joins it may

    def start_slot(self, worker: int, rec: Recorder, run: bool = True) -> Slot:
        state = WorkerState(
            worker,
            self.spec.seed,
            self.spec.timeout,
            self.backend.new_event(worker),
            self.spec.clock.now,
        )
        slot = Slot(worker, state, rec)
        if len(self.slots) > worker:
            self.slots[worker] = slot
        else:
            self.slots.append(slot)
        if run and not self.backend.in_caller:
            self._start_thread(slot)
        return slot

    # -- the loop ----------------------------------------------------------------------

    def _loop(self, slot: Slot) -> None:
        slot.state.bind()
        self._here.slot = slot  # for runs_here(): this thread runs the slot's jobs
        batch = self._next(slot)
        res: BatchResult | None
        while batch is not None:
            res = self._run(slot, batch)
            if res.abandoned or not self._settle(slot, batch, res):
                return  # the watchdog took this batch over
            ahead = res.ahead
            # hold no payload or result of a settled batch while waiting for the next
            batch = res = slot.batch = slot.res = None
            batch = self._next(slot, ahead)

    def drive(self) -> None:
        """Run every ready batch in the calling thread (backends with ``in_caller``),
        handing batches to the workers in turn: one thread, ``workers`` lanes."""
        if not self.slots:
            return
        while True:
            slot = self.slots[self._turn % len(self.slots)]
            batch = self._next(slot, block=False)
            if batch is None:
                return
            self._turn += 1
            self._settle(slot, batch, self._run(slot, batch))
            # between batches, the caller's thread looks for Ctrl-C, SIGTERM and stop=
            self.parts.interrupts.check()

    def _run(self, slot: Slot, batch: Batch) -> BatchResult:
        res = BatchResult()
        slot.batch, slot.res = batch, res
        try:
            return self.backend.run_batch(slot, batch, res)
        except KeyboardInterrupt:
            raise
        except BackendLost as exc:  # not the jobs' fault: nothing is charged
            log.error("worker %d: %s", slot.worker, exc)
            self.parts.interrupts.fail(exc)  # the caller stops the pool and raises it
            slot.state.stop = True
            lost = BatchResult(results=[] if self.spec.want_results else None)
            lost.items, lost.rest = EMPTY, exc.rest
            return lost
        except BaseException as exc:  # the backend itself failed (the loop catches handlers')
            log.exception("worker %d: the backend failed running a batch", slot.worker)
            cur = slot.state.running()
            crash_row(res, exc, cur[2] if cur else None, self.spec.clock.now())
            return res

    def _next(self, slot: Slot, ahead: Batch | None = None, block: bool = True) -> Batch | None:
        """The slot's next batch: the one its backend took ahead (admitted then), or
        one from the queue, without the jobs whose Futures were cancelled."""
        if ahead is not None:
            return ahead
        while True:
            if block:
                may = lambda: not (slot.abandoned or slot.state.stop)  # noqa: E731
                batch = self.q.take(self._size(slot), may)
            else:
                batch = self.q.take_nowait(self._size(slot))
            if batch is None:
                return None
            batch = self._admit(batch, start=True)
            if batch is not None:
                return batch

    def take_ahead(self, slot: Slot) -> Batch | None:
        """For pipelining backends: the slot's next batch, if one is ready now, and
        unless the running batch is of a kind whose speed is unknown (no call waits
        behind an Executor's function that may take long: another worker may take it)."""
        if slot.abandoned or slot.state.stop:
            return None
        if slot.batch is not None and not self.speeds.known(slot.batch.kind):
            return None
        batch = self.q.take_nowait(self._size(slot))
        return None if batch is None else self._admit(batch, start=False)

    def _admit(self, batch: Batch, start: bool) -> Batch | None:
        """A taken batch without the jobs whose Futures were cancelled (see
        :func:`qlab.engine.futures.admit`), paced; None (and the take undone) if none is left."""
        batch = admit(self.parts.futures, self.q, batch, start=start)
        if not len(batch):
            self.q.untake()
            return None
        return self._pace(batch)

    def _pace(self, batch: Batch) -> Batch:
        """With ``rate_limit=``: reserve a token per job; the batch carries their
        not-before times to its worker (see :mod:`qlab.ratelimit`)."""
        limiter = self.parts.limiter
        if limiter is None:
            return batch
        return PacedBatch.pace(batch, limiter, self.spec.clock)

    def _size(self, slot: Slot) -> Any:
        """How many jobs the slot takes (see :func:`qlab.core.batches.sizer`). A pipelining
        backend's batches are capped so that every worker's batches in flight, and one
        more each, fit in the queue's capacity: its next batch is ready to send ahead."""
        limiter = self.parts.limiter
        cap = None if limiter is None else limiter.limit.batch_cap  # no tokens far ahead
        ahead = getattr(self.backend, "in_flight", 1)  # batches a worker holds at once
        room = getattr(self.q, "capacity", 0) // ((ahead + 1) * len(self.slots))
        if ahead > 1 and room > 0 and not self.parts.batch_size:  # batch_size= is kept
            cap = room if cap is None else min(cap, room)
        left = getattr(self.backend, "batch_room", None)  # jobs the worker may still run
        left = left(slot) if left is not None else None
        if left is not None:
            cap = left if cap is None else min(cap, left)
        workers, target = len(self.slots), self.backend.batch_target_s
        if self.parts.batch_size:
            return sizer(self.parts.batch_size, target, slot.ema, workers, cap)
        return self.speeds.sizer(slot, workers, target, cap)

    # -- settling ----------------------------------------------------------------------

    def _settle(self, slot: Slot, batch: Batch, res: BatchResult) -> bool:
        """Settle what a driver's batch did (rows, and the jobs that did not run)."""
        n = len(res)
        whole = n == len(batch)
        items = (batch if whole else batch[:n]) if res.items is None else res.items
        rest = (EMPTY if whole else batch[n:]) if res.rest is None else res.rest
        return self.commit(slot, items, res, rest, from_driver=True)

    def commit(
        self, slot: Slot, items: Batch, res: BatchResult, rest: Batch, from_driver: bool = False
    ) -> bool:
        """Settle rows ``res`` of ``items`` and the unrun ``rest``; record, requeue,
        resolve futures. False if the slot was abandoned meanwhile (its rows were
        settled by whoever took them)."""
        parts, n = self.parts, len(items)
        stopping = self.q.phase >= Phase.CANCELLING
        s = settle(items, res, parts.retry, parts.seed, stopping, rest)
        s.worker = slot.worker
        if n:
            self.speeds.note(slot, items.kind, (res.t1[n - 1] - res.t0[0]) / n)

        def record(s: Settlement) -> bool:
            if from_driver and slot.abandoned:
                return False
            results = res.results[:n] if parts.keep_results and res.results else None
            slot.rec.add(s.items, res, n, s.out, s.errors, s.backoff, results)
            return True

        if not self.q.apply(s, record):
            return False
        for level, msg, args in s.logs:
            log.log(level, msg, *args)
        if parts.futures:
            self.results_dropped += resolve(parts.futures, s)
        return True

    # -- timeouts and stops ------------------------------------------------------------

    def overdue(self, now: float) -> None:
        """The coordinator's deadline check: take attempts past their deadline."""
        for slot in list(self.slots):
            claim = self.backend.overdue(slot, now)
            if claim is not None:
                self.time_out(slot, *claim)

    def cancel_pending(self) -> None:
        """Cancel the jobs that wait; running attempts finish, and nothing more starts."""
        if self.q.advance_phase(Phase.CANCELLING) >= Phase.CANCELLING:
            return
        for slot in self.slots:
            slot.state.stop = True  # leave the batch after the running attempt
        if self.started:
            self.backend.stop_intake()
        ids = self.q.cancel_waiting()
        futures = self.parts.futures
        if futures:
            for job_id in ids:
                fut = futures.pop(job_id, None)
                if fut is not None:
                    fut.cancel()

    def join(self) -> None:
        """Wait for every driver thread (not the abandoned ones) and the coordinator."""
        me = threading.current_thread()
        if self._starter is not None and self._starter is not me:
            self._starter.join()
        for slot in list(self.slots):
            if slot.thread is not None and slot.thread is not me and not slot.abandoned:
                slot.thread.join()
        if self.coordinator is not None:
            self.coordinator.join()
        self.joined = True

    def runs_here(self) -> bool:
        """Does the calling thread run this pool's jobs (a driver thread, or one the
        backend runs jobs in: the inline caller's, the asyncio loop's)?"""
        slot = getattr(self._here, "slot", None)
        if slot is not None and not slot.abandoned:
            return True
        here = getattr(self.backend, "runs_here", None)
        return bool(self.started and callable(here) and here())

    def close(self) -> None:
        """Release the backend's workers and the workload's resources (once)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.started:
                self.backend.close(kill=self.hard)
        finally:
            closer = getattr(self._opened, "__qlab_close__", None)
            if callable(closer):
                try:
                    closer()
                except Exception:
                    log.exception("the workload's __qlab_close__ failed")

    def emit_progress(self) -> None:
        """Tell the progress hooks the counts so far (see :func:`progress_counts`)."""
        self.parts.hooks.call("on_progress", progress_counts(self.q, self.parts))
