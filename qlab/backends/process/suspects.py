"""Jobs whose batch failed outside any one call: found out by running them alone.

A worker process unpickles a whole batch at once. If that fails (an argument whose
unpickling raises, exits or crashes the process; a ``multiprocessing`` proxy that
cannot connect), the worker cannot tell which job's data was at fault. The rule is
that such a failure is that job's attempt, charged to it, so the batch's jobs become
*suspects*: each is run alone next, and the one whose data fails alone is charged
(``failed``, or ``crashed`` if the process died). The others run normally, charged
nothing more. So nothing goes back to the queue uncharged forever.

Example:
    >>> from qlab.core.batches import Batch
    >>> s = Suspects()
    >>> s.add(Batch(range(10, 13), 1, "abc"))
    >>> s.first(Batch(range(8, 12), 1, "wxyz"))  # job 10 is at index 2
    2
"""

from __future__ import annotations

import pickle
import threading
import time
from typing import Any

from qlab.backends.process.packing import RemoteTraceback
from qlab.core.batches import EMPTY, Batch
from qlab.core.codes import RETRY
from qlab.core.protocol import BatchResult, JobSpec, crash_row
from qlab.core.settle import JobFailed

__all__ = ["Suspects"]


class Suspects:
    """The job ids to run alone (shared by a backend's driver threads)."""

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._ids)

    def add(self, batch: Batch) -> None:
        with self._lock:
            self._ids.update(batch.ids)

    def first(self, batch: Batch) -> int | None:
        """The index in ``batch`` of its first suspect, or None."""
        with self._lock:
            ids = self._ids
            return next((k for k, job_id in enumerate(batch.ids) if job_id in ids), None)

    def ran_alone(self, one: Batch, out: BatchResult, others: Batch) -> BatchResult:
        """``out`` (what running the suspect ``one`` gave), as the result of the whole
        batch: its rows are ``one``'s, and ``others`` go back to the queue uncharged."""
        with self._lock:
            self._ids.discard(one.ids[0])
        if out.items is None:
            n = len(out)
            out.items, out.rest = one[:n], one[n:]
        out.rest = (out.rest or EMPTY) + others
        return out

    def unreadable(self, batch: Batch, msg: tuple, spec: JobSpec) -> BatchResult:
        """A worker could not unpickle ``batch`` (its reply ``msg``: see
        :func:`qlab.backends.process.packing.unreadable`): its jobs become suspects, or, for a
        batch of one, the job is charged a ``failed`` attempt. The error is the one
        raised if it is an Exception that pickles, else a :class:`qlab.JobFailed`."""
        res = BatchResult(results=[] if spec.want_results else None)
        if len(batch) > 1:
            self.add(batch)
            res.items, res.rest = EMPTY, batch
            return res
        _, etype, text, tb, blob = msg
        exc: Any = None
        if blob is not None:
            try:
                exc = pickle.loads(blob)
            except KeyboardInterrupt:
                raise
            except BaseException:  # then the text tells
                exc = None
        if not isinstance(exc, Exception):
            why = "the call's arguments could not be unpickled in the worker process"
            exc = JobFailed(f"{why}: {etype}: {text}")
        exc.__cause__ = RemoteTraceback(tb)
        now = time.perf_counter()
        crash_row(res, exc, now, now, RETRY, etype)
        res.failures[-1].permanent = bool(spec.is_permanent(exc))
        res.items, res.rest = batch, EMPTY
        return res
