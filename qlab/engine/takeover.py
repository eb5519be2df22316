"""Taking a running batch away from its worker: a timeout, or a stop for good.

A thread cannot be killed, so a timed-out thread's attempt is *abandoned*: the
engine records it as ``timeout``, keeps the rows its batch finished, requeues the
rest, renames the thread ``qlab-abandoned-N`` (``run.meta["abandoned_threads"]``
counts them) and starts a fresh driver in its place; the old thread's own record of
the batch is refused when it returns. A process backend kills the worker instead.
A second Ctrl-C does the same to every worker that does not stop within a second.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from qlab.core.batches import EMPTY, Batch
from qlab.core.codes import CANCELLED, TIMEOUT
from qlab.core.context import Cancelled
from qlab.core.protocol import Backend, BatchResult, JobSpec, Slot, crash_row
from qlab.queues.memory import Phase

__all__ = ["Takeover"]

log = logging.getLogger("qlab")


class Takeover:
    """The paths that take a running batch away from its worker, as methods of
    :class:`~qlab.engine.drivers.Drivers` (which inherits them). The attributes and
    methods below are the drivers' own, named here for these paths."""

    spec: JobSpec
    q: Any
    backend: Backend
    slots: list[Slot]
    abandoned: int
    hard: bool
    started: bool

    def start_slot(self, worker: int, rec: Any, run: bool = True) -> Slot:
        raise NotImplementedError

    def commit(
        self, slot: Slot, items: Batch, res: BatchResult, rest: Batch, from_driver: bool = False
    ) -> bool:
        raise NotImplementedError

    def cancel_pending(self) -> None:
        raise NotImplementedError

    def time_out(self, slot: Slot, i: int, t0: float) -> None:
        """Fail attempt ``i`` of ``slot``'s batch as timed out, keep the rows before it,
        requeue the rest, and replace the worker."""
        now = self.spec.clock.now()
        batch, res = slot.batch or EMPTY, slot.res or BatchResult()
        with self.q.lock:
            slot.abandoned = True
        slot.state.cancel_event.set()  # a cooperative handler may still stop
        self.backend.stop_worker(slot)
        how = (
            "the worker process was killed" if self.backend.can_kill else "the thread was abandoned"
        )
        kept = res.prefix(i)
        crash_row(kept, TimeoutError(f"attempt exceeded timeout={self.spec.timeout}s; {how}"),
                  t0, now, TIMEOUT)  # fmt: skip
        self.abandon(slot)
        if self.q.phase < Phase.STOPPING:
            self.start_slot(slot.worker, slot.rec)
        self.commit(slot, batch[: i + 1], kept, batch[i + 1 :])

    def abandon(self, slot: Slot) -> None:
        if slot.thread is not None and slot.thread.is_alive():
            slot.thread.name = f"qlab-abandoned-{slot.worker}"
            self.abandoned += 1

    def abort(self) -> None:
        """Stop running attempts too: cancel them cooperatively, and after a short wait
        take their batches over (the process backend kills its workers)."""
        self.hard = True
        self.cancel_pending()
        self.q.advance_phase(Phase.STOPPING)
        for slot in self.slots:
            slot.state.stop = True
            slot.state.cancel_event.set()
        if self.started:
            self.backend.close(kill=True)
        me = threading.current_thread()
        deadline = time.monotonic() + 1.0  # one second for all of them together
        for slot in list(self.slots):
            if slot.thread is not None and slot.thread is not me:
                slot.thread.join(max(deadline - time.monotonic(), 0))
        now = self.spec.clock.now()
        for slot in list(self.slots):
            if slot.thread is None or not slot.thread.is_alive():
                continue
            with self.q.lock:
                if slot.abandoned:
                    continue
                slot.abandoned = True
            batch, res = slot.batch or EMPTY, slot.res or BatchResult()
            log.warning("worker %d did not stop; its attempt is abandoned", slot.worker)
            n = len(res)
            kept = res.prefix(n)
            if n < len(batch):
                cur = slot.state.running()
                stopped = Cancelled("stopped by a second interrupt")
                crash_row(kept, stopped, cur[2] if cur else None, now, CANCELLED)
                n += 1
            self.abandon(slot)
            self.commit(slot, batch[:n], kept, batch[n:])
