"""What a durable queue does when its store fails: stop, and say so.

A durable queue promises that what it reports is in its store. So the first store
call of a run that fails (a full disk, a lock held too long, a Redis that is down,
frozen or restarted empty) becomes the queue's ``fault``, a
:class:`~qlab.queues.store.StoreError` naming the queue and the cause, logged once:

- nothing more is written (a half-working store would only grow more wrong);
- no worker takes another batch (``take`` gives None, so the worker leaves);
- the callers that feed or wait on the queue (``put``, ``wait_space``, and the first
  ``wait_idle`` unless the pool is stopping already) raise the fault, so the pool
  stops as on an error: waiting jobs are cancelled in memory and stay open in the
  store, running attempts get the pool's ``grace``;
- :func:`raise_fault` raises it at the end of ``qlab.run`` / ``serve``, with the Run of
  what ran attached, if nothing raised it before (a failure during a Ctrl-C, or at the
  last write): a run on a failed store never returns as if it were durable.

Example:
    >>> from qlab.queues.store import StoreError
    >>> class Q(FailingStore):
    ...     fault, _told = None, False
    ...     class store: url = "redis://:pw@h/0?name=q"
    >>> q = Q()
    >>> q._guard(lambda: 1 / 0), type(q.fault).__name__
    (False, 'StoreError')
    >>> str(q.fault)[:60]
    "queue 'redis://:***@h/0?name=q': its store failed (ZeroDivis"
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from qlab.queues.memory import Phase
from qlab.queues.store import StoreError

__all__ = ["STOPPED", "FailingStore", "raise_fault"]

log = logging.getLogger("qlab")

STOPPED = (
    ": the run stopped taking jobs and let the running ones end. What the store holds "
    "stays resumable with qlab.resume(url, handler) once it works again (the jobs that "
    "ended after the failure are not in it and run again); the Run of what ran in this "
    "process is attached as exc.qlab_run"
)


def raise_fault(queue: Any, run: Any) -> None:
    """If ``queue`` is a durable queue whose store failed: raise its StoreError with
    ``run`` attached (``exc.qlab_run``, ``run.meta["store_error"]``)."""
    fault = getattr(queue, "fault", None)
    if isinstance(fault, StoreError):
        run.meta["store_error"] = str(fault)
        fault.qlab_run = run  # type: ignore[attr-defined]
        raise fault


class FailingStore:
    """The fault half of :class:`qlab.queues.durable.DurableQueue` (see the module)."""

    store: Any
    phase: Phase
    fault: StoreError | None
    _told: bool  # the fault was raised to the pool's caller

    def _guard(self, write: Callable[..., Any], *args: Any) -> bool:
        """Run a store write (under ``io``); False if it failed now or before."""
        if self.fault is not None:
            return False
        try:
            write(*args)
            return True
        except Exception as exc:
            self.fail(exc)
            return False

    def fail(self, exc: BaseException) -> StoreError:
        """Note that the store failed (once; logged); the queue's ``fault``."""
        if self.fault is None:
            self.fault = StoreError(self.store.url, getattr(exc, "cause", exc), STOPPED)
            self.fault.__cause__ = exc
            log.error("%s", self.fault)
        return self.fault

    def check(self) -> None:
        """Raise the fault, if the store failed (for the callers that feed the queue)."""
        if self.fault is not None:
            self._told = True
            raise self.fault

    def wait_space(self, free: int, timeout: float | None) -> bool:
        self.check()
        return super().wait_space(free, timeout)  # type: ignore[misc]

    def wait_idle(self, timeout: float | None) -> bool:
        """As MemoryQueue's, but the first wait after the store failed raises the fault
        (unless the pool is stopping already), so the pool stops as on an error."""
        if self.fault is not None and not self._told and self.phase < Phase.CANCELLING:
            self.check()
        return super().wait_idle(timeout)  # type: ignore[misc]
