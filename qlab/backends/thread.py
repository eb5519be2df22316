"""The thread backend: each worker is a driver thread that runs the batch loop itself.

Threads share the interpreter, so CPU-bound Python handlers contend for the GIL
(visible in the trace as wall time well above CPU time), while I/O-bound handlers
scale with the number of threads. A thread cannot be killed: on a timeout the engine
abandons the attempt (its thread is replaced and ignored when it returns).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from qlab.core.batches import Batch
from qlab.core.loop import execute
from qlab.core.protocol import BatchResult, JobSpec, Slot

__all__ = ["ThreadBackend"]


class ThreadBackend:
    """Runs batches in the engine's driver threads.

    Example:
        >>> import qlab
        >>> qlab.run(abs, range(5), workers=2, backend="thread").meta["backend"]
        'thread'
    """

    name = "thread"
    can_kill = False
    in_caller = False
    max_workers = 10_000  # threads: more start slowly (seconds) and do not run faster
    batch_target_s = 0.02  # work per batch: amortises the per-batch bookkeeping
    # the engine starts the 2nd.. driver threads from a helper thread while the first
    # already runs jobs (a thread start waits for the new thread to be scheduled)
    start_later = True

    def start(
        self, spec: JobSpec, workers: int, take_ahead: Callable[[Slot], Batch | None]
    ) -> dict[str, Any]:
        self.spec = spec
        return {"startup_s": 0.0}

    def new_event(self, worker: int) -> threading.Event:
        return threading.Event()

    def run_batch(self, slot: Slot, batch: Batch, res: BatchResult) -> BatchResult:
        spec = self.spec
        return execute(
            spec.handler, batch, slot.state, spec.is_permanent, spec.want_results, res=res
        )

    def overdue(self, slot: Slot, now: float) -> tuple[int, float] | None:
        """Claim the slot's running attempt if it is past its deadline (see ``execute``)."""
        box, timeout = slot.state.box, self.spec.timeout
        if not box or slot.abandoned or timeout is None:
            return None
        try:
            i, t0 = box[0]
        except IndexError:
            return None
        if now - t0 < timeout + _grace(timeout):
            return None
        try:
            box.pop()  # atomic: either we take the attempt or its worker finished it
        except IndexError:
            return None
        return i, t0

    def stop_intake(self) -> None:
        """Workers see ``state.stop`` themselves."""

    def stop_worker(self, slot: Slot) -> None:
        """Nothing to kill: the attempt is abandoned and its thread ignored."""

    def close(self, kill: bool = False) -> None:
        """Threads are joined by the engine."""

    def info(self) -> dict[str, Any]:
        return {}


def _grace(timeout: float) -> float:
    """How long past its deadline a thread's attempt may take to stop by itself.

    At the deadline the attempt's cancel token turns true; a cooperative handler sees
    it and raises ``Cancelled`` (recorded as ``timeout``). Only one that has not
    returned after this grace is abandoned, so a handler that stops itself is never
    reported as abandoned because the watchdog happened to look first.

    Example:
        >>> _grace(0.2), _grace(10)
        (0.1, 1.0)
    """
    return min(max(timeout / 2, 0.1), 1.0)
