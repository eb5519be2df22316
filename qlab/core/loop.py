"""The batch loop: run a handler over a batch and keep the attempts in columns.

Every backend runs jobs through :func:`execute`: a loop over a batch that times
each attempt on the run's clock, catches its error, and appends to per-batch
columns (lists, turned into compact arrays by the recorder). The thread backend
calls it in a worker thread, the process backend inside a worker process, the
inline backend in the caller's thread.

A handler that raises a ``BaseException`` that is not an ``Exception`` (SystemExit,
say) has that attempt recorded as ``crashed`` with its real type; the batch ends
there and its other jobs go back to the queue uncharged. KeyboardInterrupt is not
caught: it belongs to the caller.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable
from typing import Any

from qlab.core.batches import Batch
from qlab.core.codes import CANCELLED, CRASHED, RETRY, TIMEOUT
from qlab.core.context import Cancelled, WorkerState
from qlab.core.protocol import BatchResult, Failure

__all__ = ["PRECISE_CPU_BATCH", "execute"]

# A batch whose attempts are this slow or slower has its CPU time measured per attempt;
# faster batches measure it once per batch and apportion it by wall time, because one
# thread-CPU clock read costs about 0.8 us (a system call, unlike perf_counter).
PRECISE_CPU_BATCH = 64


def _failure(row: int, exc: BaseException, state: WorkerState, t1: float, is_permanent) -> Failure:
    """Classify an error: a Cancelled raised because the pool is stopping is CANCELLED,
    one raised past the attempt's deadline is TIMEOUT, a BaseException that is not an
    Exception is CRASHED, anything else is retryable."""
    code = RETRY
    if not isinstance(exc, Exception):
        return Failure(row, CRASHED, type(exc).__name__, str(exc), False, exc)
    if isinstance(exc, Cancelled):
        cur = state.running()
        if state.cancel_event.is_set():
            code = CANCELLED
        elif state.timeout is not None and cur and t1 >= cur[2] + state.timeout:
            code = TIMEOUT
    return Failure(row, code, type(exc).__name__, str(exc), is_permanent(exc), exc)


def execute(
    fn: Callable[[Any], Any],
    batch: Batch,
    state: WorkerState,
    is_permanent: Callable[[BaseException], bool],
    keep_results: bool = False,
    publish: Callable[[int, float], None] | None = None,
    res: BatchResult | None = None,
    shared: Any = None,
) -> BatchResult:
    """Run ``fn`` on each item of ``batch``; return the attempts in columns.

    ``state.stop`` ends the batch early (the rows cover the items that ran). With
    ``state.timeout`` set on the thread backend, each attempt is claimed through
    ``state.box`` so that the engine's watchdog can take an overdue attempt away.
    ``publish(index, start)`` tells a process backend's parent which attempt runs;
    ``shared`` (the worker's mmap as doubles: running index, its start, -, stop flag)
    lets a quick batch do the same with two stores per attempt instead of a call.
    A batch with ``wait_turn`` (a :class:`qlab.engine.ratelimit.PacedBatch`) waits for each
    attempt's rate-limit token before starting it and notes the wait in ``res.throttle``.

    Example:
        >>> from qlab.core.context import WorkerState
        >>> import threading
        >>> state = WorkerState(0, 0, None, threading.Event())
        >>> res = execute(abs, Batch(range(3), 1, [-1, -2, -3]), state, lambda e: False, True)
        >>> res.results, len(res)
        ([1, 2, 3], 3)
    """
    if res is None:
        res = BatchResult()
    if keep_results and res.results is None:
        res.results = []
    pace = getattr(batch, "wait_turn", None)  # once per batch: the hot loop is untouched
    if state.timeout is None and pace is None and len(batch) >= PRECISE_CPU_BATCH:
        if shared is not None and res.results is None:
            _run_shared(fn, batch, state, is_permanent, res, shared)
        else:
            _run_fast(fn, batch, state, is_permanent, res, publish)
    else:
        _run_careful(fn, batch, state, is_permanent, res, publish, pace)
    state.cur = state.fast = None
    return res


def _run_fast(fn, batch: Batch, state, is_permanent, res: BatchResult, publish) -> None:
    """Quick attempts: one clock read per attempt (an attempt starts where the one
    before it ended), CPU time measured once, and no per-attempt bookkeeping:
    ``current()`` finds the running attempt from the number of rows so far."""
    perf, cpu_clock = state.now, time.thread_time
    t1s, results, failures = res.t1, res.results, res.failures
    append = t1s.append
    c_start = cpu_clock()
    start = perf()
    state.fast = (batch, t1s, start)
    res.start = start
    try:
        if publish is None and results is None:
            for payload in batch.payloads:
                if state.stop:
                    break
                try:
                    fn(payload)
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:
                    t1 = perf()
                    failures.append(_failure(len(t1s), exc, state, t1, is_permanent))
                    append(t1)
                    if failures[-1].code == CRASHED:
                        break
                else:
                    append(perf())
        else:
            for i, payload in enumerate(batch.payloads):
                if state.stop:
                    break
                if publish is not None:
                    publish(i, t1s[-1] if i else start)
                try:
                    r = fn(payload)
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:
                    t1 = perf()
                    failures.append(_failure(i, exc, state, t1, is_permanent))
                    r = None
                else:
                    t1 = perf()
                append(t1)
                if results is not None:
                    results.append(r)
                if failures and failures[-1].row == i and failures[-1].code == CRASHED:
                    break
    finally:
        _end_quick(res, [start, *t1s[:-1]] if t1s else [], cpu_clock() - c_start)


def _end_quick(res: BatchResult, t0: Any, cpu_s: float) -> None:
    """A quick batch ends: its rows' starts ``t0`` (each where the one before it
    ended), then its CPU time ``cpu_s`` as a share of its wall time."""
    res.t0 = t0  # before ``start`` is cleared: len(res) stays right for a reader
    res.start = None
    t1s = res.t1
    wall = t1s[-1] - t0[0] if len(t1s) else 0.0
    res.cpu_share = min(cpu_s / wall, 1.0) if wall > 0 else 0.0


def _run_shared(fn, batch: Batch, state, is_permanent, res: BatchResult, view) -> None:
    """A quick batch in a worker process: as :func:`_run_fast`, and before each attempt
    two stores into the shared ``view`` (its index, its start) so that the parent can
    charge the right attempt if the process dies, and one load of the stop flag: no
    Python call per attempt (the publish call cost as much as the rest of the loop)."""
    perf, cpu_clock = state.now, time.thread_time
    res.t1 = t1s = array("d")  # the parent gets the buffer as it is
    failures = res.failures
    append = t1s.append
    c_start = cpu_clock()
    t = start = perf()
    state.fast = (batch, t1s, start)
    res.start = start
    try:
        for i, payload in enumerate(batch.payloads):
            if view[3]:  # the pool stopped intake: start nothing more
                state.stop = True
                break
            view[1] = t
            view[0] = i
            try:
                fn(payload)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                t = perf()
                failures.append(_failure(i, exc, state, t, is_permanent))
                append(t)
                if failures[-1].code == CRASHED:
                    break
            else:
                t = perf()
                append(t)
    finally:
        t0s = array("d", [start]) + t1s[:-1] if t1s else array("d")
        _end_quick(res, t0s, cpu_clock() - c_start)


def _run_careful(
    fn, batch: Batch, state, is_permanent, res: BatchResult, publish, pace=None
) -> None:
    perf, cpu_clock = state.now, time.thread_time
    t0s, t1s, cpus, results, failures = res.t0, res.t1, res.cpu, res.results, res.failures
    timed = state.timeout is not None and publish is None
    if pace is not None and res.throttle is None:
        res.throttle = []
    c0 = cpu_clock()  # an attempt's CPU time runs from the end of the one before: one read
    for i, (job_id, attempt, payload) in enumerate(batch):
        if state.stop:
            break
        if pace is not None:  # rate limit: wait for this attempt's token
            waited = pace(i, state)
            if state.stop:
                break
            res.throttle.append(waited)  # type: ignore[union-attr]  # set above with pace
            c0 = cpu_clock()  # the wait for the token is not the attempt's
        t0 = perf()
        state.cur = (job_id, attempt, t0)
        if timed:
            box = [(i, t0)]
            state.box = box
        elif publish is not None:
            publish(i, t0)
        try:
            r = fn(payload)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            t1 = perf()
            fail: Failure | None = _failure(i, exc, state, t1, is_permanent)
            r = None
        else:
            t1 = perf()
            fail = None
        c1 = cpu_clock()
        if timed:
            try:
                box.pop()
            except IndexError:  # the watchdog took this attempt: leave at once
                res.abandoned = True
                return
        if fail is not None:
            failures.append(fail)
        t0s.append(t0)
        t1s.append(t1)
        cpus.append(c1 - c0)
        c0 = c1
        if results is not None:
            results.append(r)
        if fail is not None and fail.code == CRASHED:
            break
