"""A pool's options, checked once before anything starts: :func:`pool_options`.

Every check names the parameter it rejects, and runs before a queue, a backend or a
worker exists, so bad input never leaves a half-made pool behind. The result is a
frozen :class:`PoolOptions` that :class:`qlab.Pool` keeps and puts in ``run.meta``.

Example:
    >>> o = pool_options(abs, workers=2, retry=3, timeout=None, seed=0, queue_size=None,
    ...                  batch_size=None, grace=5.0, clock=None, rate_limit=None)
    >>> o.workers, o.retry.max_retries, o.capacity
    (2, 3, 10000)
    >>> pool_options(abs, workers=0, retry=None, timeout=None, seed=0, queue_size=None,
    ...              batch_size=None, grace=5.0, clock=None, rate_limit=None)
    Traceback (most recent call last):
    ...
    ValueError: workers must be an int >= 1, got 0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qlab.core.checks import check_int, check_retry, check_seconds, describe, is_async
from qlab.core.clock import REAL_CLOCK
from qlab.core.retry import Retry
from qlab.engine.ratelimit import RateLimit, check_rate_limit

__all__ = ["DEFAULT_QUEUE_SIZE", "PoolOptions", "fit_workers", "pool_options", "runnable_handler"]

DEFAULT_QUEUE_SIZE = 10_000


@dataclass(frozen=True)
class PoolOptions:
    """The checked options of one pool (see :class:`qlab.Pool` for each)."""

    workers: int
    retry: Retry
    timeout: float | None
    seed: int | None
    capacity: int  # queue_size, or its default
    batch_size: int | None
    grace: float
    clock: Any
    limit: RateLimit | None

    def meta(self, backend: str, workload: Any, queue: str) -> dict[str, Any]:
        """The options' part of ``run.meta``."""
        meta: dict[str, Any] = {
            "backend": backend,
            "workers": self.workers,
            "seed": self.seed,
            "retry": repr(self.retry),
            "timeout": self.timeout,
            "queue_size": self.capacity,
            "batch_size": self.batch_size,
            "workload": describe(workload),
            "queue": queue,
        }
        if self.limit is not None:
            meta["rate_limit"] = {"rate": self.limit.rate, "burst": self.limit.burst}
        return meta


def pool_options(
    handler: Any,
    *,
    workers: Any,
    retry: Any,
    timeout: Any,
    seed: Any,
    queue_size: Any,
    batch_size: Any,
    grace: Any,
    clock: Any,
    rate_limit: Any,
) -> PoolOptions:
    """Check a pool's options; None picks the defaults (queue_size 10,000, the real
    clock).

    Raises:
        ValueError / TypeError: the first bad one, named.
    """
    if not callable(handler):
        raise TypeError(f"handler must be callable, got {handler!r}")
    workers = check_int("workers", workers, 1)
    retry = check_retry(retry)
    timeout = check_seconds("timeout", timeout)
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise ValueError(f"seed must be an int or None, got {seed!r}")
    capacity = check_int("queue_size", DEFAULT_QUEUE_SIZE if queue_size is None else queue_size, 1)
    batch_size = None if batch_size is None else check_int("batch_size", batch_size, 1)
    grace = check_seconds("grace", grace, allow_zero=True)
    clock = REAL_CLOCK if clock is None else clock
    if not callable(getattr(clock, "now", None)):
        raise TypeError(f"clock must have a now() method, got {clock!r}")
    limit = check_rate_limit(rate_limit)
    return PoolOptions(workers, retry, timeout, seed, capacity, batch_size, grace, clock, limit)


def fit_workers(workers: int, backend: Any, jobs: int | None) -> int:
    """The workers to start: no more than ``jobs`` when the number of jobs is known
    (``qlab.run`` over a list or range), and at most the backend's ``max_workers``
    (thread and inline 10,000; process and dask 512; asyncio lanes 1,000,000).

    Raises:
        ValueError: more workers than the backend's limit, naming ``workers``.

    Example:
        >>> from qlab.backends.thread import ThreadBackend
        >>> fit_workers(10**6, ThreadBackend(), jobs=10)
        10
        >>> fit_workers(10**6, ThreadBackend(), jobs=None)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: workers=1,000,000 is above the thread backend's limit of 10,000 ...
    """
    if jobs is not None:
        workers = max(1, min(workers, jobs))
    most = getattr(backend, "max_workers", None)
    if isinstance(most, int) and workers > most:
        name = getattr(backend, "name", type(backend).__name__)
        hint = (
            "" if name == "asyncio" else "; for many I/O-bound jobs at once use backend='asyncio'"
        )
        raise ValueError(
            f"workers={workers:,} is above the {name} backend's limit of {most:,} workers{hint}"
        )
    return workers


def runnable_handler(handler: Any, backend: Any) -> Any:
    """What ``backend`` runs for ``handler``: the handler itself, or, for an ``async
    def`` handler on a backend that runs plain functions, the blocking twin an async
    workload offers (``__qlab_sync__``).

    Raises:
        TypeError: an async handler without a twin on such a backend.
    """
    if not is_async(handler) or getattr(backend, "runs_coroutines", False):
        return handler
    twin = getattr(handler, "__qlab_sync__", None)
    if not callable(twin):
        raise TypeError(
            f"handler {describe(handler)} is async def: use backend='asyncio' "
            f"(backend={backend.name!r} would return its coroutines unawaited)"
        )
    return twin()
