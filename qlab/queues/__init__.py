"""Queues: where a pool's jobs wait. The one registry of queue kinds lives here.

``queue=`` takes ``"memory"`` (the default), a URL whose scheme names a registered
kind (``sqlite:///runs/q.db``, ``redis://127.0.0.1:6379/0?name=q``), or an object that
implements :class:`qlab.queues.memory.JobQueue`. A durable queue subclasses
:class:`qlab.queues.memory.MemoryQueue` (which keeps the live run's books) and writes
through to its store: jobs when they are put, outcomes and trace rows when a
settlement is applied.
A durable queue may also be shared by producers and consumers in other processes
(:mod:`qlab.queues.shared`: ``qlab.enqueue``, ``qlab.serve``, ``qlab worker``).

Example:
    >>> from qlab import queues
    >>> q = queues.resolve(None, capacity=8)
    >>> type(q).__name__, q.capacity
    ('MemoryQueue', 8)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from qlab.queues.memory import JobQueue, MemoryQueue
from qlab.queues.store import StoreError
from qlab.queues.urls import redact, shown

__all__ = ["KINDS", "StoreError", "queue_class", "redact", "register", "resolve"]

# URL scheme -> "module:class"; the class has from_url(url, capacity=, handler=, now=)
_REGISTRY: dict[str, str] = {}
KINDS: tuple[str, ...] = ("memory",)


def register(scheme: str, target: str) -> None:
    """Name a queue kind: ``register("sqlite", "qlab.queues.sqlite:SQLiteQueue")``."""
    global KINDS
    _REGISTRY[scheme] = target
    KINDS = ("memory", *sorted(_REGISTRY))


def queue_class(url: str) -> Any:
    """The class registered for ``url``'s scheme.

    Raises:
        ValueError: not a URL of a registered kind (the message lists them).
    """
    scheme = url.partition("://")[0] if isinstance(url, str) and "://" in url else ""
    if scheme not in _REGISTRY:
        raise ValueError(
            f"queue must be 'memory' or a URL of {sorted(_REGISTRY) or 'a registered kind'}"
            f", got {shown(url)}"
        )
    module, cls = _REGISTRY[scheme].split(":")
    return getattr(importlib.import_module(module), cls)


def resolve(
    queue: Any, capacity: int, now: Callable[[], float] | None = None, handler: Any = None
) -> JobQueue:
    """The queue for ``queue=``: a new one for a name or URL, or the object itself.
    ``handler`` is the pool's (a durable queue stores its fingerprint).

    Raises:
        ValueError: an unknown kind (the message lists the known ones).
        TypeError: neither a string nor a queue object.
    """
    kwargs: dict[str, Any] = {} if now is None else {"now": now}
    if queue is None or queue == "memory":
        return MemoryQueue(capacity, **kwargs)
    if isinstance(queue, str):
        return queue_class(queue).from_url(queue, capacity=capacity, handler=handler, **kwargs)
    if isinstance(queue, MemoryQueue) or all(
        hasattr(queue, m) for m in ("put", "take", "apply", "promote", "advance_phase")
    ):
        return queue
    raise TypeError(f"queue must be 'memory', a queue URL or a JobQueue, got {shown(queue)}")


register("sqlite", "qlab.queues.sqlite:SQLiteQueue")
register("redis", "qlab.queues.redis:RedisQueue")
register("rediss", "qlab.queues.redis:RedisQueue")
