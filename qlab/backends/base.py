"""The one small contract between the engine and its backends, and the batch loop.

Both backends run jobs through :func:`execute`: a loop over a batch that times each
attempt, catches its error, and appends to per-batch columns (lists, turned into
compact arrays by the engine). The thread backend calls it in a worker thread; the
process backend calls it inside a worker process and ships the columns back.

Outcome codes are small ints so that a column of them is a bytearray.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qlab.batches import Batch
from qlab.context import Cancelled, WorkerState

OUTCOMES = ("ok", "retry", "failed", "timeout", "crashed", "cancelled")
OK, RETRY, FAILED, TIMEOUT, CRASHED, CANCELLED = range(6)

Item = tuple  # (job_id, attempt, payload)

# A batch whose attempts are this slow or slower has its CPU time measured per attempt;
# faster batches measure it once per batch and apportion it by wall time, because one
# thread-CPU clock read costs about 0.8 us (a system call, unlike perf_counter).
PRECISE_CPU_BATCH = 64


@dataclass
class Failure:
    """One failed attempt, as the batch loop saw it."""

    row: int
    code: int  # RETRY (an ordinary error), TIMEOUT or CANCELLED
    error_type: str
    error: str
    permanent: bool
    exc: BaseException | None = None  # kept in-process; dropped when not picklable
    tb: str = ""  # the remote traceback (process backend)


@dataclass
class BatchResult:
    """What a batch produced, in columns; rows follow the batch's items in order.

    ``cpu`` holds each row's CPU seconds, unless ``cpu_share`` is set: then the batch's
    CPU time was measured once, and a row's CPU time is its wall time times the share.
    """

    t0: Any = field(default_factory=list)  # a list, or an array("d") from a process
    t1: Any = field(default_factory=list)
    cpu: Any = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    results: list[Any] | None = None
    abandoned: bool = False  # the engine took the running attempt away (thread timeout)
    cpu_share: float | None = None
    start: float | None = None  # a quick batch's start: it fills t0 only when it ends
    # when rows do not follow the batch (a worker process died): the items of the rows,
    # and the items that did not run and go back to the queue uncharged
    items: Batch | None = None
    rest: Batch | None = None

    def __len__(self) -> int:
        if self.start is not None:  # a quick batch: a row is done when its end is noted
            return len(self.t1)
        return min(len(self.t0), len(self.t1))

    def cpu_list(self) -> list[float]:
        """Each row's CPU seconds (``cpu_share`` turned into per-row values)."""
        if self.cpu_share is None:
            return list(self.cpu)
        share = self.cpu_share
        return [(b - a) * share for a, b in zip(self.t0, self.t1, strict=False)]

    def prefix(self, n: int) -> BatchResult:
        """The first ``n`` rows (the rows its worker finished), also while a quick
        batch is still running (its start times and CPU share are not written yet:
        each row starts where the one before it ended; CPU time is unknown, NaN)."""
        t1 = list(self.t1[:n])
        t0 = self.t0[:n] if len(self.t0) >= n else [self.start, *t1[:-1]][:n]
        cpu = self.cpu_list()[:n]
        kept = BatchResult(t0, t1, cpu + [math.nan] * (n - len(cpu)))
        kept.failures = [f for f in self.failures if f.row < n]
        kept.results = None if self.results is None else self.results[:n]
        return kept


def _failure(row: int, exc: BaseException, state: WorkerState, t1: float, is_permanent) -> Failure:
    """Classify an error: a Cancelled raised because the pool is stopping is CANCELLED,
    one raised past the attempt's deadline is TIMEOUT, anything else is retryable."""
    code = RETRY
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
) -> BatchResult:
    """Run ``fn`` on each item of ``batch``; return the attempts in columns.

    ``state.stop`` ends the batch early (the rows cover the items that ran). With
    ``state.timeout`` set on the thread backend, each attempt is claimed through
    ``state.box`` so that the engine's watchdog can take an overdue attempt away
    (see ``engine._Slot.watch``). ``publish(index, start)`` tells a process backend's
    parent which attempt is running.
    """
    if res is None:
        res = BatchResult()
    if keep_results and res.results is None:
        res.results = []
    if state.timeout is None and len(batch) >= PRECISE_CPU_BATCH:
        _run_fast(fn, batch, state, is_permanent, res, publish)
    else:
        _run_careful(fn, batch, state, is_permanent, res, publish)
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
                except Exception as exc:
                    t1 = perf()
                    failures.append(_failure(len(t1s), exc, state, t1, is_permanent))
                    append(t1)
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
                except Exception as exc:
                    t1 = perf()
                    failures.append(_failure(i, exc, state, t1, is_permanent))
                    r = None
                else:
                    t1 = perf()
                append(t1)
                if results is not None:
                    results.append(r)
    finally:
        n = len(t1s)
        res.t0 = [start, *t1s[: n - 1]] if n else []
        wall = t1s[-1] - start if n else 0.0
        res.cpu_share = min((cpu_clock() - c_start) / wall, 1.0) if wall > 0 else 0.0


def _run_careful(fn, batch: Batch, state, is_permanent, res: BatchResult, publish) -> None:
    perf, cpu_clock = state.now, time.thread_time
    t0s, t1s, cpus, results, failures = res.t0, res.t1, res.cpu, res.results, res.failures
    timed = state.timeout is not None and publish is None
    for i, (job_id, attempt, payload) in enumerate(batch):
        if state.stop:
            break
        c0 = cpu_clock()
        t0 = perf()
        state.cur = (job_id, attempt, t0)
        if timed:
            box = [(i, t0)]
            state.box = box
        elif publish is not None:
            publish(i, t0)
        try:
            r = fn(payload)
        except Exception as exc:
            t1 = perf()
            fail = _failure(i, exc, state, t1, is_permanent)
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
        if results is not None:
            results.append(r)
