"""The engine: ``Pool`` and ``run()``.

Data flow, one way::

    payloads --feed/submit--> ready queue --batches--> workers (backend) --columns-->
        settle: outcome, retry?  --+--> Recorder (trace)     --> run.jobs / run.attempts
                                   +--> ready (retry now) or delayed heap (backoff)
    coordinator thread: moves due retries to ready, watches attempt deadlines,
        ticks progress hooks

One lock guards the queue, the counters and the recorders; workers take it once per
batch (settle the last batch and take the next in one go), so its cost is shared by
all the jobs of a batch. Batches are sized to the jobs' speed (about ``batch_target_s``
of work each, capped so that every worker gets a share of what is ready).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import signal
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any

from qlab.backends.base import (
    CANCELLED,
    CRASHED,
    FAILED,
    RETRY,
    TIMEOUT,
    BatchResult,
    Failure,
)
from qlab.batches import EMPTY, Batch, ReadyQueue
from qlab.context import Cancelled, WorkerState
from qlab.hooks import Hook, LogProgress
from qlab.retry import NO_RETRY, Retry
from qlab.trace import ST_CANCELLED, ST_FAILED, Recorder, Trace

__all__ = ["JobFailed", "Pool", "run"]

log = logging.getLogger("qlab")

BACKENDS = ("thread", "process")
DEFAULT_QUEUE_SIZE = 10_000
_POLL_S = 0.05  # how often a waiting main thread looks for a noted Ctrl-C / SIGTERM
_MAX_SLEEP_S = 0.5  # the coordinator's longest sleep


class JobFailed(Exception):
    """Set on a job's Future when it failed and its own exception could not be kept."""


class _RealClock:
    now = staticmethod(time.perf_counter)
    autojump = False


class _Slot:
    """One worker: its number, state, recorder, and the batch it is running."""

    def __init__(self, worker: int, state: WorkerState, rec: Recorder) -> None:
        self.worker = worker
        self.state = state
        self.rec = rec
        self.ema = 0.0  # mean seconds per attempt, smoothed
        self.thread: threading.Thread | None = None
        self.batch: Batch | None = None
        self.res: BatchResult | None = None
        self.abandoned = False
        self.queued: Batch | None = None  # a batch already sent to the worker (pipelining)


def _check_int(name: str, value: Any, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return value


def _check_seconds(name: str, value: Any, allow_zero: bool = False) -> float | None:
    if value is None:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a number {bound} or None, got {value!r}")
    return float(value)


def _progress_hook() -> Hook:
    """``progress=True``: a tqdm bar (a widget in Jupyter), else a log line."""
    try:
        from qlab.progress import TqdmProgress

        return TqdmProgress()
    except ImportError:
        return LogProgress()


def _call_hooks(hooks: list[Hook], name: str, arg: Any) -> None:
    """Call one hook method on each hook; a failing hook is logged, never fatal."""
    for hook in hooks:
        try:
            getattr(hook, name)(arg)
        except Exception:
            log.exception("hook %r failed in %s", hook, name)


def _describe(handler: Any) -> str:
    """A readable name for a handler: ``module.function`` or the object's repr."""
    if hasattr(handler, "__qualname__"):
        return f"{getattr(handler, '__module__', '?')}.{handler.__qualname__}"
    text = repr(handler)
    return text if len(text) <= 200 else text[:197] + "..."


def _make_backend(name: str) -> Any:
    if name == "thread":
        from qlab.backends.thread import ThreadBackend

        return ThreadBackend()
    if name == "process":
        from qlab.backends.process import ProcessBackend

        return ProcessBackend()
    raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")


class Pool:
    """A pool of workers that runs ``handler`` on payloads, with retries and a trace.

    Args:
        handler: the processing logic, any callable taking one payload.
        workers: number of workers (threads or processes), >= 1.
        backend: ``"thread"`` (default) or ``"process"`` (loky worker processes).
        retry: a :class:`qlab.Retry`; an int is ``Retry(max_retries=n)``; None: no retry.
        timeout: seconds one attempt may take (None: no limit); a timed-out attempt is a
            retryable failure.
        seed: seeds backoff jitter and seeded workloads (same seed, same outcomes).
        queue_size: jobs in flight (queued, running or waiting to retry) at most;
            ``submit`` blocks beyond it (backpressure).
        keep_results: keep each job's return value in the trace (``run.jobs.result``).
        progress: report progress (a log line on the ``qlab`` logger, or the hooks).
        hooks: objects with :class:`qlab.hooks.Hook` methods observing the engine.
        grace: seconds running attempts get to finish after Ctrl-C or SIGTERM.
        batch_size: jobs handed to a worker at once; None sizes batches to job speed.
        clock: a clock with ``now()`` (``qlab.testing.FakeClock`` in tests).

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
        backend: str = "thread",
        retry: Retry | int | None = Retry(),  # noqa: B008 - frozen value, safe to share
        timeout: float | None = None,
        seed: int | None = 0,
        queue_size: int | None = None,
        keep_results: bool = False,
        progress: bool = False,
        hooks: Iterable[Hook] = (),
        grace: float = 5.0,
        batch_size: int | None = None,
        clock: Any = None,
        _futures: bool = True,
    ) -> None:
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        self._workers = _check_int("workers", workers, 1)
        if retry is None:
            retry = NO_RETRY
        elif isinstance(retry, int) and not isinstance(retry, bool):
            retry = Retry(max_retries=_check_int("retry", retry, 0))
        elif not isinstance(retry, Retry):
            raise TypeError(f"retry must be a qlab.Retry, an int or None, got {retry!r}")
        self._retry = retry
        self._timeout = _check_seconds("timeout", timeout)
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError(f"seed must be an int or None, got {seed!r}")
        self._seed = seed
        self._queue_size = _check_int(
            "queue_size", DEFAULT_QUEUE_SIZE if queue_size is None else queue_size, 1
        )
        self._refill = max(1, self._queue_size // 4)  # the feeder tops up this many at once
        self._batch_size = None if batch_size is None else _check_int("batch_size", batch_size, 1)
        self._grace = _check_seconds("grace", grace, allow_zero=True)
        self._hooks = list(hooks)
        if progress:
            self._hooks.append(_progress_hook())
        bad = [h for h in self._hooks if not isinstance(h, Hook)]
        if bad:
            raise TypeError(f"hooks must be qlab.hooks.Hook instances, got {bad[0]!r}")
        self._clock = clock or _RealClock()
        self._fn = handler
        self._keep_results = bool(keep_results)
        self._want_results = self._keep_results or _futures
        self._futures: dict[int, Future] | None = {} if _futures else None

        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # workers wait for ready jobs
        self._space = threading.Condition(self._lock)  # submitters wait for capacity
        self._roomy = threading.Condition(self._lock)  # the feeder waits for a quarter free
        self._idle = threading.Condition(self._lock)  # shutdown waits for no unfinished
        self._tick = threading.Condition(self._lock)  # the coordinator's alarm
        self._ready = ReadyQueue()
        self._delayed: list = []  # heap of (due, seq, item)
        self._seq = itertools.count()
        self._unfinished = 0
        self._busy = 0  # batches taken and not yet recorded
        self._batches = 0  # batches taken in all (run.meta["batches"])
        self._counts = dict.fromkeys(("ok", "failed", "cancelled", "retries", "attempts"), 0)
        self._closed = self._cancel = self._hard = self._exit = self._joined = False
        self._signals: list[int] | None = None  # set by run(): signals noted, not raised
        self._signals_seen = 0
        self._final: Any = None  # the Run, once the pool is joined
        self._stop_event: threading.Event | None = None  # run(stop=...)
        self._stopped = False
        self._t_end: float | None = None

        self._backend = _make_backend(backend)
        self._meta: dict[str, Any] = {
            "backend": backend,
            "workers": self._workers,
            "seed": seed,
            "retry": repr(retry),
            "timeout": self._timeout,
            "queue_size": self._queue_size,
            "batch_size": batch_size,
            "workload": _describe(handler),
        }
        self._slots: list[_Slot] = []
        self._trace = Trace(0.0, self._keep_results)
        self._meta.update(self._backend.start(self, self._workers))
        for w in range(self._workers):
            rec = Recorder(w, self._keep_results)
            self._trace.recorders.append(rec)
            self._start_slot(w, rec)
        self._trace.origin = self._clock.now()
        self._meta["start_time"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self._coordinator = threading.Thread(
            target=self._coordinate, name="qlab-coordinator", daemon=True
        )
        self._coordinator.start()
        _call_hooks(self._hooks, "on_start", dict(self._meta))

    # -- intake ------------------------------------------------------------------------

    def submit(self, payload: Any) -> Future:
        """Queue one job; block while ``queue_size`` jobs are in flight.

        Returns:
            A ``concurrent.futures.Future`` of the handler's result; a job that failed
            raises its last error; a cancelled job's Future is cancelled.

        Raises:
            RuntimeError: after shutdown.
        """
        if self._futures is None:
            raise RuntimeError("submit() is not available on this pool")
        fut: Future = Future()
        now = self._clock.now()
        with self._lock:
            self._wait_space()
            job_id = len(self._trace.submitted)
            self._futures[job_id] = fut
            self._enqueue(Batch(range(job_id, job_id + 1), 1, [payload]), now)
        return fut

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

    def _wait_space(self, free: int = 1) -> None:
        """Wait until ``free`` more jobs fit (under the lock). The feeder asks for a
        quarter of the queue, so that it wakes once per many finished jobs."""
        cond = self._space if free == 1 else self._roomy
        while True:
            if self._closed:
                raise RuntimeError("cannot submit to a pool that is shut down")
            if self._unfinished + free <= self._queue_size:
                return
            self._check_signals()
            polled = self._signals is not None or self._stop_event is not None
            cond.wait(_POLL_S if polled else None)

    def _check_signals(self) -> None:
        """Raise the interrupt that a signal handler of ``run()`` noted (see there), or
        that ``run(stop=event)`` asks for."""
        if self._stop_event is not None and self._stop_event.is_set() and not self._stopped:
            self._stopped = True
            raise _Stopped()
        sigs = self._signals
        if sigs is not None and len(sigs) > self._signals_seen:
            self._signals_seen = len(sigs)
            raise _Terminated() if sigs[-1] == signal.SIGTERM else KeyboardInterrupt()

    def _enqueue(self, batch: Batch, now: float) -> None:
        """Register and queue new jobs (under the lock)."""
        n = len(batch)
        self._trace.submitted.extend(array("d", [now]) * n)
        self._trace.status.extend(bytes(n))
        self._unfinished += n
        self._put(batch)

    def _put(self, batch: Batch, front: bool = False) -> None:
        """Queue a batch of ready jobs (under the lock)."""
        if batch:
            self._ready.put(batch, front)
            self._work.notify(min(len(batch), self._workers))

    def _feed(self, payloads: Iterable[Any]) -> None:
        """Submit every payload (no futures), in chunks that fit the free capacity.

        A list, tuple or range is sliced; any other iterable is read in chunks that
        grow while it is quick and shrink for a slow generator.
        """
        sliceable = isinstance(payloads, list | tuple | range)
        it = iter(payloads)
        pos = 0
        chunk_cap = 64
        while True:
            with self._lock:
                self._wait_space(self._refill)
                room = self._queue_size - self._unfinished
            if sliceable:
                chunk = payloads[pos : pos + room]  # type: ignore[index]
                pos += len(chunk)
            else:
                t = time.perf_counter()
                chunk = list(itertools.islice(it, min(room, chunk_cap)))
                if time.perf_counter() - t < 0.002:
                    chunk_cap = min(chunk_cap * 2, 4096)
                else:
                    chunk_cap = max(chunk_cap // 2, 1)
            if not chunk:
                return
            now = self._clock.now()
            with self._lock:
                base = len(self._trace.submitted)
                self._enqueue(Batch(range(base, base + len(chunk)), 1, chunk), now)
            self._check_signals()

    # -- workers -----------------------------------------------------------------------

    def _start_slot(self, worker: int, rec: Recorder) -> _Slot:
        state = WorkerState(
            worker, self._seed, self._timeout, self._backend.new_event(worker), self._clock.now
        )
        slot = _Slot(worker, state, rec)
        if len(self._slots) > worker:
            self._slots[worker] = slot
        else:
            self._slots.append(slot)
        slot.thread = threading.Thread(
            target=self._slot_loop, args=(slot,), name=f"qlab-worker-{worker}", daemon=True
        )
        slot.thread.start()
        return slot

    def _slot_loop(self, slot: _Slot) -> None:
        slot.state.bind()
        batch: Batch | None = None
        res: BatchResult | None = None
        while True:
            batch = self._settle(slot, batch or EMPTY, res)
            if batch is None:
                return
            res = BatchResult()
            slot.batch, slot.res = batch, res
            try:
                res = self._backend.run_batch(slot, batch, res)
            except BaseException as exc:  # SystemExit or the like, raised by a handler
                log.exception("worker %d: a handler raised %r", slot.worker, exc)
                _crash_row(res, exc, slot.state.running(), self._clock.now())
            if res.abandoned:  # the watchdog took this batch over
                return

    def _settle(self, slot: _Slot, batch: Batch, res: BatchResult | None) -> Batch | None:
        """Record a finished batch, schedule its retries, and take the next batch."""
        if res is not None:
            n = len(res)
            whole = n == len(batch)
            items = (batch if whole else batch[:n]) if res.items is None else res.items
            rest = (EMPTY if whole else batch[n:]) if res.rest is None else res.rest
            resolved = self._record(slot, items, res, rest, worker_commit=True)
            if resolved is None:
                return None
            self._resolve_futures(resolved)
        if slot.queued is not None:  # the worker already has its next batch
            batch, slot.queued = slot.queued, None
            return batch
        with self._lock:
            while True:
                if slot.abandoned or self._hard:
                    return None
                if len(self._ready) and not slot.state.stop:
                    return self._take(slot)
                if self._closed and self._unfinished == 0:
                    return None
                self._work.wait()

    def take_nowait(self, slot: _Slot) -> Batch | None:
        """The next batch for ``slot`` if one is ready now (for pipelining backends)."""
        with self._lock:
            if len(self._ready) and not (slot.state.stop or slot.abandoned or self._hard):
                return self._take(slot)
        return None

    def _take(self, slot: _Slot) -> Batch:
        """Take the next batch from the ready segments (under the lock)."""
        self._busy += 1
        self._batches += 1
        if self._batch_size:
            k = self._batch_size
        else:
            target = self._backend.batch_target_s
            k = int(target / slot.ema) if slot.ema > 0 else 1
            k = max(1, min(k, 4096, -(-len(self._ready) // self._workers)))
        return self._ready.take(k)

    def _record(
        self,
        slot: _Slot,
        items: Batch,
        res: BatchResult,
        rest: Batch,
        worker_commit: bool = False,
    ) -> list | None:
        """Classify the failures of ``items`` (one per row of ``res``), record the rows,
        queue retries, and settle ``rest`` (items that did not run: requeued, or
        cancelled when the pool is stopping). Returns futures to resolve, or None if
        the slot was abandoned meanwhile."""
        n = len(items)
        if res.failures:
            out, errors, backoff, retry_now, retry_later, finals, logs = self._classify(items, res)
        else:  # the common case: every attempt succeeded
            out, errors, backoff, retry_now, retry_later, finals, logs = (
                bytes(n), None, None, [], [], [], ()
            )  # fmt: skip
        n_ok = n - len(res.failures)
        if n:
            per = (res.t1[n - 1] - res.t0[0]) / n
            slot.ema = 0.7 * slot.ema + 0.3 * per if slot.ema else per
        with self._lock:
            if worker_commit and slot.abandoned:
                return None
            self._busy -= 1  # every taken batch is recorded once
            results = res.results[:n] if self._keep_results and res.results else None
            slot.rec.add(items, res, n, out, errors, backoff, results)
            c = self._counts
            c["attempts"] += n
            c["ok"] += n_ok
            if finals:
                status = self._trace.status
                for job_id, code, _ in finals:
                    status[job_id] = code
                    c["failed" if code == ST_FAILED else "cancelled"] += 1
            if self._cancel or self._hard:
                # stopping (decided under the lock, so no job is queued after shutdown
                # cancelled the queue): what would run again is cancelled instead
                dropped = [*rest, *retry_now, *(entry[2] for entry in retry_later)]
                rest, retry_now, retry_later = EMPTY, [], []
                status = self._trace.status
                for it in dropped:
                    status[it[0]] = ST_CANCELLED
                    finals.append((it[0], ST_CANCELLED, None))
                c["cancelled"] += len(dropped)
            self._put(rest, front=True)
            if retry_now:
                self._put(Batch.of(retry_now))
            if retry_later:
                for entry in retry_later:
                    heapq.heappush(self._delayed, entry)
                self._tick.notify()
            c["retries"] += len(retry_now) + len(retry_later)
            self._finish(n_ok + len(finals))
        for level, msg, args in logs:
            log.log(level, msg, *args)
        if self._futures:
            cut = {f.row for f in res.failures}
            values = res.results or itertools.repeat(None)
            oks = [
                (job_id, 0, r)
                for row, (job_id, r) in enumerate(zip(items.ids, values, strict=False))
                if row not in cut
            ]
            return oks + finals
        return []

    def _classify(self, items: Batch, res: BatchResult) -> tuple:
        """Outcome codes of a batch with failures: which failed for good, which retry
        now or later (with their backoff), and the log lines to write."""
        out = bytearray(len(items))
        errors: dict[int, tuple[str, str]] = {}
        backoff: dict[int, float] = {}
        retry_now: list = []
        retry_later: list = []
        finals: list[tuple[int, int, Any]] = []  # (job_id, status code, exc)
        logs: list = []
        allowed = self._retry.attempts_allowed
        stopping = self._cancel or self._hard
        for f in res.failures:
            job_id, attempt, payload = items[f.row]
            errors[f.row] = (f.error_type, f.error)
            if f.code == CANCELLED:
                out[f.row] = CANCELLED
                finals.append((job_id, ST_CANCELLED, None))
            elif f.permanent or attempt >= allowed:
                out[f.row] = FAILED if f.code == RETRY else f.code
                finals.append((job_id, ST_FAILED, f.exc or JobFailed(f"{f.error_type}: {f.error}")))
                why = "permanent error" if f.permanent else f"attempt {attempt} of {allowed}"
                logs.append(
                    (
                        logging.ERROR,
                        "job %d failed (%s): %s: %s",
                        (job_id, why, f.error_type, f.error),
                    )
                )
            elif stopping:
                out[f.row] = f.code
                finals.append((job_id, ST_CANCELLED, None))
            else:
                out[f.row] = f.code
                delay = self._retry.delay(self._seed, job_id, attempt)
                backoff[f.row] = delay
                item = (job_id, attempt + 1, payload)
                if delay > 0:
                    retry_later.append((res.t1[f.row] + delay, next(self._seq), item))
                else:
                    retry_now.append(item)
                logs.append(
                    (
                        logging.INFO,
                        "job %d attempt %d failed (%s: %s); retry in %.3fs",
                        (job_id, attempt, f.error_type, f.error, delay),
                    )
                )
        return out, errors, backoff, retry_now, retry_later, finals, logs

    def _finish(self, done: int) -> None:
        """Count ``done`` jobs as finished (under the lock) and wake who waits on it."""
        if not done:
            return
        self._unfinished -= done
        self._space.notify(done)
        if self._unfinished + self._refill <= self._queue_size:
            self._roomy.notify()
        if self._unfinished == 0:
            self._t_end = self._clock.now()
            self._idle.notify_all()
            self._work.notify_all()

    def _resolve_futures(self, resolved: list) -> None:
        if not self._futures:
            return
        pop = self._futures.pop
        for job_id, code, value in resolved:
            fut = pop(job_id, None)
            if fut is None:
                continue
            if code == 0:
                fut.set_result(value)
            elif code == ST_FAILED:
                fut.set_exception(value)
            else:
                fut.cancel()

    # -- the coordinator: backoff timers, deadlines, progress ---------------------------

    def _coordinate(self) -> None:
        clock = self._clock
        poll = None if self._timeout is None else min(0.05, self._timeout / 4)
        tick = 0.25 if self._hooks else None
        next_tick = clock.now() + (tick or 0)
        while True:
            overdue: list = []
            with self._lock:
                if self._exit:
                    return
                now = clock.now()
                due = []
                while self._delayed and self._delayed[0][0] <= now:
                    due.append(heapq.heappop(self._delayed)[2])
                if due:
                    self._put(Batch.of(due))
                if poll is not None:
                    overdue = self._overdue(now)
                if not overdue:
                    waits = [_MAX_SLEEP_S, poll, tick and next_tick - now]
                    if self._delayed:
                        waits.append(self._delayed[0][0] - now)
                    # bounded, so that no wake-up can be missed for long
                    wait = max(min(w for w in waits if w is not None), 0.0)
                    if clock.autojump and self._delayed and not len(self._ready) and not self._busy:
                        clock.advance(self._delayed[0][0] - now)  # everyone waits: jump
                    else:
                        self._tick.wait(min(wait, 0.001) if clock.autojump else wait)
            for slot, i, t0 in overdue:
                self._time_out(slot, i, t0)
            if tick and clock.now() >= next_tick:
                next_tick = clock.now() + tick
                self._emit_progress()

    def _overdue(self, now: float) -> list:
        """Attempts past their deadline, claimed from their workers (under the lock)."""
        found = []
        for slot in self._slots:
            claim = self._backend.overdue(slot, now, self._timeout)
            if claim is not None:
                found.append((slot, *claim))
        return found

    def _time_out(self, slot: _Slot, i: int, t0: float) -> None:
        """Fail attempt ``i`` of ``slot``'s batch as timed out, keep the rows before it,
        requeue the rest, and replace the worker."""
        now = self._clock.now()
        batch, res = slot.batch or EMPTY, slot.res or BatchResult()
        with self._lock:
            slot.abandoned = True
        slot.state.cancel_event.set()  # a cooperative handler may still stop
        self._backend.stop_worker(slot)
        how = (
            "the worker process was killed"
            if self._backend.can_kill
            else ("the thread was abandoned")
        )
        msg = f"attempt exceeded timeout={self._timeout}s; {how}"
        kept = res.prefix(i)
        _crash_row(kept, TimeoutError(msg), (None, None, t0), now, TIMEOUT)
        if not self._hard and not self._exit:
            self._start_slot(slot.worker, slot.rec)
        self._resolve_futures(self._record(slot, batch[: i + 1], kept, batch[i + 1 :]) or [])

    def _emit_progress(self) -> None:
        with self._lock:
            counts = dict(
                self._counts,
                submitted=len(self._trace.submitted),
                unfinished=self._unfinished,
                elapsed_s=self._clock.now() - self._trace.origin,
            )
        _call_hooks(self._hooks, "on_progress", counts)

    # -- shutdown ----------------------------------------------------------------------

    def shutdown(self, wait: bool = True, *, cancel_pending: bool = False) -> None:
        """Stop intake; finish queued and running jobs (or cancel the queued ones).

        Args:
            wait: block until every job is finished and every worker joined.
            cancel_pending: mark jobs that have not started (queued, or waiting to
                retry) ``cancelled``; running attempts still finish.
        """
        with self._lock:
            self._closed = True
            if cancel_pending and not self._cancel:
                self._cancel = True
                self._cancel_queued()
                for slot in self._slots:
                    slot.state.stop = True  # leave the batch after the running attempt
                self._backend.stop_intake()
            if self._unfinished == 0 and self._t_end is None:
                self._t_end = self._clock.now()
            self._work.notify_all()
            self._tick.notify()
        if wait:
            self._wait_idle(None)
            self._join()

    def _cancel_queued(self) -> None:
        """Cancel every job that waits in the queue or for a retry (under the lock)."""
        items = self._ready.drain() + [entry[2] for entry in self._delayed]
        self._delayed.clear()
        for job_id, _, _ in items:
            self._trace.status[job_id] = ST_CANCELLED
        self._counts["cancelled"] += len(items)
        if self._futures:
            for job_id, _, _ in items:
                fut = self._futures.pop(job_id, None)
                if fut is not None:
                    fut.cancel()
        self._finish(len(items))

    def _wait_idle(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._unfinished:
                rem = None if deadline is None else deadline - time.monotonic()
                if rem is not None and rem <= 0:
                    return False
                self._check_signals()
                self._idle.wait(_POLL_S if rem is None else min(rem, _POLL_S))
        return True

    def _abort(self) -> None:
        """Stop running attempts too: cancel them cooperatively, and after a short wait
        take their batches over (the process backend kills its workers)."""
        with self._lock:
            self._closed = self._cancel = self._hard = True
            self._cancel_queued()
            for slot in self._slots:
                slot.state.stop = True
                slot.state.cancel_event.set()
            self._work.notify_all()
        self._backend.close(kill=True)
        deadline = time.monotonic() + 1.0
        for slot in list(self._slots):
            if slot.thread is not None and slot.thread is not threading.current_thread():
                slot.thread.join(max(deadline - time.monotonic(), 0))
        now = self._clock.now()
        for slot in list(self._slots):
            if slot.thread is not None and slot.thread.is_alive():
                with self._lock:
                    if slot.abandoned:
                        continue
                    slot.abandoned = True
                batch, res = slot.batch or EMPTY, slot.res or BatchResult()
                n = len(res)
                log.warning("worker %d did not stop; its attempt is abandoned", slot.worker)
                kept = res.prefix(n)
                if n < len(batch):
                    stopped = Cancelled("stopped by a second interrupt")
                    _crash_row(kept, stopped, slot.state.running(), now, CANCELLED)
                    n += 1
                self._record(slot, batch[:n], kept, batch[n:])

    def _join(self) -> None:
        with self._lock:
            if self._joined:
                return
            self._joined = True
            self._exit = True
            self._closed = True
            self._work.notify_all()
            self._tick.notify()
        me = threading.current_thread()
        for slot in list(self._slots):
            if slot.thread is not None and slot.thread is not me and not slot.abandoned:
                slot.thread.join()
        if self._coordinator is not me:
            self._coordinator.join()
        self._meta.update(self._backend.info())
        self._backend.close(kill=self._hard)
        if self._hooks:
            self._emit_progress()  # a last tick with the final counts
            _call_hooks(self._hooks, "on_end", self.trace())

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self._interrupted(exc_type.__name__)
        else:
            self.shutdown(wait=True)

    def _interrupted(self, why: str) -> None:
        """Ctrl-C / SIGTERM: cancel what is pending, give running attempts ``grace``
        seconds, and stop them at the second interrupt or when the grace is over."""
        self._meta["interrupted"] = why
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
                    self._abort()
                self._join()
                return
            except KeyboardInterrupt:
                stop_now = True

    # -- results -----------------------------------------------------------------------

    def _cancel_unsubmitted(self, total: int) -> None:
        """Count the payloads never taken from a sized iterable as cancelled jobs."""
        with self._lock:
            missing = total - len(self._trace.submitted)
            if missing > 0:
                self._trace.submitted.extend([math.nan] * missing)
                self._trace.status.extend(bytes([ST_CANCELLED]) * missing)
                self._counts["cancelled"] += missing

    def trace(self) -> Any:
        """A :class:`qlab.Run` of what has happened so far (jobs still running or
        queued show status ``pending``)."""
        from qlab.results import Run

        with self._lock:
            if self._final is not None:
                return self._final
            # once joined nothing records any more: the final Run takes the trace itself
            trace = self._trace if self._joined else self._trace.snapshot()
            end = self._t_end if self._closed and self._unfinished == 0 else self._clock.now()
            meta = dict(self._meta, batches=self._batches)
            run = Run(trace, meta, wall_s=end - trace.origin)
            if self._joined:
                self._final = run
        return run

    @property
    def workers(self) -> int:
        return self._workers


def _crash_row(
    res: BatchResult, exc: BaseException, cur: tuple | None, now: float, code: int = CRASHED
) -> None:
    """Record the attempt that was running when ``exc`` stopped it, as row ``len(res)``."""
    n = len(res)
    if res.cpu_share is not None:
        res.cpu, res.cpu_share = res.cpu_list(), None
    del res.t0[n:], res.t1[n:], res.cpu[n:]
    res.t0.append(cur[2] if cur else now)
    res.t1.append(now)
    res.cpu.append(math.nan)
    if res.results is not None:
        del res.results[n:]
        res.results.append(None)
    res.failures.append(Failure(n, code, type(exc).__name__, str(exc), False, exc))


class _Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as an interrupt so that one path handles both."""


class _Stopped(KeyboardInterrupt):
    """``run(stop=event)`` was set: handled as an interrupt."""


def run(
    handler: Callable[[Any], Any],
    payloads: Iterable[Any],
    workers: int = 4,
    *,
    stop: threading.Event | None = None,
    **options: Any,
) -> Any:
    """Run ``handler`` over ``payloads`` on a fresh pool and return the traced Run.

    Takes the options of :class:`Pool`. Payloads are fed with backpressure, so a
    generator of a million payloads runs in bounded memory (only the trace grows).
    Ctrl-C or SIGTERM cancels the pending jobs, gives running attempts ``grace``
    seconds (a second Ctrl-C stops them at once) and still returns the Run, in which
    every job has one final status; ``run.meta["interrupted"]`` says why. Setting
    ``stop`` (a ``threading.Event``, from another thread) does the same as Ctrl-C.

    Returns:
        A :class:`qlab.Run`.

    Example:
        >>> import qlab
        >>> run = qlab.run(qlab.workloads.seed(), range(100), workers=4)
        >>> run.summary()[["ok", "failed"]].tolist()
        [10, 90]
    """
    if isinstance(payloads, str | bytes) or not isinstance(payloads, Iterable):
        raise TypeError(f"payloads must be an iterable of payloads, got {payloads!r}")
    total = len(payloads) if hasattr(payloads, "__len__") else None
    # In the main thread, Ctrl-C and SIGTERM are only noted by the handler and raised
    # by the engine where it waits, so an interrupt never lands halfway through an
    # update of the queue's books (nor between the pool's start and this try).
    noted: list[int] = []
    old: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, lambda signum, frame: noted.append(signum))
    try:
        pool = Pool(handler, workers, _futures=False, **options)
        pool._stop_event = stop
        pool._signals = noted if old else None
        try:
            pool._feed(payloads)
            pool.shutdown(wait=False)
            pool._wait_idle(None)
            pool._join()
        except KeyboardInterrupt as exc:
            if total is not None:
                pool._cancel_unsubmitted(total)
            why = {_Terminated: "SIGTERM", _Stopped: "stopped"}.get(type(exc), "SIGINT")
            pool._interrupted(why)
        except BaseException:
            pool._interrupted("error")
            raise
    finally:
        for sig, handler_ in old.items():
            signal.signal(sig, handler_)
    result = pool.trace()
    if len(noted) > pool._signals_seen and "interrupted" not in result.meta:
        # a Ctrl-C after the last job, while the pool was being joined: still say so
        result.meta["interrupted"] = "SIGTERM" if noted[-1] == signal.SIGTERM else "SIGINT"
    return result
