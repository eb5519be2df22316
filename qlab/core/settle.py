"""Settlement: what a finished batch means, as a pure function with no thread in it.

Given a batch, what its worker reported, the retry policy, the seed and whether the
pool is stopping, :func:`settle` decides each row's outcome, which jobs are done
(ok, failed for good, cancelled), which retry now or after a backoff, and which did
not run and go back to the queue uncharged. The queue applies a :class:`Settlement`
under its lock; nothing here touches shared state.

Example:
    >>> from qlab.core.protocol import BatchResult, Failure
    >>> from qlab.core.batches import Batch
    >>> from qlab.core.retry import Retry, Constant
    >>> res = BatchResult([0.0, 1.0], [1.0, 2.0], [0.0, 0.0],
    ...                   [Failure(1, RETRY, "OSError", "flaky", False)])
    >>> s = settle(Batch(range(2), 1, "ab"), res, Retry(2, Constant(0.5)), seed=0)
    >>> list(s.out), s.ok, s.retry_later
    ([0, 1], 1, [(2.5, (1, 2, 'b'))])
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from qlab.core.batches import EMPTY, Batch
from qlab.core.codes import CANCELLED, FAILED, RETRY, ST_CANCELLED, ST_FAILED
from qlab.core.protocol import BatchResult
from qlab.core.retry import Retry

__all__ = ["JobFailed", "Settlement", "settle"]


class JobFailed(Exception):
    """Set on a job's Future when it failed and its own exception could not be kept.

    Example:
        >>> import qlab
        >>> err = qlab.JobFailed("job 3 failed: ValueError('bad')")
        >>> isinstance(err, Exception), str(err)
        (True, "job 3 failed: ValueError('bad')")
    """


@dataclass
class Settlement:
    """A batch's rows and what becomes of their jobs.

    Attributes:
        items: the jobs of the rows (row i ran ``items[i]``).
        res: the rows' columns, as the worker reported them.
        out: the outcome code of each row.
        errors / backoff: row -> (error type, message) / row -> delay before the retry.
        ok: rows that ended their job ok.
        finals: jobs ended otherwise: (job_id, status code, exception or None).
        rest: jobs that did not run: back to the queue, uncharged.
        retry_now / retry_later: jobs to try again: items / (due time, item).
        logs: (level, message, args) to write once applied.
        worker: the worker that ran the rows (durable queues record it).
    """

    items: Batch
    res: BatchResult
    out: bytes | bytearray
    ok: int
    rest: Batch = EMPTY
    errors: dict[int, tuple[str, str]] | None = None
    backoff: dict[int, float] | None = None
    finals: list[tuple[int, int, Any]] = field(default_factory=list)
    retry_now: list[tuple] = field(default_factory=list)
    retry_later: list[tuple[float, tuple]] = field(default_factory=list)
    logs: list[tuple] = field(default_factory=list)
    worker: int = -1  # the worker whose batch this is (-1: none, or unknown)

    @property
    def done(self) -> int:
        """Jobs that this settlement ends."""
        return self.ok + len(self.finals)

    def stopped(self) -> Settlement:
        """The same rows, with every job that would run again cancelled instead (the
        pool is stopping: nothing is queued any more).

        Example:
            >>> s = Settlement(EMPTY, BatchResult(), b"", 0, retry_now=[(3, 2, "x")])
            >>> s.stopped().finals, s.stopped().retry_now
            ([(3, 3, None)], [])
        """
        dropped = [*self.rest, *self.retry_now, *(item for _, item in self.retry_later)]
        if not dropped:
            return self
        finals = self.finals + [(item[0], ST_CANCELLED, None) for item in dropped]
        # no retry follows, so no row has a delay before one
        return replace(self, rest=EMPTY, retry_now=[], retry_later=[], finals=finals, backoff=None)


def settle(
    items: Batch,
    res: BatchResult,
    retry: Retry,
    seed: int | None,
    stopping: bool = False,
    rest: Batch = EMPTY,
) -> Settlement:
    """Decide the outcome of each row of ``res`` (row i ran ``items[i]``).

    An ordinary failure is retried while attempts remain and it is not permanent; a
    failure with nothing left, or a permanent one, fails its job; a cancelled attempt
    cancels its job. With ``stopping``, what would run again is cancelled instead.
    """
    n = len(items)
    if not res.failures:  # the common case: every attempt succeeded
        s = Settlement(items, res, bytes(n), n, rest)
        return s.stopped() if stopping else s
    out = bytearray(n)
    errors: dict[int, tuple[str, str]] = {}
    backoff: dict[int, float] = {}
    s = Settlement(items, res, out, n - len(res.failures), rest, errors, backoff)
    allowed = retry.attempts_allowed
    for f in res.failures:
        job_id, attempt, payload = items[f.row]
        errors[f.row] = (f.error_type, f.error)
        if f.code == CANCELLED:
            out[f.row] = CANCELLED
            s.finals.append((job_id, ST_CANCELLED, None))
        elif f.permanent or attempt >= allowed or f.code == FAILED:
            out[f.row] = FAILED if f.code == RETRY else f.code
            s.finals.append((job_id, ST_FAILED, f.exc or JobFailed(f"{f.error_type}: {f.error}")))
            why = "permanent error" if f.permanent else f"attempt {attempt} of {allowed}"
            s.logs.append(
                (logging.ERROR, "job %d failed (%s): %s: %s", (job_id, why, f.error_type, f.error))
            )
        else:
            out[f.row] = f.code
            delay = retry.delay(seed, job_id, attempt)
            backoff[f.row] = delay
            item = (job_id, attempt + 1, payload)
            if delay > 0:
                s.retry_later.append((res.t1[f.row] + delay, item))
            else:
                s.retry_now.append(item)
            s.logs.append(
                (
                    logging.INFO,
                    "job %d attempt %d failed (%s: %s); retry in %.3fs",
                    (job_id, attempt, f.error_type, f.error, delay),
                )
            )
    return s.stopped() if stopping else s
