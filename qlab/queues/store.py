"""The store contract of the durable queues: what a :class:`Store` keeps and does,
the rows it holds, and who owns a lease.

A store (``qlab.queues.sqlite``, ``qlab.queues.redis``) keeps a queue's jobs (payloads
pickled, with cloudpickle where plain pickle fails), each job's status, next attempt
and due time, the owner (consumer) whose lease covers it, the jobs taken and not
settled, and every attempt's row, which names the consumer that ran it. Job statuses in a store:
``S_OPEN``, ``S_OK``, ``ST_FAILED`` and ``ST_CANCELLED``, defined in :mod:`qlab.core.codes`
(``STORE_STATUS`` there maps them to a trace's). An owner is a
process (``host:pid:start-ms:random``); one that was a process of this host that is
gone has no live lease, whatever its expiry says.

Example:
    >>> owner_dead(owner_id())
    False
"""

from __future__ import annotations

import math
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from qlab.core.batches import Batch
from qlab.core.codes import LOST, S_OK, S_OPEN  # a store's status codes (and STORE_STATUS)
from qlab.core.pickling import dumps  # cloudpickle where pickle fails
from qlab.queues.urls import redact, shown

__all__ = ["S_OK", "S_OPEN", "Claimed", "Row", "Settled", "Store", "StoreError", "dumps",
           "fingerprint", "lost_row", "owner_dead", "owner_id", "pickle_payloads"]  # fmt: skip

# an attempt row: (job_id, attempt, worker, start, end, cpu, outcome, error_type, error,
# backoff, throttle, consumer); times in epoch seconds, consumer an owner_id()
Row = tuple
COLUMNS = ("job_id", "attempt", "worker", "start", "end", "cpu_s", "outcome", "error_type",
           "error", "backoff_s", "throttle_s", "consumer")  # fmt: skip


def lost_row(job: int, attempt: int, start: float, end: float, consumer: str) -> Row:
    """The row of an attempt that was running when its consumer stopped.

    Example:
        >>> lost_row(3, 2, 10.0, 10.0, "h:1:2:ab")[:3], lost_row(3, 2, 10.0, 10.0, "c")[6:9]
        ((3, 2, -1), (6, 'Lost', 'its consumer c stopped while it ran'))
    """
    why = f"its consumer {consumer} stopped while it ran"
    return (job, attempt, -1, start, end, math.nan, LOST, "Lost", why, None, 0.0, consumer)


class StoreError(RuntimeError):
    """A durable queue's store failed: it could not be read or written (a full disk, a
    lock held too long, a Redis that is down, frozen or restarted empty). The message
    names the queue (its password redacted) and the cause; ``queue`` and ``cause`` hold
    them. Raised by a run whose store fails mid-run (with the Run attached as
    ``exc.qlab_run``), and by resume, serve and load_run on a store that fails.

    Example:
        >>> err = StoreError("redis://:pw@h/0?name=q", OSError("disk full"))
        >>> str(err)
        "queue 'redis://:***@h/0?name=q': its store failed (OSError: disk full)"
    """

    def __init__(self, url: str, cause: BaseException | str, more: str = "") -> None:
        self.queue = redact(url)
        self.cause = cause
        why = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        super().__init__(f"queue {shown(url)}: its store failed ({redact(why)}){more}")


@dataclass
class Settled:
    """What one settlement (or a cancellation) writes to a store, in one transaction.

    ``rows``: attempt rows; ``ok``: jobs that succeeded; ``ended``: jobs that failed or
    were cancelled for good, ``(job, code, error_type, error)``; ``again``: jobs that
    run again, ``(job, next attempt, uncharged rows, due epoch seconds or None)``;
    ``back``: jobs that go back untouched (taken, not run).
    """

    rows: list[Row] = field(default_factory=list)
    ok: range | list[int] = field(default_factory=list)
    ended: list[tuple[int, int, str, str]] = field(default_factory=list)
    again: list[tuple[int, int, int, float | None]] = field(default_factory=list)
    back: list[int] = field(default_factory=list)


@dataclass
class Claimed:
    """Open jobs that a resuming owner took over, in columns."""

    ids: list[int] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)  # the next attempt (charged ones + 1)
    extra: list[int] = field(default_factory=list)  # uncharged rows before (lost, stopped)
    due: list[float | None] = field(default_factory=list)  # epoch seconds, or None: now
    submitted: list[float] = field(default_factory=list)
    payloads: list[Any] = field(default_factory=list)
    lost: int = 0  # attempts recorded lost while claiming
    held: int = 0  # open jobs left to owners whose lease is live


class Store(Protocol):
    """What a durable queue writes through to (``qlab.queues.sqlite``, ``.redis``)."""

    url: str
    owner: str
    lease: float

    def count(self) -> int: ...
    def init(self, meta: dict[str, str], owner: bool = True) -> None: ...
    def meta(self) -> dict[str, str]: ...
    def add(self, first: int, blobs: list[bytes], submitted: float) -> None: ...
    def enqueue(self, blobs: list[bytes], submitted: float) -> list[range]: ...
    def taken(self, batch: Batch, t: float) -> None: ...
    def settled(self, s: Settled) -> None: ...
    def renew(self, until: float) -> None: ...
    def release(self) -> None: ...
    def claim(self, limit: int | None = None) -> Claimed: ...
    def unfinished(self) -> int: ...
    def load(self) -> tuple[list[tuple[int, float, int]], list[Row]]: ...
    def close(self) -> None: ...


def owner_id() -> str:
    """This process as a lease owner: ``host:pid:start-ms:random``."""
    import psutil

    started = int(psutil.Process().create_time() * 1000)
    return f"{socket.gethostname()}:{os.getpid()}:{started}:{uuid.uuid4().hex[:8]}"


def owner_dead(owner: str) -> bool:
    """True if ``owner`` was a process of this host that is gone (its lease need not
    expire first); False if it lives or runs elsewhere."""
    import psutil

    try:
        host, pid, started, _ = owner.rsplit(":", 3)
        if host != socket.gethostname():
            return False
        proc = psutil.Process(int(pid))
        return proc.status() == psutil.STATUS_ZOMBIE or int(proc.create_time() * 1000) != int(
            started
        )
    except (ValueError, psutil.NoSuchProcess):
        return True
    except psutil.Error:
        return False


def pickle_payloads(payloads: Sequence[Any], url: str) -> list[bytes]:
    """The payloads pickled (cloudpickle where plain pickle fails); TypeError naming
    the first that cannot be pickled at all.

    Example:
        >>> import threading
        >>> pickle_payloads([1, threading.Lock()], "sqlite:///q.db")
        Traceback (most recent call last):
        ...
        TypeError: payload 1 (<unlocked _thread.lock object at ...>) cannot be pickled for queue 'sqlite:///q.db': TypeError: cannot pickle '_thread.lock' object
    """  # noqa: E501
    blobs = []
    for i, payload in enumerate(payloads):
        try:
            blobs.append(dumps(payload))
        except Exception as exc:
            what = repr(payload)
            what = what if len(what) <= 60 else what[:57] + "..."
            raise TypeError(
                f"payload {i} ({what}) cannot be pickled for queue "
                f"{shown(url)}: {type(exc).__name__}: {exc}"
            ) from exc
    return blobs


def fingerprint(handler: Any) -> str:
    """What names a handler across processes: ``module:qualname`` of it or its type.

    Example:
        >>> fingerprint(abs)
        'builtins:abs'
    """
    obj = handler if hasattr(handler, "__qualname__") else type(handler)
    return f"{getattr(obj, '__module__', '?')}:{obj.__qualname__}"
