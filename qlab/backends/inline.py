"""The inline backend: every job runs serially in the caller's thread.

Like Dask's synchronous scheduler, it is for debugging: a breakpoint in a handler
stops in the thread that called ``qlab.run`` (or ``submit``), with no worker thread
or process in between, and a traceback reads straight down. ``workers=N`` gives N
lanes that take batches in turn, one at a time, so the trace has the same shape as
on the other backends. It cannot take a running attempt away: ``timeout=`` is
cooperative here (the attempt's cancel token turns true at its deadline; a handler
that raises ``Cancelled`` then is recorded as ``timeout``).

Ctrl-C, SIGTERM and ``stop=`` are looked for between every two jobs: unless
``batch_size=`` says otherwise, each batch is one job (a debugging backend can
afford the bookkeeping per job, and people Ctrl-C it).
"""

from __future__ import annotations

import threading

from qlab.backends.thread import ThreadBackend
from qlab.core.batches import Batch
from qlab.core.protocol import BatchResult, Slot

__all__ = ["InlineBackend"]


class InlineBackend(ThreadBackend):
    """Runs batches in the thread that waits on the pool: the thread backend's batch
    loop, without its threads.

    Example:
        >>> import qlab, threading
        >>> run = qlab.run(lambda x: threading.current_thread().name, ["a"],
        ...                backend="inline", keep_results=True)
        >>> run.jobs.result[0] == threading.current_thread().name
        True
    """

    name = "inline"
    in_caller = True
    max_workers = 10_000  # lanes taking turns in one thread
    batch_target_s = 0.0  # one job per batch: the caller looks for interrupts between jobs

    _running: int | None = None  # the thread running a batch now

    def run_batch(self, slot: Slot, batch: Batch, res: BatchResult) -> BatchResult:
        slot.state.bind()  # the caller's thread is this lane's while the batch runs
        outer, self._running = self._running, threading.get_ident()
        try:
            return super().run_batch(slot, batch, res)
        finally:
            self._running = outer
            slot.state.unbind()

    def runs_here(self) -> bool:
        """Is the calling thread running one of this pool's jobs now?"""
        return self._running == threading.get_ident()

    def overdue(self, slot: Slot, now: float) -> None:
        """Nothing can be taken from the caller's own thread."""
        return None
