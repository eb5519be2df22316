"""A queue shared by producers and consumers: :func:`enqueue` and :func:`serve`.

``qlab.run(..., queue=url)`` is a producer that consumes its own jobs. A shared queue
splits the two, as RQ and Celery do: producers only add jobs, and any number of
consumers (pools, in this process or others, on this machine or others for Redis)
take them as they come::

    qlab.enqueue(url, payloads, handler=f)    # producer: jobs in the queue, nothing runs
    qlab.serve(url, f, workers=8)             # consumer: a pool fed from the queue
    $ qlab worker --queue URL --handler pkg.mod:f --workers 8 --until-empty

A consumer claims at most ``prefetch`` jobs at a time (on Redis with ``XREADGROUP``:
each entry goes to one consumer; on SQLite by marking rows in one ``BEGIN
IMMEDIATE``), so several consumers share the work. What it holds is under its lease,
renewed while it lives; a consumer that dies or stops leaves its jobs to the others:
at once if it released its lease or was a process of this host that is gone, when
its lease expires otherwise (``XAUTOCLAIM``). Each consumer writes its own attempt
rows, naming itself in their ``consumer`` column; ``qlab.load_run(url)`` merges them.


Example:
    >>> import os, tempfile, qlab
    >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "q.db")
    >>> len(qlab.enqueue(url, [-1, -2, -3], handler=abs))
    3
    >>> run = qlab.serve(url, abs, workers=2, until_empty=True)
    >>> run.summary()["ok"], qlab.load_run(url).summary()["ok"]
    (3, 3)
"""

from __future__ import annotations

import base64
import pickle
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from qlab import queues
from qlab.core.checks import check_int
from qlab.engine.lifecycle import drive, finished, guarded
from qlab.engine.pool import Pool
from qlab.queues.history import load_queue
from qlab.queues.store import Store, dumps, fingerprint, pickle_payloads
from qlab.queues.urls import shown

__all__ = ["enqueue", "serve"]

POLL_S = 0.05  # how often an idle consumer looks for new jobs and interrupts


def open_queue(url: str, handler: Any, force: bool, create: bool = True) -> Store:
    """The store of the queue at ``url`` (made, shared, if missing and ``create``),
    after the handler check.

    Raises:
        ValueError: a handler other than the queue's (unless ``force``), a bad URL, a
            foreign file; for ``create=False`` a missing queue.
    """
    cls = queues.queue_class(url)
    store = cls.store_class(url, create=create)
    try:
        meta = store.meta()
        made_for = meta.get("fingerprint")
        if not made_for:  # a new queue, or one a consumer made without a handler: take it
            info = {} if meta else {"created": repr(time.time()), "mode": "shared"}
            if handler is not None:
                info["fingerprint"] = fingerprint(handler)
                info["handler_pickle"] = base64.b64encode(dumps(handler)).decode()
            if info:
                store.init(info, owner=False)
            return store
        if handler is not None and made_for != fingerprint(handler) and not force:
            raise ValueError(
                f"queue {shown(url)} was made for handler {made_for!r}, not "
                f"{fingerprint(handler)!r}: pass force=True to use this one"
            )
    except BaseException:
        store.close()
        raise
    return store


def enqueue(url: str, payloads: Iterable[Any], handler: Any = None, *, force: bool = False) -> list:
    """Add jobs to the shared queue at ``url`` (made if missing); nothing runs here.

    Args:
        url: a queue URL (``redis://...?name=q``, ``sqlite:///q.db``).
        payloads: the jobs' payloads, pickled (cloudpickle where plain pickle fails).
        handler: what consumers will run: its ``module:qualname`` is checked against
            the queue's, and a new queue keeps it (pickled) for consumers that name none.
        force: add jobs although the queue was made for another handler.

    Returns:
        The new jobs' ids.

    Raises:
        TypeError: a payload that cannot be pickled (named; nothing is added).
        ValueError: a queue made by ``qlab.run`` (it is that run's), another handler.

    Example:
        >>> import os, tempfile, qlab
        >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "shared.db")
        >>> len(qlab.enqueue(url, range(5), handler=abs))
        5
    """
    if isinstance(payloads, str | bytes) or not isinstance(payloads, Iterable):
        raise TypeError(f"payloads must be an iterable of payloads, got {payloads!r}")
    if handler is not None and not callable(handler):
        raise TypeError(f"handler must be callable or None, got {handler!r}")
    blobs = pickle_payloads(list(payloads), url)
    store = open_queue(url, handler, force)
    try:
        if store.meta().get("mode") != "shared":
            raise ValueError(
                f"queue {shown(url)} belongs to the qlab.run that made it: "
                "enqueue to a queue of its own (qlab.resume or qlab.serve finish this one)"
            )
        ranges = store.enqueue(blobs, time.time()) if blobs else []
    finally:
        store.close()
    return [job for r in ranges for job in r]


def serve(
    url: str,
    handler: Callable[[Any], Any] | None = None,
    workers: int = 4,
    *,
    until_empty: bool = False,
    prefetch: int | None = None,
    force: bool = False,
    stop: threading.Event | None = None,
    **options: Any,
) -> Any:
    """Consume the queue at ``url``: a pool of ``workers`` runs the jobs it claims.

    Args:
        url: a queue URL; a missing queue is made (shared), so workers may start first.
        handler: the processing logic; None: the one the producer stored
            (``enqueue(..., handler=)``). Checked against the queue's (``module:qualname``)
            unless ``force``.
        workers: workers of this consumer's pool.
        until_empty: end once every job of the queue has a final status (others' live
            leases are waited for, and taken over if they expire); False: serve until
            Ctrl-C, SIGTERM or ``stop``.
        prefetch: jobs this consumer holds at most (claimed, running, retrying);
            default ``16 * workers`` (it claims again when a quarter is free).
        stop: a ``threading.Event``; setting it stops the consumer as Ctrl-C does.
        **options: the options of :class:`qlab.Pool` (retry, timeout, backend,
            rate_limit...); not ``queue``.

    Returns:
        A :class:`qlab.Run` of the jobs this consumer ran (rows from the store, times
        from the queue's creation, ``meta["consumer"]`` its name). A stop leaves the
        jobs it held open and gives up its lease, so other consumers take them at once.

    Raises:
        ValueError / TypeError: bad input, before any job runs.

    Example:
        >>> import os, tempfile, qlab
        >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "shared.db")
        >>> _ = qlab.enqueue(url, range(5), handler=abs)
        >>> qlab.serve(url, abs, workers=2, until_empty=True).summary()["ok"]
        5
    """
    if "queue" in options:
        raise TypeError("serve() takes the queue as its url, not as queue=")
    workers = check_int("workers", workers, 1)
    prefetch = check_int("prefetch", 16 * workers if prefetch is None else prefetch, 1)
    if handler is not None and not callable(handler):
        raise TypeError(f"handler must be callable or None, got {handler!r}")
    return consume(url, handler, workers, until_empty=until_empty, prefetch=prefetch,
                   force=force, stop=stop, **options)  # fmt: skip


def consume(
    url: str,
    handler: Callable[[Any], Any] | None,
    workers: int,
    *,
    until_empty: bool,
    prefetch: int,
    force: bool = False,
    stop: threading.Event | None = None,
    create: bool = True,
    whole: bool = False,
    **options: Any,
) -> Any:
    """:func:`serve`, with its inputs checked; ``create``: make a missing queue;
    ``whole``: the Run of the whole queue, not only this consumer's jobs (``qlab.resume``
    sets both to False and True)."""
    store = open_queue(url, handler, force, create=create)
    consumer = store.owner
    try:
        meta = store.meta()
        handler = handler if handler is not None else _stored_handler(url, meta)
    except BaseException:
        store.close()
        raise
    interrupted = _consume(url, store, handler, workers, until_empty, prefetch, stop, options)
    run = load_queue(url, consumer=None if whole else consumer)  # whole: qlab.resume's
    run.meta["consumer"] = consumer
    if interrupted:
        run.meta["interrupted"] = interrupted
    return run


def _stored_handler(url: str, meta: dict[str, str]) -> Any:
    blob = meta.get("handler_pickle")
    if not blob:
        raise ValueError(f"queue {shown(url)} keeps no handler: pass one (handler=, --handler)")
    return pickle.loads(base64.b64decode(blob))


def _consume(
    url: str,
    store: Store,
    handler: Any,
    workers: int,
    until_empty: bool,
    prefetch: int,
    stop: threading.Event | None,
    options: dict[str, Any],
) -> str | None:
    """Run a pool over the jobs claimed from ``store`` (see :func:`serve`); why it
    was interrupted, if it was."""
    cls = queues.queue_class(url)
    clock = options.get("clock")
    q = cls(store, prefetch, **({} if clock is None else {"now": clock.now}))
    with guarded(stop) as interrupts:
        try:
            with q.io:
                store.renew(time.time() + store.lease)  # a consumer owns a lease first
            pool = Pool(handler, workers, futures=False, interrupts=interrupts, queue=q,
                        **options)  # fmt: skip
        except BaseException:
            store.close()
            raise
        pool.parts.meta["queue"] = queues.redact(url)
        drive(pool, lambda: _feed(pool, q, store, until_empty))
        return finished(pool, interrupts).meta.get("interrupted")  # signals still noted


def _feed(pool: Any, q: Any, store: Store, until_empty: bool) -> None:
    """Claim jobs into the pool's queue while it has room for a quarter of
    ``prefetch``; return once the queue is drained (``until_empty``)."""
    idle = threading.Event()
    while True:
        pool.idle_turn()  # raises on Ctrl-C, SIGTERM or stop
        if q.space() < q.refill and q.unfinished:
            q.wait_space(q.refill, POLL_S)
            continue
        q.check()  # the store failed (a write of the pool's): stop
        try:
            with q.io:  # the store's connection is the queue's; released before load
                claimed = store.claim(q.space())
            if not claimed.ids and until_empty and q.unfinished == 0:
                with q.io:
                    if not store.unfinished():
                        return
        except Exception as exc:
            raise q.fail(exc) from exc
        if claimed.ids:
            q.load(claimed)
            continue
        idle.wait(POLL_S)
