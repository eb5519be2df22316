"""``qlab.resume``: finish a durable queue whose owner died, and return its whole Run.

A run on a durable queue (``queue="sqlite:///runs/q.db"``, ``"redis://..."``) writes
its jobs before they run and each settlement as it is applied. If its process is
killed, :func:`resume` takes the queue over: jobs whose owner's lease expired (or whose
owner was a process of this host that is gone) go back to the queue, and attempts that
were running at the crash are recorded with the outcome ``lost``. A lost attempt is not
charged to the job's retries: it runs again, so delivery is at least once (a handler
with side effects may see a job twice). Jobs under a live lease (another process is
resuming or running them) are left alone and waited for, so two resumers never run one
job at once under a live lease.

A resume is a consumer (:func:`qlab.serve`) that runs until the queue is drained,
claiming jobs in chunks of ``queue_size`` (1,000 by default), so its first job starts
after one chunk is read, however many jobs the queue holds.


Example:
    >>> import os, tempfile, qlab
    >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "q.db")
    >>> _ = qlab.run(abs, [-1, -2, -3], workers=1, queue=url)
    >>> run = qlab.resume(url, abs)     # a finished queue: its Run
    >>> run.summary()["ok"], run.meta["lost"]
    (3, 0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qlab.core.checks import check_int
from qlab.engine.serve import consume

__all__ = ["resume"]

CHUNK = 1000  # jobs a resumer claims at a time unless queue_size= says otherwise


def resume(
    url: str,
    handler: Callable[[Any], Any],
    workers: int = 4,
    *,
    force: bool = False,
    **options: Any,
) -> Any:
    """Finish the durable queue at ``url`` with ``handler``; the Run of all its history.

    Args:
        url: the queue's URL, as given to ``qlab.run(..., queue=url)``.
        handler: the processing logic; it must be the one the queue was made for
            (its ``module:qualname``) unless ``force=True``.
        workers: workers of the resuming pool.
        force: resume with a handler other than the queue's.
        **options: the options of :class:`qlab.Pool` (retry, timeout, seed, backend,
            stop...); pass the ones the run had, since the queue does not keep them.
            ``queue_size``: jobs claimed at a time (default 1,000).

    Returns:
        A :class:`qlab.Run` of every job and every attempt, before and after the
        crash, by every consumer; ``run.meta["lost"]`` counts the lost attempts,
        ``["resumes"]`` is 1 if this call ran jobs, 0 if there was nothing to run.

    Raises:
        ValueError: an unknown scheme, a missing or foreign queue, a handler other than
            the queue's.
        TypeError: a handler that is not callable, or ``queue=`` among the options.

    Example:
        >>> import os, tempfile, qlab
        >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "q.db")
        >>> first = qlab.run(abs, range(10), queue=url)
        >>> qlab.resume(url, abs).summary()["ok"]  # nothing was left: the Run of its history
        10
    """
    if not callable(handler):
        raise TypeError(f"handler must be callable, got {handler!r}")
    if "queue" in options:
        raise TypeError("resume() takes the queue as its url, not as queue=")
    prefetch = options.pop("queue_size", None) or CHUNK
    workers = check_int("workers", workers, 1)
    run = consume(url, handler, workers, until_empty=True, prefetch=prefetch, force=force,
                  create=False, whole=True, **options)  # fmt: skip
    run.meta["resumes"] = int((run.attempts.consumer == run.meta["consumer"]).any())
    return run
