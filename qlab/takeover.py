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
from typing import TYPE_CHECKING

from qlab.backends.base import BatchResult, Slot, crash_row
from qlab.batches import EMPTY
from qlab.codes import CANCELLED, TIMEOUT
from qlab.context import Cancelled
from qlab.jobqueue import Phase

if TYPE_CHECKING:
    from qlab.drivers import Drivers

__all__ = ["abandon", "abort", "time_out"]

log = logging.getLogger("qlab")


def time_out(d: Drivers, slot: Slot, i: int, t0: float) -> None:
    """Fail attempt ``i`` of ``slot``'s batch as timed out, keep the rows before it,
    requeue the rest, and replace the worker."""
    now = d.spec.clock.now()
    batch, res = slot.batch or EMPTY, slot.res or BatchResult()
    with d.q.lock:
        slot.abandoned = True
    slot.state.cancel_event.set()  # a cooperative handler may still stop
    d.backend.stop_worker(slot)
    how = "the worker process was killed" if d.backend.can_kill else "the thread was abandoned"
    kept = res.prefix(i)
    crash_row(kept, TimeoutError(f"attempt exceeded timeout={d.spec.timeout}s; {how}"),
              t0, now, TIMEOUT)  # fmt: skip
    abandon(d, slot)
    if d.q.phase < Phase.STOPPING:
        d.start_slot(slot.worker, slot.rec)
    d.commit(slot, batch[: i + 1], kept, batch[i + 1 :])


def abandon(d: Drivers, slot: Slot) -> None:
    if slot.thread is not None and slot.thread.is_alive():
        slot.thread.name = f"qlab-abandoned-{slot.worker}"
        d.abandoned += 1


def abort(d: Drivers) -> None:
    """Stop running attempts too: cancel them cooperatively, and after a short wait
    take their batches over (the process backend kills its workers)."""
    d.hard = True
    d.cancel_pending()
    d.q.advance_phase(Phase.STOPPING)
    for slot in d.slots:
        slot.state.stop = True
        slot.state.cancel_event.set()
    if d.started:
        d.backend.close(kill=True)
    me = threading.current_thread()
    deadline = time.monotonic() + 1.0  # one second for all of them together
    for slot in list(d.slots):
        if slot.thread is not None and slot.thread is not me:
            slot.thread.join(max(deadline - time.monotonic(), 0))
    now = d.spec.clock.now()
    for slot in list(d.slots):
        if slot.thread is None or not slot.thread.is_alive():
            continue
        with d.q.lock:
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
        abandon(d, slot)
        d.commit(slot, batch[:n], kept, batch[n:])
