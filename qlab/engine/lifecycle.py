"""The one lifecycle of a pool that its caller feeds: ``qlab.run``, ``qlab.serve``
and ``qlab.resume`` all go through it.

::

    with guarded(stop) as interrupts:       # Ctrl-C / SIGTERM only noted meanwhile
        pool = Pool(..., futures=False, interrupts=interrupts)
        drive(pool, feed)                    # feed, drain, join; or stop gracefully
        run = finished(pool, interrupts)     # the Run (a late Ctrl-C is only noted)

In the main thread Ctrl-C and SIGTERM are only noted, and raised by the engine where
it waits (:meth:`Pool.idle_turn <qlab.engine.pool.Pool.idle_turn>`), so an interrupt
never lands halfway through an update of the queue's books, nor between the pool's
start and :func:`drive`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from qlab.engine.pool import Pool
from qlab.engine.signals import Interrupts, noting_signals, why
from qlab.queues.failing import raise_fault
from qlab.queues.store import StoreError

__all__ = ["drive", "finished", "guarded"]


@contextmanager
def guarded(stop: threading.Event | None = None) -> Iterator[Interrupts]:
    """Note Ctrl-C and SIGTERM (in the main thread) instead of raising them at once;
    the Interrupts that a pool checks for them and for ``stop``."""
    interrupts = Interrupts(stop=stop)
    with noting_signals() as noted:
        interrupts.noted = noted
        yield interrupts


def drive(pool: Pool, feed: Callable[[], None], *, total: int | None = None) -> None:
    """Run ``feed()`` (which submits the jobs), then drain the pool and join it.

    A Ctrl-C, SIGTERM or ``stop`` while feeding or draining cancels the pending jobs,
    gives running attempts the pool's ``grace`` and joins the pool; jobs ``0..total``
    that were never fed are recorded as cancelled. Any other error stops the pool the
    same way and propagates, with the Run of what ran attached as ``exc.qlab_run``:
    so does a durable queue's :class:`~qlab.queues.store.StoreError` (its store failed).
    """
    try:
        feed()
        pool.shutdown(wait=True)  # every job finished, every worker joined
    except KeyboardInterrupt as exc:
        if total is not None:
            pool.parts.queue.cancel_unsubmitted(total)
        pool.interrupted(why(exc))
    except BaseException as exc:
        pool.interrupted("error")
        if isinstance(exc, Exception):
            exc.qlab_run = run = pool.trace()  # type: ignore[attr-defined]
            if isinstance(exc, StoreError):  # (its message says where the Run is)
                run.meta["store_error"] = str(exc)
            else:
                exc.add_note("the Run of the jobs that ran is attached as exc.qlab_run")
        raise


def finished(pool: Pool, interrupts: Interrupts) -> Any:
    """The joined pool's Run; a Ctrl-C that came after the last job, while the pool
    was being joined, still shows in ``run.meta["interrupted"]``. If the pool's durable
    queue's store failed and nothing raised it yet (a failure during a Ctrl-C, or at
    the last write), its StoreError is raised here with the Run attached: a run on a
    failed store never returns as if it were durable."""
    result = pool.trace()
    raise_fault(pool.parts.queue, result)  # a durable queue's store failed: no plain Run
    late = interrupts.unseen()
    if late and "interrupted" not in result.meta:
        result.meta["interrupted"] = late
    return result
