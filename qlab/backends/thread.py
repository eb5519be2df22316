"""The thread backend: each worker is a thread that runs the batch loop itself.

Threads share the interpreter, so CPU-bound Python handlers contend for the GIL
(visible in the trace as wall time well above CPU time), while I/O-bound handlers
scale with the number of threads. A thread cannot be killed: on a timeout the engine
abandons the attempt (its thread is replaced and ignored when it returns).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from qlab.backends.base import BatchResult, execute

if TYPE_CHECKING:
    from qlab.engine import Pool, _Slot

__all__ = ["ThreadBackend"]


class ThreadBackend:
    """Runs batches in the calling worker thread."""

    name = "thread"
    can_kill = False
    batch_target_s = 0.02  # work per batch: amortises the per-batch bookkeeping

    def start(self, pool: Pool, workers: int) -> dict[str, Any]:
        self._pool = pool
        return {"startup_s": 0.0}

    def new_event(self, worker: int) -> threading.Event:
        return threading.Event()

    def run_batch(self, slot: _Slot, batch: list, res: BatchResult) -> BatchResult:
        pool = self._pool
        return execute(
            pool._fn, batch, slot.state, pool._retry.is_permanent, pool._want_results, res=res
        )

    def overdue(self, slot: _Slot, now: float, timeout: float) -> tuple[int, float] | None:
        """Claim the slot's running attempt if it is past its deadline (see ``execute``)."""
        box = slot.state.box
        if not box or slot.abandoned:
            return None
        try:
            i, t0 = box[0]
        except IndexError:
            return None
        if now - t0 < timeout:
            return None
        try:
            box.pop()  # atomic: either we take the attempt or its worker finished it
        except IndexError:
            return None
        return i, t0

    def stop_intake(self) -> None:
        """Workers see ``state.stop`` themselves."""

    def stop_worker(self, slot: _Slot) -> None:
        """Nothing to kill: the attempt is abandoned and its thread ignored."""

    def close(self, kill: bool = False) -> None:
        """Threads are joined by the engine."""

    def info(self) -> dict[str, Any]:
        return {}
