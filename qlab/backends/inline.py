"""The inline backend: every job runs serially in the caller's thread.

Like Dask's synchronous scheduler, it is for debugging: a breakpoint in a handler
stops in the thread that called ``qlab.run`` (or ``submit``), with no worker thread
or process in between, and a traceback reads straight down. ``workers=N`` gives N
lanes that take batches in turn, one at a time, so the trace has the same shape as
on the other backends. It cannot take a running attempt away: ``timeout=`` is
cooperative here (the attempt's cancel token turns true at its deadline; a handler
that raises ``Cancelled`` then is recorded as ``timeout``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from qlab.backends.base import BatchResult, JobSpec, Slot
from qlab.backends.loop import execute
from qlab.batches import Batch

__all__ = ["InlineBackend"]


class InlineBackend:
    """Runs batches in the thread that waits on the pool.

    Example:
        >>> import qlab, threading
        >>> run = qlab.run(lambda x: threading.current_thread().name, ["a"],
        ...                backend="inline", keep_results=True)
        >>> run.jobs.result[0] == threading.current_thread().name
        True
    """

    name = "inline"
    can_kill = False
    in_caller = True
    batch_target_s = 0.02

    def start(
        self, spec: JobSpec, workers: int, take_ahead: Callable[[Slot], Batch | None]
    ) -> dict[str, Any]:
        self.spec = spec
        return {"startup_s": 0.0}

    def new_event(self, worker: int) -> threading.Event:
        return threading.Event()

    def run_batch(self, slot: Slot, batch: Batch, res: BatchResult) -> BatchResult:
        spec = self.spec
        slot.state.bind()
        try:
            return execute(
                spec.handler, batch, slot.state, spec.is_permanent, spec.want_results, res=res
            )
        finally:
            slot.state.unbind()

    def overdue(self, slot: Slot, now: float) -> None:
        """Nothing can be taken from the caller's own thread."""
        return None

    def stop_intake(self) -> None:
        """The caller sees ``state.stop`` itself."""

    def stop_worker(self, slot: Slot) -> None:
        """Nothing to stop."""

    def close(self, kill: bool = False) -> None:
        """Nothing to release."""

    def info(self) -> dict[str, Any]:
        return {}
