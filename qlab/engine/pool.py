"""The engine: :class:`Pool`, which joins a queue, a backend and a trace.

Data flow, one way (see docs/design.md)::

    payloads --put--> JobQueue --take: batches--> driver (one per worker) --> Backend
        Backend --BatchResult (columns)--> settle() --Settlement--> JobQueue.apply:
            rows --> Recorder (trace) --> run.jobs / run.attempts
            retries --> ready now, or delayed (backoff) --> Coordinator promotes
    Coordinator thread: due retries, attempt deadlines, progress ticks for the hooks

The pool knows its backend only through :class:`qlab.core.protocol.Backend`, and its
queue only through :class:`qlab.queues.memory.JobQueue`; settlement is a pure function
(:mod:`qlab.settle`). Its lifecycle is the queue's :class:`~qlab.queues.memory.Phase`.
The driver loops live in :mod:`qlab.drivers`, timeouts and stops in :mod:`qlab.takeover`.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from qlab import backends, queues
from qlab.core.protocol import JobSpec
from qlab.core.retry import Retry
from qlab.core.settle import JobFailed
from qlab.engine.drivers import Drivers
from qlab.engine.options import fit_workers, pool_options, runnable_handler
from qlab.engine.parts import Parts
from qlab.engine.ratelimit import make_limiter
from qlab.engine.signals import Interrupts, why
from qlab.hooks.base import HookSet
from qlab.hooks.progress import progress_hook
from qlab.queues.memory import Phase
from qlab.trace.recorder import Trace

if TYPE_CHECKING:
    from qlab.trace.results import Run

__all__ = ["BACKENDS", "JobFailed", "Pool"]

log = logging.getLogger("qlab")

BACKENDS = backends.BACKENDS
POLL_S = 0.05  # how often a waiting caller looks for a noted Ctrl-C / SIGTERM / stop


class Pool:
    """A pool of workers that runs ``handler`` on payloads, with retries and a trace.

    Args:
        handler: the processing logic, any callable taking one payload.
        workers: number of workers (threads or processes), >= 1.
        backend: ``"thread"`` (default), ``"process"`` (worker processes),
            ``"inline"`` (the caller's thread, for debugging), or a Backend object.
        retry: a :class:`qlab.Retry`; an int is ``Retry(max_retries=n)``; None: no retry.
        timeout: seconds one attempt may take (None: no limit); a timed-out attempt is a
            retryable failure.
        seed: seeds backoff jitter and seeded workloads (same seed, same outcomes).
        queue_size: jobs in flight (queued, running or waiting to retry) at most;
            ``submit`` blocks beyond it (backpressure).
        keep_results: keep each job's return value in the trace (``run.jobs.result``).
        progress: report progress (a bar, or a log line on the ``qlab`` logger).
        hooks: :class:`qlab.Hook` objects observing the engine.
        grace: seconds running attempts get to finish after Ctrl-C or SIGTERM.
        batch_size: jobs handed to a worker at once; None sizes batches to job speed.
        clock: the run's one clock (``qlab.testing.FakeClock`` in tests).
        queue: where jobs wait: ``"memory"`` (default), a queue URL, or a JobQueue
            (see :mod:`qlab.queues`).
        rate_limit: attempts per second across all workers (a number, or
            ``qlab.RateLimit(rate, burst=)``); the wait for a token is ``throttle_s``
            in ``run.attempts`` (see :mod:`qlab.engine.ratelimit`). None: no limit.
        futures: False for a pool fed by :func:`qlab.engine.feed.feed` (as ``qlab.run``
            and ``qlab.serve`` do), which keeps no Future per job; ``submit`` then
            raises.
        interrupts: where Ctrl-C, SIGTERM and ``stop=`` are noted (see
            :mod:`qlab.engine.signals`); the pool's own by default.
        total: how many jobs will be fed, when known (progress shows it).

    Raises:
        ValueError / TypeError: bad input, naming the parameter, before any job runs.

    Example:
        >>> import qlab
        >>> with qlab.Pool(abs, workers=2) as pool:
        ...     futures = [pool.submit(x) for x in (-1, -2)]
        ...     results = list(pool.map([-3, 4]))
        >>> [f.result() for f in futures], results
        ([1, 2], [3, 4])
    """

    def __init__(
        self,
        handler: Callable[[Any], Any],
        workers: int = 4,
        *,
        backend: Any = "thread",
        retry: Retry | int | None = Retry(),  # noqa: B008 - frozen value, safe to share
        timeout: float | None = None,
        seed: int | None = 0,
        queue_size: int | None = None,
        keep_results: bool = False,
        progress: bool = False,
        hooks: Iterable[Any] = (),
        grace: float = 5.0,
        batch_size: int | None = None,
        clock: Any = None,
        queue: Any = None,
        rate_limit: Any = None,
        futures: bool = True,
        interrupts: Interrupts | None = None,
        total: int | None = None,
    ) -> None:
        hookset = HookSet(hooks)
        if progress:
            hookset.add(progress_hook())
        try:  # a bad option: the hooks hear that no run comes (a server they hold stops)
            o = pool_options(
                handler, workers=workers, retry=retry, timeout=timeout, seed=seed,
                queue_size=queue_size, batch_size=batch_size, grace=grace, clock=clock,
                rate_limit=rate_limit,
            )  # fmt: skip
            clock = o.clock
            self._grace = o.grace
            backend_ = backends.resolve(backend)
            workers_ = fit_workers(o.workers, backend_, total)  # not more than jobs
            shown, handler = handler, runnable_handler(handler, backend_)
            self._inline = bool(getattr(backend_, "in_caller", False))
            keep = bool(keep_results)
            spec = JobSpec(handler, o.retry.is_permanent, o.seed, o.timeout, keep or futures, clock)
            queue_ = queues.resolve(queue, o.capacity, now=clock.now, handler=handler)
            queue_.workers = workers_
            self.parts = Parts(
                queue=queue_, backend=backend_, spec=spec,
                trace=Trace(0.0, keep, queue_.submitted, queue_.status), hooks=hookset,
                clock=clock, retry=o.retry, seed=o.seed, workers=workers_,
                batch_size=o.batch_size, keep_results=keep,
                limiter=make_limiter(o.limit, clock, queue_),  # a Redis queue's is shared
                futures={} if futures else None, interrupts=interrupts or Interrupts(),
                meta=o.meta(backend_.name, shown, type(queue_).__name__),
            )  # fmt: skip
            self._final: Any = None  # the Run, once the pool is joined
            self._joined = False
            if total is not None:
                self.parts.meta["jobs_total"] = total
            if workers_ < o.workers:  # fewer jobs than workers asked for
                self.parts.meta["workers_started"] = workers_
            self._drivers = Drivers(self.parts)
        except BaseException as exc:
            hookset.call("on_abort", exc)
            raise
        try:
            self._drivers.start()
            self.parts.meta["start_time"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            self.parts.hooks.call("on_start", dict(self.parts.meta))
        except BaseException:
            self._drivers.abort()
            self._join()
            raise

    # -- intake ------------------------------------------------------------------------

    def submit(self, payload: Any) -> Future:
        """Queue one job; block while ``queue_size`` jobs are in flight.

        Returns:
            A ``concurrent.futures.Future`` of the handler's result; a job that failed
            raises its last error; a cancelled job's Future is cancelled. Cancelling
            the Future before the job starts cancels the job (status ``cancelled``).
            On the inline backend the job (and its retries) runs before this returns.

        Raises:
            RuntimeError: after shutdown.
        """
        return self.submit_many([payload])[0]

    def submit_many(
        self, payloads: Sequence[Any], futures: list | None = None, kind: Any = None
    ) -> list[Future]:
        """Queue several jobs in one go (one queue operation), a Future each; blocks
        while they do not fit in ``queue_size`` (a batch larger than the whole queue
        waits for it to be empty). See :meth:`submit`. ``futures``: objects to settle
        instead of new Futures (with Future's methods that :mod:`qlab.futures` calls)."""
        filed = self.parts.futures
        if filed is None:
            raise RuntimeError("submit() is not available on this pool")
        new = [Future() for _ in payloads] if futures is None else futures

        def file(ids: range) -> None:  # under the queue's lock: before any job can finish
            filed.update(zip(ids, new, strict=True))

        q, clock = self.parts.queue, self.parts.clock  # kind: an Executor's function
        while q.put(payloads, clock.now(), on_ids=file, timeout=POLL_S, kind=kind) is None:
            self.idle_turn()
        while self._inline and not all(f.done() for f in new):  # inline: they run now
            self._drivers.drive()
            self.parts.queue.wait_ready(POLL_S)
            self.parts.interrupts.check()
        return new

    def map(self, payloads: Iterable[Any]) -> Iterator[Any]:
        """Results of ``handler`` over ``payloads``, in order, with bounded memory.

        Raises the error of the first failed job when its turn comes.
        """
        window: deque[Future] = deque()
        for payload in payloads:
            window.append(self.submit(payload))
            while window and window[0].done():
                yield window.popleft().result()
        while window:
            yield window.popleft().result()

    def idle_turn(self) -> None:
        """What a caller does while it waits: run jobs (inline) and look for
        interrupts."""
        if self._inline:
            self._drivers.drive()
        self.parts.interrupts.check()

    # -- shutdown ----------------------------------------------------------------------

    def shutdown(self, wait: bool = True, *, cancel_pending: bool = False) -> None:
        """Stop intake; finish queued and running jobs (or cancel the queued ones).

        Args:
            wait: block until every job is finished and every worker joined.
            cancel_pending: mark jobs that have not started (queued, or waiting to
                retry) ``cancelled``; running attempts still finish.
        """
        self.parts.queue.advance_phase(Phase.DRAINING)
        if cancel_pending:
            self._drivers.cancel_pending()
        if wait and self._drivers.runs_here():
            # as ThreadPoolExecutor's "cannot join current thread": the pool is shut
            # down (no more submits), but a job cannot wait for itself to finish
            raise RuntimeError(
                "shutdown(wait=True) from one of the pool's own jobs would wait for that "
                "job itself; the pool is shut down, use shutdown(wait=False) in a job"
            )
        if wait:
            try:
                self._wait_idle(None)
            except Exception:  # a durable queue's store failed: stop as on an error
                self.interrupted("error")
                raise
            self._join()

    def _wait_idle(self, timeout: float | None) -> bool:
        """Wait until every job is finished; False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        q = self.parts.queue
        while True:
            rem = None if deadline is None else deadline - time.monotonic()
            wait = POLL_S if rem is None else max(min(rem, POLL_S), 0)
            if self._inline:  # run what is ready; then wait for a retry to come due
                self._drivers.drive()
                q.wait_ready(wait)
                if q.wait_idle(0):
                    return True
            elif q.wait_idle(wait):
                return True
            if rem is not None and rem <= 0:
                return False
            self.parts.interrupts.check()

    def _join(self) -> None:
        """Join every worker, release the backend, close the workload, and tell the
        hooks (once)."""
        if self._joined:
            return
        self._joined = True
        self.parts.queue.advance_phase(Phase.JOINED)
        try:
            self._drivers.join()
            if self._drivers.started:
                self.parts.meta.update(self.parts.backend.info())
            self.parts.meta["abandoned_threads"] = self._drivers.abandoned
            self.parts.meta["results_dropped"] = self._drivers.results_dropped
        finally:
            try:
                self._drivers.close()
            finally:
                close_queue = getattr(self.parts.queue, "close", None)
                if callable(close_queue):
                    close_queue()  # a durable queue gives up its lease
        if len(self.parts.hooks):
            self._drivers.emit_progress()  # a last tick with the final counts
            self.parts.hooks.call("on_end", self.trace())

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.interrupted(why(exc))
        else:
            self.shutdown(wait=True)

    def interrupted(self, why: str) -> None:
        """Ctrl-C / SIGTERM: cancel what is pending, give running attempts ``grace``
        seconds, and stop them at the second interrupt or when the grace is over."""
        self.parts.meta["interrupted"] = why
        stop_now = False
        try:
            log.warning("interrupted (%s): cancelling pending jobs; Ctrl-C again to stop now", why)
            self.shutdown(wait=False, cancel_pending=True)
            if not self._wait_idle(self._grace):
                log.warning("grace period of %ss is over: stopping running attempts", self._grace)
                stop_now = True
        except KeyboardInterrupt:
            stop_now = True
        while True:  # more interrupts while stopping only repeat the (idempotent) steps
            try:
                if stop_now:
                    self._drivers.abort()
                self._join()
                return
            except KeyboardInterrupt:
                stop_now = True

    # -- results -----------------------------------------------------------------------

    def trace(self) -> Run:
        """A :class:`qlab.Run` of what has happened so far (jobs still running or
        queued show status ``pending``)."""
        from qlab.trace.results import Run

        q = self.parts.queue
        with q.lock:
            if self._final is not None:
                return self._final
            final = q.phase >= Phase.JOINED and self._drivers.joined
            # once joined nothing records any more: the final Run takes the trace itself
            trace = self.parts.trace if final else self.parts.trace.snapshot()
            done = q.phase >= Phase.DRAINING and q.unfinished == 0 and q.end is not None
            end = q.end if done and q.end is not None else self.parts.clock.now()
            meta = dict(self.parts.meta, batches=q.batches)
            run = Run(trace, meta, wall_s=max(end - trace.origin, 0.0))
            if final:
                self._final = run
        return run

    def called_from_job(self) -> bool:
        """True in a thread that runs one of this pool's jobs now (a worker thread,
        the asyncio loop, or the caller lent to an inline batch)."""
        return self._drivers.runs_here()

    @property
    def inline(self) -> bool:
        """True when jobs run on the caller's own thread (the inline backend): a
        caller that waits must then call :meth:`idle_turn` to run them."""
        return self._inline

    @property
    def workers(self) -> int:
        return self.parts.workers
