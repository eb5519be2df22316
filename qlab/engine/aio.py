"""``async def`` handlers from async code: ``await qlab.arun(...)`` and ``qlab.AsyncPool``.

Both run the handler's coroutines on the caller's own event loop (the asyncio backend
with ``loop=`` the running loop): ``workers`` is the number of jobs awaiting at once
(lanes; it may be 10,000), fed by a few engine driver threads (``drivers``, default
``min(workers, 2)``). The Run has the usual shapes; its ``worker`` column is the lane,
and ``run.meta`` says ``drivers`` and ``concurrency`` (= ``workers``).

Example:
    >>> import asyncio, qlab
    >>> async def double(x):
    ...     await asyncio.sleep(0)
    ...     return 2 * x
    >>> run = asyncio.run(qlab.arun(double, range(100), workers=50, keep_results=True))
    >>> int(run.jobs.result.sum()), run.meta["concurrency"], bool(run.attempts.worker.max() < 50)
    (9900, 50, True)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from qlab.backends.aio.backend import AsyncioBackend
from qlab.core.checks import check_int

__all__ = ["AsyncPool", "arun", "asyncio_backend"]


def asyncio_backend(
    workers: int, drivers: int | None = None, loop: asyncio.AbstractEventLoop | None = None
) -> AsyncioBackend:
    """An asyncio backend for a pool of ``workers`` lanes, with at most ``drivers``
    driver threads, on ``loop`` (a fresh one in its own thread if None).

    Example:
        >>> backend = asyncio_backend(10_000)
        >>> backend.drivers(10_000)
        2
    """
    check_int("workers", workers, 1)
    return AsyncioBackend(loop=loop, drivers=drivers)  # which checks drivers


async def arun(
    handler: Callable[[Any], Any],
    payloads: Iterable[Any],
    workers: int = 4,
    *,
    drivers: int | None = None,
    **options: Any,
) -> Any:
    """``qlab.run`` for an ``async def`` handler, on the running event loop.

    Args:
        handler: an ``async def`` function of one payload.
        payloads: an iterable of payloads (read with backpressure).
        workers: jobs awaiting at once.
        drivers: engine driver threads (default ``min(workers, 2)``).
        **options: the options of :func:`qlab.run` (retry, timeout, seed...).

    Returns:
        A :class:`qlab.Run`.
    Example:
        >>> import asyncio, qlab
        >>> async def fetch(n):
        ...     await asyncio.sleep(0.001)
        ...     return n
        >>> run = asyncio.run(qlab.arun(fetch, range(20), workers=5))
        >>> run.summary()["ok"]
        20
    """
    from qlab.engine.runner import run

    backend = asyncio_backend(workers, drivers, asyncio.get_running_loop())
    return await asyncio.to_thread(run, handler, payloads, workers, backend=backend, **options)


class AsyncPool:
    """A pool of ``async def`` jobs on the running loop: ``async with``, then
    ``await pool.submit(payload)``.

    Example:
        >>> import asyncio, qlab
        >>> async def inc(x):
        ...     return x + 1
        >>> async def main():
        ...     async with qlab.AsyncPool(inc, workers=100) as pool:
        ...         values = await asyncio.gather(*(pool.submit(i) for i in range(5)))
        ...     return values, len(pool.trace().jobs)
        >>> asyncio.run(main())
        ([1, 2, 3, 4, 5], 5)
    """

    def __init__(
        self,
        handler: Callable[[Any], Any],
        workers: int = 4,
        *,
        drivers: int | None = None,
        **options: Any,
    ) -> None:
        self._args = (handler, workers, drivers, options)
        asyncio_backend(workers, drivers)  # bad input fails here, before any job
        self._pool: Any = None

    async def __aenter__(self) -> AsyncPool:
        from qlab.engine.pool import Pool

        handler, workers, drivers, options = self._args
        backend = asyncio_backend(workers, drivers, asyncio.get_running_loop())
        self._pool = Pool(handler, workers, backend=backend, **options)
        return self

    def submit(self, payload: Any) -> asyncio.Future:
        """Queue one job; an awaitable of its result. (It blocks the loop only while
        ``queue_size`` jobs are in flight.)"""
        if self._pool is None:
            raise RuntimeError("use the pool inside 'async with'")
        return asyncio.wrap_future(self._pool.submit(payload))

    async def __aexit__(self, *exc: Any) -> None:
        await asyncio.to_thread(self._pool.shutdown)

    def trace(self) -> Any:
        """The :class:`qlab.Run` so far."""
        return self._pool.trace()
