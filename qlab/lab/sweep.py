"""Sweeps: one handler run across worker counts, backends and queues, as one tidy DataFrame.

A sweep answers within a time budget (``budget="1min"`` by default). Without ``jobs=``
it calibrates first (:mod:`qlab.lab.sweep_plan`: a short unrecorded run on 1 worker and one
on the most workers, per backend and queue; the second is also the warm-up), plans the
jobs of each run so that every run takes the same share of the budget, states the plan
("16 points × ~47 to 160 jobs × 3 repeats ≈ 52s (budget 1m)") on the progress bar and the
``qlab.lab.sweep.plan`` logger, then runs ``repeats`` runs at every worker count, each one
``qlab.run(handler, range(jobs), workers=w, backend=b, queue=q, seed=seed)``. A repeat
the budget has no room for is not run: the point is marked ``budget_cut`` and not
``precise``, and ``sweep.points.why_not_precise`` says so. Repeats asked for with
``repeats=`` always run.

A durable queue is made fresh for each run (:mod:`qlab.lab.sweep_queues`). With
``precision=0.05`` a point is repeated until the t interval of its mean throughput is
within 5 % of the mean, or ``max_repeats`` runs, or the budget is spent. Every row carries
its point's intervals, outlier flag and machine load (:mod:`qlab.lab.sweep_stats`). The
process backend keeps its worker processes warm from point to point. Ctrl-C keeps the
points measured so far. Measuring is separate from drawing: ``sweep()`` returns data;
``.plot()`` draws it and ``.fit()`` models it.

Example:
    >>> import qlab
    >>> sw = qlab.sweep(workers=[1, 2, 4], jobs=50, repeats=2, progress=False)
    >>> sw.df.groupby("workers").size().tolist()
    [2, 2, 2]
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from qlab import workloads
from qlab.core.checks import describe as _describe
from qlab.core.retry import Retry
from qlab.hooks.base import Hook
from qlab.lab.sweep_options import check_backends as _check_backends
from qlab.lab.sweep_options import check_options, one_handler
from qlab.lab.sweep_options import check_workers as _check_workers
from qlab.lab.sweep_plan import DEFAULT_BUDGET
from qlab.lab.sweep_result import COLUMNS, Sweep, load_sweep
from qlab.lab.sweep_run import DEFAULT_JOBS, Sweeper

if TYPE_CHECKING:
    from qlab.lab.load import LoadSweep

__all__ = ["COLUMNS", "DEFAULT_JOBS", "DEFAULT_RETRY", "Sweep", "load_sweep", "sweep"]
__all__ += ["_check_backends", "_check_workers"]  # the CLI's argument types use them

log = logging.getLogger("qlab.lab.sweep")

#: Retry at once: a backoff would leave the pool idle at the end of a run and so
#: understate throughput, most at high worker counts where runs are short.
DEFAULT_RETRY = Retry(max_retries=3, backoff=None)


def default_workload() -> Callable[[Any], Any]:
    """The handler of ``sweep(handler=None)``: 1 ms I/O-like jobs, 5% of attempts
    failing transiently (so a few retries show up in every run).

    Example:
        >>> default_workload()
        flaky(inner=sleep(ms=1), transient=0.05, permanent=0.0)
    """
    return workloads.flaky(workloads.sleep(ms=1), transient=0.05)


def sweep(
    handler: Callable[[Any], Any] | None = None,
    workers: Iterable[int] | int = range(1, 17),
    backend: Any = "thread",
    jobs: int | None = None,
    repeats: int | None = None,
    seed: int | None = 0,
    retry: Retry | int | None = DEFAULT_RETRY,
    progress: bool | None = None,
    keep_runs: bool = False,
    warmup: bool = True,
    hooks: Iterable[Hook] = (),
    confidence: float = 0.95,
    precision: float | None = None,
    max_repeats: int = 10,
    load: Iterable[float] | None = None,
    stop: Any = None,
    queue: str | Iterable[str] | None = None,
    budget: str | float | None = DEFAULT_BUDGET,
    workload: Callable[[Any], Any] | None = None,
    **run_options: Any,
) -> Sweep | LoadSweep:
    """Run ``handler`` at every worker count on every backend and queue, within ``budget``.

    Args:
        handler: the callable (``workload=`` is an alias); None: :func:`default_workload`
            (1 ms jobs, 5% transient failures, retried at once).
        workers: worker counts (ints >= 1), run in ascending order, duplicates dropped.
        backend: a backend name (``"thread"``, ``"process"``, ``"dask"``...), a Backend
            object (``qlab.backends.Dask(address=...)``), or a list of them.
        jobs: jobs per run (payloads ``range(jobs)``); None: planned from the budget
            (at most ``DEFAULT_JOBS``), or ``DEFAULT_JOBS`` with ``budget=None``.
        repeats: runs per point; given, every point gets them all, whatever the budget;
            None: 3 (2 with ``precision``), those after the first only while the budget
            lasts.
        seed, retry, **run_options: passed to each ``qlab.run`` (timeout, batch_size...).
        progress: a bar over the sweep's runs, with an ETA (``tqdm.auto``: a widget in
            Jupyter), the plan above it, and a line per run on the ``qlab.lab.sweep`` logger
            (INFO). None (default): on in a Jupyter kernel or when stderr is a terminal.
        keep_runs: keep every recorded :class:`qlab.Run` in ``Sweep.runs``.
        warmup: one unrecorded run per backend first (with the most workers); a planned
            sweep's calibration is its warm-up.
        hooks: passed to every recorded run.
        confidence: the level of every interval (throughput, latency percentiles, fits).
        precision: repeat a point until the half-width of its throughput interval is at
            most ``precision`` times the mean (0.05: 5 %), or ``max_repeats`` runs, or
            the budget is spent; ``precise`` says which points got there.
        max_repeats: the most runs per point with ``precision``.
        load: offered loads (jobs/s) for an open-loop sweep instead (:func:`qlab.sweep_load`).
        stop: a ``threading.Event``: when set, the running run stops and the sweep ends, as
            after Ctrl-C.
        queue: ``"memory"`` (None: the default), a queue URL or a list of them: the
            ``queue`` column; each run gets a fresh durable queue (:mod:`qlab.lab.sweep_queues`).
        budget: the time the sweep may take: ``"1min"`` (default: a notebook cell's
            patience), ``"90s"``, ``"2min"``, ``"1m30s"``, seconds as a number, or None
            (no limit). It plans the jobs you leave open and stops adding repeats when it
            is spent; repeats you ask for, and the runs of a point's first repeat, still
            run, so a sweep may overrun when those alone do not fit.

    Returns:
        A :class:`Sweep` (with ``load``: a :class:`qlab.lab.load.LoadSweep`); its
        ``meta["plan"]`` states the plan. After Ctrl-C (or SIGTERM, or ``stop``), the
        points measured so far, with ``meta["interrupted"]`` set.

    Raises:
        ValueError / TypeError: bad input, naming the parameter, before any run.
        ConnectionError: a Redis queue's server does not answer (before any run).

    Example:
        >>> import qlab
        >>> sw = qlab.sweep(qlab.workloads.sleep(ms=1), workers=[1, 2, 4], budget="3s",
        ...                 progress=False)
        >>> sw.meta["plan"]  # doctest: +ELLIPSIS
        '3 points × ... jobs × 3 repeats ≈ ...s (budget 3s)'
    """
    handler, name = one_handler(handler, workload)
    handler = default_workload() if handler is None else handler
    if load is not None:
        return _open_loop(handler, workers, backend, jobs, repeats, seed, retry, hooks, load,
                          queue, run_options)  # fmt: skip
    o = check_options(
        handler, workers=workers, backend=backend, jobs=jobs, repeats=repeats,
        precision=precision, max_repeats=max_repeats, confidence=confidence, queue=queue,
        budget=budget, run_options=run_options, handler_name=name,
    )  # fmt: skip
    meta = _meta(o, seed, retry, warmup)
    s = Sweeper(o, dict(seed=seed, retry=retry, **o.run_options), list(hooks), stop,
                keep_runs, _progress(progress, hooks))  # fmt: skip
    t0 = time.perf_counter()
    try:
        with _warm(o.backends):
            s.prepare(warmup, meta)
            for b, q in o.pairs:
                s.begin(b, q)
                for w in o.workers:
                    s.point(b, q, w)
    except KeyboardInterrupt as exc:
        s.finish_point()
        meta["interrupted"] = f"{exc.args[0] if exc.args else 'SIGINT'} during {s.at}"
        log.warning("sweep interrupted during %s: keeping %d runs", s.at, len(s.rows))
    finally:
        s.close()
    meta["duration_s"] = time.perf_counter() - t0
    return s.result(meta)


def _meta(o: Any, seed: Any, retry: Any, warmup: bool) -> dict[str, Any]:
    """The sweep's provenance, before it runs."""
    from qlab.lab.sweep_options import backend_name
    from qlab.lab.sweep_run import HOW
    from qlab.queues import redact
    from qlab.trace.results import provenance

    return {
        **provenance(),
        "workload": _describe(o.handler),
        "jobs": o.jobs,
        "repeats": o.repeats,
        "seed": seed,
        "backends": [backend_name(b) for b in o.backends],
        "queues": [redact(q) for q in o.queues],
        "workers": o.workers,
        "retry": repr(retry),
        "run_options": {k: repr(v) for k, v in o.run_options.items()},
        "warmup": warmup,
        "confidence": o.confidence,
        "precision": o.precision,
        "max_repeats": o.most_repeats,
        "budget_s": o.budget_s,
        "measured": HOW,
        "start_time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _progress(progress: bool | None, hooks: Any = ()) -> Any:
    """The sweep's bar (:class:`qlab.hooks.progress.SweepProgress`), or None when off. None
    means: on in a Jupyter kernel, or when stderr is a terminal, unless one of ``hooks``
    shows progress itself (``Hook.shows_progress``: the explorer's live view, a bar)."""
    if progress is None:
        import sys

        shown = any(getattr(h, "shows_progress", False) for h in hooks)
        progress = not shown and ("ipykernel" in sys.modules or sys.stderr.isatty())
    if not progress:
        return None
    from qlab.hooks.progress import SweepProgress

    return SweepProgress()


def _open_loop(handler, workers, backend, jobs, repeats, seed, retry, hooks, load, queue,
               run_options) -> Any:  # fmt: skip
    """``sweep(load=...)``: latency against offered load (:func:`qlab.sweep_load`)."""
    from qlab.lab.load import sweep_load
    from qlab.lab.sweep_queues import check_queues

    ws, queues = _check_workers(workers), check_queues(queue)
    if len(ws) != 1 or not isinstance(backend, str) or queues != ["memory"]:
        raise ValueError(
            "with load=, workers must be one int, backend one name and queue 'memory', "
            f"got workers={workers!r}, backend={backend!r}, queue={queue!r}"
        )
    return sweep_load(
        handler, load=load, workers=ws[0], backend=backend, jobs=jobs, repeats=repeats or 1,
        seed=seed, retry=retry, hooks=hooks, **run_options,
    )  # fmt: skip


def _warm(backends: list[Any]) -> contextlib.AbstractContextManager:
    """Keep each backend's workers warm from point to point: the process backend's
    worker processes, and one Dask LocalCluster rescaled to each point's workers."""
    stack = contextlib.ExitStack()
    if "process" in backends:
        from qlab.backends.process.backend import warm_workers

        stack.enter_context(warm_workers())
    if "dask" in backends:
        from qlab.backends.dask.backend import warm_cluster

        stack.enter_context(warm_cluster())
    return stack
