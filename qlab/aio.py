"""``async def`` handlers from async code: ``await qlab.arun(...)`` and ``qlab.AsyncPool``.

Both run the handler's coroutines on the caller's own event loop (the asyncio backend
with ``loop=`` the running loop), while the engine's few driver threads (``lanes``)
feed them: ``workers`` is the number of jobs awaiting at once, and it may be 10,000.
The Run has the usual shapes; its ``worker`` column is the lane, and
``run.meta`` says ``lanes`` and ``concurrency`` (= ``workers``).

Why lanes: the engine starts one driver thread per worker; 10,000 threads would
cost seconds to start. Until a backend can choose its driver count (see
docs/design.md), these entry points ask the engine for ``lanes`` workers and the
backend for ``workers`` concurrent tasks. ``qlab.run(..., backend="asyncio")`` gives
one task per worker thread, which suits tens to hundreds of workers.

Example:
    >>> import asyncio, qlab
    >>> async def double(x):
    ...     await asyncio.sleep(0)
    ...     return 2 * x
    >>> run = asyncio.run(qlab.arun(double, range(100), workers=50, keep_results=True))
    >>> int(run.jobs.result.sum()), run.meta["concurrency"]
    (9900, 50)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from qlab.backends.asyncio import AsyncioBackend
from qlab.checks import check_int

__all__ = ["LANES", "AsyncPool", "arun", "asyncio_backend"]

LANES = 4  # driver threads by default: enough to settle batches while others run


def asyncio_backend(
    workers: int, lanes: int | None = None, loop: asyncio.AbstractEventLoop | None = None
) -> tuple[AsyncioBackend, int]:
    """An asyncio backend running ``workers`` tasks at once, and the number of engine
    workers (lanes) to give the pool.

    Example:
        >>> backend, lanes = asyncio_backend(10_000)
        >>> backend.concurrency, lanes
        (10000, 4)
    """
    workers = check_int("workers", workers, 1)
    lanes = min(workers, LANES if lanes is None else check_int("lanes", lanes, 1))
    return AsyncioBackend(loop=loop, concurrency=workers), lanes


async def arun(
    handler: Callable[[Any], Any],
    payloads: Iterable[Any],
    workers: int = 4,
    *,
    lanes: int | None = None,
    **options: Any,
) -> Any:
    """``qlab.run`` for an ``async def`` handler, on the running event loop.

    Args:
        handler: an ``async def`` function of one payload.
        payloads: an iterable of payloads (read with backpressure).
        workers: jobs awaiting at once.
        lanes: engine driver threads (default ``min(workers, 4)``).
        **options: the options of :func:`qlab.run` (retry, timeout, seed...).

    Returns:
        A :class:`qlab.Run`.
    """
    from qlab.runner import run

    backend, lanes = asyncio_backend(workers, lanes, asyncio.get_running_loop())
    return await asyncio.to_thread(run, handler, payloads, lanes, backend=backend, **options)


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
        lanes: int | None = None,
        **options: Any,
    ) -> None:
        self._args = (handler, workers, lanes, options)
        asyncio_backend(workers, lanes)  # bad input fails here, before any job
        self._pool: Any = None

    async def __aenter__(self) -> AsyncPool:
        from qlab.engine import Pool

        handler, workers, lanes, options = self._args
        backend, lanes = asyncio_backend(workers, lanes, asyncio.get_running_loop())
        self._pool = Pool(handler, lanes, backend=backend, **options)
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
