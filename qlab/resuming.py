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

Example:
    >>> import os, tempfile, qlab
    >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "q.db")
    >>> _ = qlab.run(abs, [-1, -2, -3], workers=1, queue=url)
    >>> run = qlab.resume(url, abs)     # a finished queue: its Run
    >>> run.summary()["ok"], run.meta["lost"]
    (3, 0)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from qlab import queues
from qlab.engine import DEFAULT_QUEUE_SIZE
from qlab.queues.history import build_run
from qlab.queues.store import fingerprint

__all__ = ["resume"]

_POLL_S = 0.1  # how often a resumer looks again at jobs under another owner's live lease


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
        **options: the options of :class:`qlab.Pool` (retry, timeout, seed, backend...);
            pass the ones the run had, since the queue does not keep them.

    Returns:
        A :class:`qlab.Run` of every job and every attempt, before and after the
        crash; ``run.meta["lost"]`` counts the lost attempts, ``["resumes"]`` the
        rounds this call ran. A finished queue gives its Run at once.

    Raises:
        ValueError: an unknown scheme, a missing or foreign queue, a handler other than
            the queue's.
        TypeError: a handler that is not callable, or ``queue=`` among the options.
    """
    from qlab.runner import run

    if not callable(handler):
        raise TypeError(f"handler must be callable, got {handler!r}")
    if "queue" in options:
        raise TypeError("resume() takes the queue as its url, not as queue=")
    cls = queues.queue_class(url)
    store = cls.open(url)
    made_for = store.meta().get("fingerprint")
    if made_for and made_for != fingerprint(handler) and not force:
        store.close()
        raise ValueError(
            f"queue {queues.redact(url)!r} was made for handler {made_for!r}, not "
            f"{fingerprint(handler)!r}: pass force=True to resume it with this one"
        )
    clock = options.get("clock")
    size = options.get("queue_size") or DEFAULT_QUEUE_SIZE
    rounds, interrupted = 0, None
    while True:
        claimed = store.claim()
        if not claimed.ids:
            if not claimed.held:
                break
            store.close()  # others hold live leases: wait for them to finish or die
            threading.Event().wait(_POLL_S)
            store = cls.open(url)
            continue
        kwargs = {} if clock is None else {"now": clock.now}
        q = cls(store, max(size, len(claimed.ids)), **kwargs)
        q.load(claimed)
        rounds += 1
        result = run(handler, [], workers, queue=q, **options)  # closes the store
        interrupted = result.meta.get("interrupted")
        store = cls.open(url)
        if interrupted:
            break
    try:
        jobs, rows = store.load()
        meta = store.meta()
    finally:
        store.close()
    meta.update(queue=queues.redact(url), resumes=rounds)
    if interrupted:
        meta["interrupted"] = interrupted
    return build_run(jobs, rows, meta)
