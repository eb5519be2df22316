"""Durable queues: the live run's books in memory, written through to a store.

A :class:`DurableQueue` is a :class:`qlab.queues.memory.MemoryQueue` (which keeps the live
run's ready queue, delay heap and counts, under its one lock) that writes each change
of a job's fate to a :class:`Store` (SQLite, Redis), one transaction per call:

- ``put``: the jobs, payloads pickled, before any of them can be taken;
- a batch taken: its jobs marked running, under this owner's lease;
- a settlement applied: its attempt rows, the jobs that ended, the retries (with their
  due time), the jobs that go back uncharged;
- the coordinator's ticks (``promote``) renew the owner's lease; a pool that is done
  releases it.

The store's I/O runs under a second lock (``io``), not under the queue's: a put or a
settlement takes ``io`` while it still holds the queue's lock and writes once it has
let that go, so a job's writes reach the store in the order its fate changed (a job
is in the store before any worker can mark it taken, a retry's settlement before its
next take), while waiters on the queue (a Ctrl-C, a submitter) are not kept out by a
write in flight.

Times in a store are epoch seconds (the run's clock plus an offset taken at start), so
that rows from runs before and after a crash share one time line. Jobs that a
stopping pool cancels (Ctrl-C, ``stop=``) stay open in the store: :func:`qlab.resume`
runs them. Jobs whose futures were cancelled are cancelled for good.

Example:
    >>> import os, tempfile, qlab
    >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "q.db")
    >>> qlab.run(abs, [-1, -2], workers=1, queue=url).summary()["ok"]
    2
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from qlab.core.batches import Batch
from qlab.core.codes import CANCELLED, OK, ST_CANCELLED, ST_FAILED
from qlab.core.settle import Settlement
from qlab.queues.failing import FailingStore, raise_fault
from qlab.queues.memory import MemoryQueue, Phase
from qlab.queues.store import (
    Claimed,
    Row,
    Settled,
    Store,
    StoreError,
    fingerprint,
    pickle_payloads,
)
from qlab.queues.urls import redact, shown

__all__ = ["DurableQueue", "raise_fault"]

log = logging.getLogger("qlab")


class DurableQueue(FailingStore, MemoryQueue):
    """A MemoryQueue that writes every change of a job's fate through to ``store``.

    Args:
        store: where jobs, leases and attempt rows are kept.
        capacity, now: as for :class:`~qlab.queues.memory.MemoryQueue`.
    """

    store_class: Any = None  # each kind names its Store class
    fresh = "name"  # what a user picks anew when a queue is in use: a file, a name

    @classmethod
    def open(cls, url: str, readonly: bool = False) -> Store:
        """The store of an existing queue (for :func:`qlab.resume`, and read only for
        ``load_run``)."""
        return cls.store_class(url)

    @classmethod
    def from_url(
        cls,
        url: str,
        capacity: int,
        now: Callable[[], float] = time.perf_counter,
        handler: Any = None,
    ) -> DurableQueue:
        """A fresh queue for a run, claimed for it atomically (one transaction): a
        store that holds jobs already, or that another live run claimed, is refused
        with a ValueError before any job runs."""
        store = cls.store_class(url, create=True)
        try:
            held, holder = store.claim_fresh({
                "fingerprint": fingerprint(handler) if handler is not None else "",
                "created": repr(time.time()),
            })  # fmt: skip
            if held:
                raise ValueError(
                    f"queue {shown(url)} already holds {held} jobs: finish them with "
                    f"qlab.resume(url, handler), or use a new {cls.fresh}"
                )
            if holder:
                raise ValueError(
                    f"queue {shown(url)} is in use by another run ({holder}): use a new "
                    f"{cls.fresh}, or qlab.serve/qlab.enqueue for a queue shared by runs"
                )
        except BaseException:
            store.close()
            raise
        return cls(store, capacity, now)

    def __init__(
        self, store: Store, capacity: int, now: Callable[[], float] = time.perf_counter
    ) -> None:
        super().__init__(capacity, now=now)
        self.store = store
        self.offset = time.time() - now()  # clock reading + offset = epoch seconds
        self.extra: dict[int, int] = {}  # job -> uncharged rows before (lost, stopped)
        self._renew_at = 0.0
        self.io = threading.Lock()  # the store's one connection; see the module doc
        self._released = False
        self.fault: StoreError | None = None  # the store failed (qlab.queues.failing)
        self._told = False  # the fault was raised to the pool's caller

    def __repr__(self) -> str:
        return f"{type(self).__name__}({shown(self.store.url)})"

    # -- intake --------------------------------------------------------------------

    def put(
        self,
        payloads: Sequence[Any],
        now: float,
        *,
        on_ids: Callable[[range], None] | None = None,
        timeout: float | None = None,
        kind: Any = None,
        hand_off: bool = False,
    ) -> range | None:
        """Pickle the payloads (an unpicklable one raises TypeError here, before any
        job is queued), then queue them as MemoryQueue does, writing them to the store
        before any of them can be taken."""
        blobs = pickle_payloads(payloads, self.store.url)
        self.check()
        held: list[range] = []

        def write(ids: range) -> None:  # under the queue's lock, before they are queued
            self.io.acquire()
            held.append(ids)
            if on_ids is not None:
                on_ids(ids)

        try:
            # no hand-off: the store's lock is held until the jobs are written
            ids = super().put(
                payloads, now, on_ids=write, timeout=timeout, kind=kind, hand_off=False
            )
        finally:
            if held:
                try:
                    self._guard(self.store.add, held[0].start, blobs, now + self.offset)
                finally:
                    self.io.release()
        self.check()  # they are not in the store: the caller stops (they are cancelled)
        return ids

    def load(self, claimed: Claimed) -> None:
        """Queue jobs claimed from the store (taken over from a dead owner, or new to a
        consumer), before the pool starts or while it runs."""
        n = len(claimed.ids)
        if not n:
            return
        off = self.offset
        with self.lock:
            top = max(claimed.ids) + 1
            grow = top - len(self.submitted)
            if grow > 0:
                self.submitted.extend([math.nan] * grow)
                self.status.extend(bytes(grow))
            now_items, later = [], []
            for job, att, extra, due, sub, payload in zip(
                claimed.ids,
                claimed.attempts,
                claimed.extra,
                claimed.due,
                claimed.submitted,
                claimed.payloads,
                strict=True,
            ):
                self.submitted[job] = sub - off
                if extra:
                    self.extra[job] = extra
                if due is None:
                    now_items.append((job, att, payload))
                else:
                    later.append((due - off, (job, att, payload)))
            self.unfinished += n
            self._put(Batch.of(now_items))
            for due, item in later:
                self.delayed.append((due, next(self._seq), item))
            self.delayed.sort()

    # -- workers -------------------------------------------------------------------

    def take(self, k: Callable[[int], int], may: Callable[[], bool]) -> Batch | None:
        """Take a batch (MemoryQueue); its jobs are marked taken in the store before
        the worker gets them. None once the store failed: the worker leaves."""
        return self._taken(super().take(k, lambda: self.fault is None and may()))

    def take_nowait(self, k: int | Callable[[int], int] = 1) -> Batch | None:
        return None if self.fault is not None else self._taken(super().take_nowait(k))

    def _taken(self, batch: Batch | None) -> Batch | None:
        if batch is not None:
            with self.io:
                done = self._guard(self.store.taken, batch, time.time())
            if not done:  # the store failed: it does not run, and is open in the store
                with self.lock:
                    self.busy -= 1
                    if self.phase >= Phase.CANCELLING:  # the pool cancelled what waits
                        self._cancel(list(batch.ids))
                    else:
                        self._put(batch, front=True)
                return None
        return batch

    def apply(self, s: Settlement, record: Callable[[Settlement], Any]) -> bool:
        """Apply as MemoryQueue does; the rows and the jobs' new states then go to the
        store in one transaction, in order (see the module doc)."""
        worker = s.worker
        held: list[tuple[Settlement, bool]] = []

        def write(applied: Settlement) -> Any:  # under the queue's lock
            if record(applied) is False:
                return False
            self.io.acquire()
            held.append((applied, self.phase >= Phase.CANCELLING))
            return True

        try:
            done = super().apply(s, write)
        finally:
            if held:
                try:
                    self._guard(self._write, s, *held[0], worker)
                finally:
                    self.io.release()
        if self.phase >= Phase.JOINED:
            self._release()
        return done

    def _write(self, orig: Settlement, s: Settlement, stopping: bool, worker: int) -> None:
        """Turn a settlement into store writes (under ``io``); ``stopping``: the pool
        was cancelling when it was applied."""
        items, res, off, extra = s.items, s.res, self.offset, self.extra
        cpu = res.cpu_list() if res.cpu_share is not None else res.cpu
        errors, backoff, out = s.errors or {}, s.backoff or {}, s.out
        throttle = getattr(res, "throttle", None)
        rows: list[Row] = []
        ok: list[int] = []
        me = self.store.owner
        for i, (job, att, _) in enumerate(items):
            err = errors.get(i)
            code = out[i]
            rows.append(
                (job, att + extra.get(job, 0), worker, res.t0[i] + off, res.t1[i] + off,
                 cpu[i], code, err and err[0], err and err[1], backoff.get(i),
                 throttle[i] if throttle else 0.0, me)
            )  # fmt: skip
            if code == OK:
                ok.append(job)
        oks: range | list[int] = ok
        if len(ok) == len(items) and isinstance(items.ids, range):
            oks = items.ids
        ended: list[tuple[int, int, str, str]] = []
        again: list[tuple[int, int, int, float | None]]
        again = [(it[0], it[1], extra.get(it[0], 0), None) for it in s.retry_now]
        again += [(it[0], it[1], extra.get(it[0], 0), due + off) for due, it in s.retry_later]
        back = list(s.rest.ids)
        if s.finals:
            row_of = {job: row for row, job in enumerate(items.ids)}
            for job, code, _ in s.finals:
                row = row_of.get(job)
                if code == ST_FAILED:
                    etype, msg = errors.get(row, ("", "")) if row is not None else ("", "")
                    ended.append((job, ST_FAILED, etype, msg))
                elif not stopping:
                    ended.append((job, ST_CANCELLED, "", ""))
                # a stopping pool's cancellation: the job stays open for resume
                elif row is None:  # it did not run: back, as it was
                    back.append(job)
                elif out[row] == CANCELLED:  # its attempt was stopped: uncharged
                    extra[job] = extra.get(job, 0) + 1
                    again.append((job, items.attempt(row), extra[job], None))
                else:  # it failed and would have been retried: the next attempt
                    again.append((job, items.attempt(row) + 1, extra.get(job, 0), None))
        self.store.settled(Settled(rows, oks, ended, again, back))

    def cancel_jobs(self, ids: Sequence[int]) -> None:
        """Cancel jobs whose futures were cancelled: for good, in the store too."""
        super().cancel_jobs(ids)
        with self.io:
            ended = [(job, ST_CANCELLED, "", "") for job in ids]
            self._guard(self.store.settled, Settled(ended=ended))

    # -- the coordinator and the lifecycle -------------------------------------------

    def promote(self, now: float) -> float | None:
        """Move due retries (MemoryQueue); renew the lease every third of it."""
        due = super().promote(now)
        wall = time.time()
        if wall >= self._renew_at:
            self._renew_at = wall + self.store.lease / 3
            with self.io:
                if not self._released:
                    self._guard(self.store.renew, wall + self.store.lease)
        return due

    def advance_phase(self, phase: Phase) -> Phase:
        before = super().advance_phase(phase)
        if phase >= Phase.JOINED:
            self._release()
        return before

    def close(self) -> None:
        """The pool is joined (the engine calls this once its workers are gone)."""
        self._release()

    def _release(self) -> None:
        """Once joined with no batch in flight: give up the lease (what is still open
        can be resumed at once) and close the store."""
        with self.lock:
            if self._released or self.phase < Phase.JOINED or self.busy:
                return
            self._released = True
        with self.io:
            try:
                self.store.release()  # after a fault too: if it works, resume can start at once
            except Exception as exc:  # its lease expires instead; what it holds is written
                log.warning("queue %s: could not give up its lease (%s)",
                            shown(self.store.url), redact(repr(exc)))  # fmt: skip
            finally:
                with contextlib.suppress(Exception):
                    self.store.close()
