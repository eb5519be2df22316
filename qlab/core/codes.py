"""The names that the engine, the backends and the trace share, each defined once.

Outcome codes (one per attempt) and job status codes are small ints, so that a
column of them is a ``bytearray``; their names are the categories of the
``outcome`` and ``status`` columns of ``run.attempts`` and ``run.jobs``.

Example:
    >>> OUTCOMES[TIMEOUT], JOB_STATUSES[STATUS_INDEX[ST_CANCELLED]]
    ('timeout', 'cancelled')
    >>> JOB_STATUSES[STATUS_INDEX[STORE_STATUS[S_OPEN]]]  # an open job in a store
    'pending'
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
    "STATUS_INDEX",
    "STORE_STATUS",
    "ST_CANCELLED",
    "ST_FAILED",
    "ST_OK",
    "ST_OPEN",
    "ST_PENDING",
    "S_OK",
    "S_OPEN",
    "TIMEOUT",
]

# what became of one attempt (run.attempts.outcome)
# (lost: the attempt was running when its owner died; a durable queue records it on resume)
OUTCOMES = ("ok", "retry", "failed", "timeout", "crashed", "cancelled", "lost")
OK, RETRY, FAILED, TIMEOUT, CRASHED, CANCELLED, LOST = range(len(OUTCOMES))

# what became of one job (run.jobs.status)
JOB_STATUSES = ("ok", "failed", "cancelled", "pending")
# A job's code in a trace's status column (one per job id). ST_OPEN: not ended; the job
# is ok if its last attempt is, else pending (a live queue marks no job ok: its last
# attempt says). ST_PENDING: open whatever its last attempt (a store's open job: a store
# marks its ok jobs ST_OK in the same transaction as their rows).
ST_OPEN, ST_OK, ST_FAILED, ST_CANCELLED, ST_PENDING = range(5)
# trace status code -> index in JOB_STATUSES (ST_OPEN: pending until an ok last attempt)
STATUS_INDEX = bytes([3, 0, 1, 2, 3])

# A durable store's status column (qlab.queues.store; these values are on disk):
# S_OPEN, S_OK, ST_FAILED, ST_CANCELLED.
S_OPEN, S_OK = 0, 1
# store status code -> trace status code
STORE_STATUS = bytes([ST_PENDING, ST_OK, ST_FAILED, ST_CANCELLED])
