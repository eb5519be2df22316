"""The names that the engine, the backends and the trace share, each defined once.

Outcome codes (one per attempt) and job status codes are small ints, so that a
column of them is a ``bytearray``; their names are the categories of the
``outcome`` and ``status`` columns of ``run.attempts`` and ``run.jobs``.

Example:
    >>> OUTCOMES[TIMEOUT], JOB_STATUSES[STATUS_CODES[ST_CANCELLED]]
    ('timeout', 'cancelled')
"""

from __future__ import annotations

__all__ = [
    "CANCELLED",
    "CRASHED",
    "FAILED",
    "JOB_STATUSES",
    "LOST",
    "OK",
    "OUTCOMES",
    "RETRY",
    "STATUS_CODES",
    "ST_CANCELLED",
    "ST_FAILED",
    "ST_OPEN",
    "TIMEOUT",
]

# what became of one attempt (run.attempts.outcome)
# (lost: the attempt was running when its owner died; a durable queue records it on resume)
OUTCOMES = ("ok", "retry", "failed", "timeout", "crashed", "cancelled", "lost")
OK, RETRY, FAILED, TIMEOUT, CRASHED, CANCELLED, LOST = range(len(OUTCOMES))

# what became of one job (run.jobs.status)
JOB_STATUSES = ("ok", "failed", "cancelled", "pending")
# A job's code in the queue's status column: ST_OPEN until it fails or is cancelled
# (an open job whose last attempt is ok is ok; one without such an attempt is pending).
ST_OPEN, ST_FAILED, ST_CANCELLED = 0, 2, 3
# queue status code -> index in JOB_STATUSES
STATUS_CODES = {ST_FAILED: 1, ST_CANCELLED: 2}
