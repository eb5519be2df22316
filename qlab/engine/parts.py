"""The parts of one pool that its drivers and coordinator work with.

:class:`~qlab.engine.pool.Pool` builds a :class:`Parts` and hands it to its
:class:`~qlab.engine.drivers.Drivers`; they never see the Pool itself. This is the
whole interface between the pool's face (submit, feed, shutdown, trace) and the
machinery behind it.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from qlab.core.clock import Clock
from qlab.core.protocol import Backend, JobSpec
from qlab.core.retry import Retry
from qlab.engine.signals import Interrupts
from qlab.hooks.base import HookSet
from qlab.queues.memory import JobQueue
from qlab.trace.recorder import Trace

__all__ = ["Parts"]


@dataclass
class Parts:
    """A pool's queue, backend, job spec, trace, hooks and settings.

    Attributes:
        queue: where jobs wait, and the books of the live run.
        backend: where batches run.
        spec: what a worker needs to run a job (handler, seed, timeout, clock).
        trace: the columnar record of every attempt (one recorder per worker).
        hooks: the observers (progress, metrics).
        clock: the run's one clock.
        retry: the retry policy that settlement applies.
        seed: the run's seed (jitter, seeded workloads).
        workers: how many workers the pool runs.
        batch_size: jobs per batch, or None to size batches to job speed.
        keep_results: record each job's result in the trace.
        limiter: the rate limiter, or None.
        futures: job id -> Future for :meth:`Pool.submit`; None when jobs are fed
            without Futures (``qlab.run``).
        interrupts: where Ctrl-C, SIGTERM and ``stop=`` are noted.
        meta: the run's provenance, filled in as the pool starts and ends.
    """

    queue: JobQueue
    backend: Backend
    spec: JobSpec
    trace: Trace
    hooks: HookSet
    clock: Clock
    retry: Retry
    seed: int | None
    workers: int
    batch_size: int | None
    keep_results: bool
    limiter: Any
    futures: dict[int, Future] | None
    interrupts: Interrupts
    meta: dict[str, Any] = field(default_factory=dict)
