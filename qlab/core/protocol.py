"""The one contract between the engine and its backends.

The engine hands a backend a frozen :class:`JobSpec` at :meth:`Backend.start`, and
then, from one driver thread per worker (or from the caller's thread, for a backend
with ``in_caller``), batches to run with :meth:`Backend.run_batch`. A backend runs a
batch with :func:`qlab.core.loop.execute` (in a thread, a process, or anywhere
else) and returns a :class:`BatchResult`: the attempts in columns. Nothing here knows
the engine; the engine knows only this module.

Per worker, the engine keeps a :class:`Slot`: the worker's number, the state its
handler sees through ``qlab.current()``, and whether the engine took its running
attempt away (a thread that timed out).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from qlab.core.batches import Batch
from qlab.core.clock import REAL_CLOCK, Clock
from qlab.core.codes import CRASHED, FAILED
from qlab.core.context import WorkerState

__all__ = [
    "Backend",
    "BackendLost",
    "BatchResult",
    "Failure",
    "JobSpec",
    "Slot",
    "crash_row",
    "unpicklable_rows",
]

Item = tuple  # (job_id, attempt, payload)


@dataclass(frozen=True)
class JobSpec:
    """What every worker needs to run jobs, fixed for the life of a pool.

    Attributes:
        handler: the processing logic.
        is_permanent: the retry classifier: does this error fail its job at once?
        seed: the run's seed (``qlab.current().seed``).
        timeout: seconds one attempt may take, or None.
        want_results: send the handler's return values back.
        clock: the run's one clock.
    """

    handler: Callable[[Any], Any]
    is_permanent: Callable[[BaseException], bool]
    seed: int | None = 0
    timeout: float | None = None
    want_results: bool = False
    clock: Clock = REAL_CLOCK


class Slot:
    """One worker as the engine and its backend both see it."""

    __slots__ = ("abandoned", "batch", "ema", "rec", "res", "state", "thread", "worker")

    def __init__(self, worker: int, state: WorkerState, rec: Any = None) -> None:
        self.worker = worker
        self.state = state
        self.rec = rec  # the engine's recorder of this worker's attempts
        self.ema = 0.0  # mean seconds per attempt, smoothed (sizes the next batch)
        self.thread: Any = None  # the driver thread
        self.batch: Batch | None = None  # the batch running now, and its result so far
        self.res: BatchResult | None = None
        self.abandoned = False  # the engine took the running attempt away


class BackendLost(RuntimeError):
    """The backend cannot run jobs any more (a Dask scheduler that is gone): not the
    jobs' fault. The engine charges no attempt: ``rest`` (the batches it held) goes
    back to the queue, the pool stops, and the run raises this error; the jobs not
    run stay pending (a durable queue's ``qlab.resume`` runs them).

    Example:
        >>> from qlab.core.batches import EMPTY
        >>> err = BackendLost("the Dask scheduler is gone", EMPTY)
        >>> str(err), len(err.rest)
        ('the Dask scheduler is gone', 0)
    """

    def __init__(self, message: str, rest: Batch) -> None:
        super().__init__(message)
        self.rest = rest


@dataclass
class Failure:
    """One failed attempt, as the batch loop saw it."""

    row: int
    code: int  # RETRY (an ordinary error), TIMEOUT, CRASHED, CANCELLED, or FAILED
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
    # a batch the backend already took from the queue (and sent ahead): run it next
    ahead: Batch | None = None
    # seconds each row waited for its rate-limit token (a paced batch), else None
    throttle: list[float] | None = None
    # each row's worker (its lane), from a backend that runs several workers behind
    # one driver (see Backend.drivers); None: every row is the slot's worker's
    lanes: list[int] | None = None

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
        kept.throttle = None if self.throttle is None else self.throttle[:n]
        kept.lanes = None if self.lanes is None else self.lanes[:n]
        return kept


def require_real_clock(spec: JobSpec, who: str) -> None:
    """Refuse a fake clock for a backend whose workers time attempts in other
    processes (``who``: "worker processes", "Dask workers"), naming ``clock``.

    Example:
        >>> from qlab.testing import FakeClock
        >>> spec = JobSpec(abs, lambda exc: False, clock=FakeClock())
        >>> require_real_clock(spec, "worker processes")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: clock: worker processes time attempts on the real clock; use a fake ...
    """
    from qlab.core.clock import RealClock

    if not isinstance(spec.clock, RealClock):
        raise ValueError(
            f"clock: {who} time attempts on the real clock; use a fake "
            "clock with backend='thread' or 'inline'"
        )


def crash_row(
    res: BatchResult,
    exc: BaseException,
    start: float | None,
    now: float,
    code: int = CRASHED,
    error_type: str | None = None,
) -> None:
    """Record the attempt that ``exc`` stopped (a crash, a timeout, a stop) as row
    ``len(res)``, from ``start`` (or ``now``) to ``now``: the one place such a row is
    built, for every backend and the engine."""
    n = len(res)
    if res.cpu_share is not None:
        res.cpu, res.cpu_share = res.cpu_list(), None
    res.start = None
    res.t0, res.t1 = list(res.t0[:n]), list(res.t1[:n])
    del res.cpu[n:]
    res.t0.append(now if start is None else start)
    res.t1.append(now)
    res.cpu.append(math.nan)
    if res.results is not None:
        del res.results[n:]
        res.results.append(None)
    etype = error_type or type(exc).__name__
    res.failures.append(Failure(n, code, etype, str(exc), False, exc))


def unpicklable_rows(
    batch: Batch, exc: Exception, backend: str, want_results: bool, dumps: Callable[[Any], Any]
) -> BatchResult:
    """The rows of a batch that could not be sent to a worker: each job whose payload
    ``dumps`` cannot pickle fails for good (one ``failed`` attempt, naming ``backend``);
    the other jobs go back to the queue uncharged (``rest``)."""
    bad, good = [], []
    for item in batch:
        try:
            dumps(item)
            good.append(item)
        except Exception:
            bad.append(item)
    now = time.perf_counter()
    res = BatchResult(results=[] if want_results else None)
    res.items, res.rest = Batch.of(bad), Batch.of(good)
    for item in bad:
        msg = f"payload of job {item[0]} cannot be pickled for the {backend} backend: {exc}"
        crash_row(res, TypeError(msg), now, now, FAILED)
        res.failures[-1].permanent = True
    return res


@runtime_checkable
class Backend(Protocol):
    """Where batches run. ``qlab.backends`` holds the registry of named ones; any
    object with these members can be passed as ``backend=``.

    Attributes:
        name: the backend's name in ``run.meta["backend"]``.
        can_kill: a timed-out attempt's worker is killed (else abandoned).
        batch_target_s: seconds of work per batch (amortises per-batch costs).
        in_caller: batches run in the caller's thread (no driver threads).

    Optional: ``drivers(workers) -> int``, the number of driver threads (slots) the
    engine starts for ``workers`` workers (default: one each). A backend that runs
    many workers as lanes behind few drivers (asyncio: a task per lane) says which
    lane ran each row in ``BatchResult.lanes``; the trace's ``worker`` is the lane.
    """

    name: str
    can_kill: bool
    batch_target_s: float
    in_caller: bool

    def start(
        self, spec: JobSpec, workers: int, take_ahead: Callable[[Slot], Batch | None]
    ) -> dict[str, Any]:
        """Start ``workers`` workers; return provenance for ``run.meta``.
        ``take_ahead(slot)`` gives the slot's next batch now, if one is ready."""
        ...

    def new_event(self, worker: int) -> Any:
        """The cancel flag of a worker (``set``/``is_set``/``wait``)."""
        ...

    def run_batch(self, slot: Slot, batch: Batch, res: BatchResult) -> BatchResult:
        """Run ``batch`` on ``slot``'s worker, filling ``res``; return the result."""
        ...

    def overdue(self, slot: Slot, now: float) -> tuple[int, float] | None:
        """Claim ``slot``'s running attempt if it is past its deadline: (row, start);
        or act on it (kill the worker) and return None."""
        ...

    def stop_intake(self) -> None:
        """Running attempts finish; no more attempts start."""
        ...

    def stop_worker(self, slot: Slot) -> None:
        """Stop the worker whose attempt timed out (kill it, or nothing)."""
        ...

    def close(self, kill: bool = False) -> None:
        """Release the workers (kill running attempts with ``kill``)."""
        ...

    def info(self) -> dict[str, Any]:
        """Provenance known at the end (pids, clock offsets...)."""
        ...
