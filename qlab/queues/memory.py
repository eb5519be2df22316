"""The job queue: the one lock, the ready jobs, the delayed retries and the capacity.

Everything that changes a job's fate happens here, under one lock: jobs come in
(:meth:`MemoryQueue.put`), workers take batches (:meth:`~MemoryQueue.take`),
settlements are applied (:meth:`~MemoryQueue.apply`), due retries move to the ready
queue (:meth:`~MemoryQueue.promote`), and a stopping pool cancels what waits
(:meth:`~MemoryQueue.cancel_waiting`). The pool's lifecycle is the queue's
:class:`Phase`, because every decision that depends on it (may a job be queued
again? may a worker take one?) is made under this lock.

:class:`JobQueue` is the interface that durable queues (SQLite, Redis) implement
too; :class:`MemoryQueue` keeps it all in memory, in columns.

Example:
    >>> q = MemoryQueue(capacity=10)
    >>> q.put([10, 20], now=0.0)
    range(0, 2)
    >>> q.counts()["unfinished"], len(q.take_nowait(k=5))
    (2, 2)
"""

from __future__ import annotations

import enum
import heapq
import itertools
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from qlab.core.batches import Batch, ReadyQueue
from qlab.core.codes import ST_CANCELLED, ST_FAILED
from qlab.core.context import current_or_none
from qlab.core.settle import Settlement

__all__ = ["SHUT", "JobQueue", "MemoryQueue", "Phase"]

SHUT = "cannot schedule new futures after shutdown"  # concurrent.futures' own words
_HANDOFF_S = 0.5  # at most this long a first put waits for a worker to take it


class Phase(enum.IntEnum):
    """A pool's lifecycle, in order; it only moves forward.

    OPEN: takes jobs. DRAINING: no new jobs; queued and running ones finish.
    CANCELLING: queued jobs are cancelled; running attempts finish. STOPPING:
    running attempts are stopped too. JOINED: workers are gone.
    """

    OPEN = 0
    DRAINING = 1
    CANCELLING = 2
    STOPPING = 3
    JOINED = 4


class JobQueue(Protocol):
    """What the engine needs of a queue (in memory, or durable)."""

    phase: Phase
    lock: Any  # guards everything below, and the recorders the engine writes into
    submitted: array  # per job id: the clock reading when it was queued
    status: bytearray  # per job id: ST_OPEN, ST_FAILED or ST_CANCELLED
    unfinished: int
    end: float | None
    batches: int
    capacity: int  # jobs it holds at most
    refill: int  # the feeder waits for this much room at once
    workers: int  # how many to wake for a batch of jobs (the pool sets it)

    def put(
        self,
        payloads: Sequence[Any],
        now: float,
        *,
        on_ids: Any = None,
        timeout: Any = None,
        kind: Any = None,
    ) -> range | None: ...
    def space(self) -> int: ...
    def wait_space(self, free: int, timeout: float | None) -> bool: ...
    def take(self, k: Callable[[int], int], may: Callable[[], bool]) -> Batch | None: ...
    def take_nowait(self, k: int | Callable[[int], int] = 1) -> Batch | None: ...
    def untake(self) -> None: ...
    def apply(self, s: Settlement, record: Callable[[Settlement], Any]) -> bool: ...
    def promote(self, now: float) -> float | None: ...
    def advance_phase(self, phase: Phase) -> Phase: ...
    def cancel_waiting(self) -> list[int]: ...
    def cancel_jobs(self, ids: Sequence[int]) -> None: ...
    def cancel_unsubmitted(self, total: int) -> None: ...
    def wait_idle(self, timeout: float | None) -> bool: ...
    def wait_ready(self, timeout: float | None) -> None: ...
    def counts(self) -> dict[str, int]: ...

    # optional: close() after the pool has joined its workers (durable queues)


class MemoryQueue:
    """The in-memory :class:`JobQueue`.

    Args:
        capacity: jobs in flight at most (queued, running or waiting to retry).
        refill: the feeder waits for this much room at once (a quarter of capacity),
            so that it wakes once per many finished jobs, not once per job.
        now: the run's clock (notes when the last job finished).
    """

    def __init__(
        self, capacity: int, refill: int | None = None, now: Callable[[], float] = time.perf_counter
    ) -> None:
        self.capacity = capacity
        self.refill = refill or max(1, capacity // 4)
        self._now = now
        self.lock = threading.Lock()
        self.work = threading.Condition(self.lock)  # workers wait for ready jobs
        self._space = threading.Condition(self.lock)  # submitters wait for capacity
        self._roomy = threading.Condition(self.lock)  # the feeder waits for `refill`
        self._idle = threading.Condition(self.lock)  # shutdown waits for no unfinished
        self._handed = threading.Condition(self.lock)  # a submitter waits for a worker
        self.handoffs = 0  # puts that wait for a worker to take (the drivers set it)
        self.tick = threading.Condition(self.lock)  # the coordinator's alarm
        self.phase = Phase.OPEN
        self.ready = ReadyQueue()
        self.delayed: list[tuple[float, int, tuple]] = []  # heap of (due, seq, item)
        self._seq = itertools.count()
        self.submitted = array("d")
        self.status = bytearray()
        self.unfinished = 0
        self.busy = 0  # batches taken and not yet settled
        self.batches = 0  # batches taken in all (run.meta["batches"])
        self._counts = dict.fromkeys(("ok", "failed", "cancelled", "retries", "attempts"), 0)
        self.end: float | None = None  # the clock reading when the last job finished
        self.workers = 1  # how many to wake for a batch of jobs

    # -- intake --------------------------------------------------------------------

    def put(
        self,
        payloads: Sequence[Any],
        now: float,
        *,
        on_ids: Callable[[range], None] | None = None,
        timeout: float | None = None,
        kind: Any = None,
        hand_off: bool = True,
    ) -> range | None:
        """Register and queue new jobs, waiting up to ``timeout`` for room; their ids,
        or None if there was no room in time. ``on_ids(ids)`` runs under the lock (so
        that a caller can file futures before any of these jobs can finish); ``kind``."""
        n = len(payloads)
        cond = self._space if n == 1 else self._roomy
        with self.lock:
            while True:
                if self.phase >= Phase.DRAINING:
                    raise RuntimeError(SHUT)
                if self.unfinished + n <= self.capacity or not self.unfinished:
                    break
                if not cond.wait(timeout) and self.unfinished + n > self.capacity:
                    return None
            base = len(self.submitted)
            ids = range(base, base + n)
            self.submitted.extend(array("d", [now]) * n)
            self.status.extend(bytes(n))
            self.unfinished += n
            if on_ids is not None:
                on_ids(ids)
            self._put(Batch(ids, 1, payloads, kind))
            # the first puts (one per worker, not a worker's own) let an idle worker take
            # their jobs, as ThreadPoolExecutor starts a thread per submit
            if hand_off and self.handoffs > 0 and current_or_none() is None:
                self.handoffs -= 1
                self._wait_taken(self.batches, _HANDOFF_S)
        return ids

    def space(self) -> int:
        """Jobs that fit now."""
        return self.capacity - self.unfinished

    def wait_space(self, free: int, timeout: float | None) -> bool:
        """Wait until ``free`` more jobs fit; False if ``timeout`` passed first."""
        cond = self._space if free == 1 else self._roomy
        with self.lock:
            if self.phase >= Phase.DRAINING:
                raise RuntimeError(SHUT)
            if self.unfinished + free <= self.capacity:
                return True
            cond.wait(timeout)
            return self.unfinished + free <= self.capacity

    def _put(self, batch: Batch, front: bool = False) -> None:
        """Queue ready jobs (under the lock)."""
        if batch:
            self.ready.put(batch, front)
            self.work.notify(min(len(batch), self.workers))

    # -- workers -------------------------------------------------------------------

    def take(self, k: Callable[[int], int], may: Callable[[], bool]) -> Batch | None:
        """Block until a batch is ready (of ``k(ready)`` jobs); None when the worker
        should leave: ``may()`` is False, the pool is cancelling, or nothing is left."""
        with self.lock:
            while True:
                if self.phase >= Phase.CANCELLING or not may():
                    return None
                if len(self.ready):
                    return self._take(k)
                if self.phase >= Phase.DRAINING and self.unfinished == 0:
                    return None
                self.work.wait()

    def take_nowait(self, k: int | Callable[[int], int] = 1) -> Batch | None:
        """A batch if one is ready now (pipelining backends, the inline backend)."""
        with self.lock:
            if len(self.ready) and self.phase < Phase.CANCELLING:
                return self._take(k if callable(k) else lambda *_: k)
        return None

    def _take(self, k: Callable[..., int]) -> Batch:
        self.busy += 1
        self.batches += 1
        self._handed.notify_all()  # a submitter may wait for its job to be taken
        return self.ready.take(k(len(self.ready), self.ready.head_kind()))

    def _wait_taken(self, before: int, timeout: float) -> None:
        """Under the lock: wait until a worker took a batch since ``batches`` was
        ``before``, nothing is ready, the pool is cancelling, or ``timeout`` passed."""
        end = time.monotonic() + timeout
        while self.batches == before and len(self.ready):
            left = end - time.monotonic()
            if self.phase >= Phase.CANCELLING or left <= 0:
                return
            self._handed.wait(left)

    def untake(self) -> None:
        """A taken batch turned out empty (its futures were cancelled): settled."""
        with self.lock:
            self.busy -= 1

    def wait_ready(self, timeout: float | None) -> None:
        """Wait until a job is ready or none is unfinished (the inline backend)."""
        with self.lock:
            if not len(self.ready) and self.unfinished and self.phase < Phase.CANCELLING:
                self.work.wait(timeout)

    def apply(self, s: Settlement, record: Callable[[Settlement], Any]) -> bool:
        """Apply a settlement: ``record(s)`` writes its rows (under the lock), jobs get
        their final status, retries and uncharged jobs are queued (or cancelled, if
        the pool is stopping now). False if ``record`` refused (an abandoned worker)."""
        with self.lock:
            if self.phase >= Phase.CANCELLING:
                s = s.stopped()  # decided under the lock: nothing is queued after cancel
            if record(s) is False:
                return False
            self.busy -= 1  # every taken batch is settled once
            c = self._counts
            c["attempts"] += len(s.items)
            c["ok"] += s.ok
            status = self.status
            for job_id, code, _ in s.finals:
                status[job_id] = code
                c["failed" if code == ST_FAILED else "cancelled"] += 1
            self._put(s.rest, front=True)
            if s.retry_now:
                self._put(Batch.of(s.retry_now))
            for due, item in s.retry_later:
                heapq.heappush(self.delayed, (due, next(self._seq), item))
            if s.retry_later:
                self.tick.notify()
            c["retries"] += len(s.retry_now) + len(s.retry_later)
            self._finish(s.done)
        return True

    def _finish(self, done: int) -> None:
        """Count ``done`` jobs as finished (under the lock) and wake who waits on it."""
        if not done:
            return
        self.unfinished -= done
        self._space.notify(done)
        if self.unfinished + self.refill <= self.capacity:
            self._roomy.notify()
        if self.unfinished == 0:
            self.end = self._now()
            self._idle.notify_all()
            self.work.notify_all()

    # -- the coordinator -------------------------------------------------------------

    def promote(self, now: float) -> float | None:
        """Move the retries due by ``now`` to the ready queue; the next due time."""
        with self.lock:
            due = []
            while self.delayed and self.delayed[0][0] <= now:
                due.append(heapq.heappop(self.delayed)[2])
            if due:
                self._put(Batch.of(due))
            return self.delayed[0][0] if self.delayed else None

    def all_wait_for_timers(self) -> bool:
        """True when no job is ready or running and only backoff timers are left (a
        fake clock may then jump to the next due time)."""
        with self.lock:
            return bool(self.delayed) and not len(self.ready) and not self.busy

    # -- the lifecycle ---------------------------------------------------------------

    def advance_phase(self, phase: Phase) -> Phase:
        """Move the lifecycle forward to ``phase`` (never back); the phase before."""
        with self.lock:
            before = self.phase
            if phase > before:
                self.phase = phase
            self.work.notify_all()
            self.tick.notify_all()
            self._space.notify_all()
            self._roomy.notify_all()
            return before

    def cancel_waiting(self) -> list[int]:
        """Cancel every job that waits in the queue or for a retry; their ids."""
        with self.lock:
            items = self.ready.drain() + [entry[2] for entry in self.delayed]
            self.delayed.clear()
            ids = [it[0] for it in items]
            self._cancel(ids)
            return ids

    def cancel_jobs(self, ids: Sequence[int]) -> None:
        """Cancel jobs that a worker took but will not run (their futures were
        cancelled before they started)."""
        with self.lock:
            self._cancel(ids)

    def _cancel(self, ids: Sequence[int]) -> None:
        for job_id in ids:
            self.status[job_id] = ST_CANCELLED
        self._counts["cancelled"] += len(ids)
        self._finish(len(ids))

    def cancel_unsubmitted(self, total: int) -> None:
        """Count the payloads never taken from a sized iterable as cancelled jobs."""
        with self.lock:
            missing = total - len(self.submitted)
            if missing > 0:
                self.submitted.extend(array("d", [float("nan")]) * missing)
                self.status.extend(bytes([ST_CANCELLED]) * missing)
                self._counts["cancelled"] += missing

    def wait_idle(self, timeout: float | None) -> bool:
        """Wait until no job is unfinished; False if ``timeout`` passed first."""
        with self.lock:
            if self.unfinished:
                self._idle.wait(timeout)
            return self.unfinished == 0

    def counts(self) -> dict[str, int]:
        """ok, failed, cancelled, retries, attempts, submitted, unfinished."""
        with self.lock:
            return dict(self._counts, submitted=len(self.submitted), unfinished=self.unfinished)
