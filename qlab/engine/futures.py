"""The Futures of a pool's jobs: which jobs may start, and how each Future ends.

A job whose Future was cancelled before the job left the queue is a cancelled job and
never runs (:func:`admit`). A settled job's Future gets its result, its error, or is
cancelled (:func:`resolve`); the driver lets go of each result as it hands it over.

Example:
    >>> from concurrent.futures import Future
    >>> from qlab.queues.memory import MemoryQueue
    >>> q = MemoryQueue(4)
    >>> futures = {0: Future(), 1: Future()}
    >>> ids = q.put(["a", "b"], now=0.0)
    >>> futures[1].cancel()
    True
    >>> [item[0] for item in admit(futures, q, q.take_nowait(k=2), start=True)]
    [0]
"""

from __future__ import annotations

from concurrent.futures import Future, InvalidStateError
from typing import Any

from qlab.core.batches import Batch
from qlab.core.codes import ST_FAILED
from qlab.core.context import Cancelled
from qlab.core.settle import Settlement

__all__ = ["admit", "resolve"]


def admit(futures: dict[int, Future] | None, q: Any, batch: Batch, start: bool = False) -> Batch:
    """Drop the jobs whose Future was cancelled before they started (they are
    cancelled jobs); with ``start``, mark the others' Futures running. A batch
    taken ahead (sent to a worker before its turn) is not marked: its Futures can
    still be cancelled, and such a job then runs with its result dropped
    (``run.meta["results_dropped"]``)."""
    if not futures:
        return batch
    keep, dropped = [], []
    for item in batch:
        fut = futures.get(item[0])
        if (
            fut is None
            or fut.running()
            or (fut.set_running_or_notify_cancel() if start else not fut.cancelled())
        ):
            keep.append(item)
        else:
            dropped.append(item[0])
            futures.pop(item[0], None)
    if not dropped:
        return batch
    q.cancel_jobs(dropped)
    return Batch.of(keep)


def resolve(futures: dict[int, Future], s: Settlement) -> int:
    """Resolve the settled jobs' futures. The driver lets go of each result as it
    hands it over (a caller that drops a result sees it freed, as with
    ``concurrent.futures``). Returns how many results were dropped (their Future was
    cancelled after the job was sent ahead)."""
    dropped = 0
    failed_rows = {f.row for f in s.res.failures}
    values = s.res.results or [None] * len(s.items)
    s.res.results = None
    done: list[tuple[Any, int, Any]] = [
        (futures.pop(job_id, None), 0, values[row])
        for row, job_id in enumerate(s.items.ids)
        if row not in failed_rows
    ]
    done += [(futures.pop(job_id, None), code, exc) for job_id, code, exc in s.finals]
    del values
    done.reverse()
    while done:
        fut, code, value = done.pop()
        try:
            if fut is None:
                pass
            elif code == 0:
                fut.set_result(value)
            elif code == ST_FAILED:
                fut.set_exception(value)
            elif not fut.cancel():  # a running job that the pool stopped
                fut.set_exception(Cancelled("the job was cancelled"))
        except InvalidStateError:  # cancelled by its owner after it was sent ahead
            dropped += 1
        finally:
            fut = value = None
    return dropped
