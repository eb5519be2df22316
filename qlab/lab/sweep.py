"""Sweeps: one workload run across worker counts, backends and queues, as one tidy DataFrame.

For each backend and queue: one warm-up run (not recorded), then ``repeats`` runs at
every worker count, each one ``qlab.run(workload, range(jobs), workers=w, backend=b,
queue=q, seed=seed)``; a durable queue is made fresh for each run
(:mod:`qlab.sweep_queues`: ``q.db`` becomes ``q-1.db``, ``q-2.db``...).
The warm-up runs ``min(jobs, 10 * max(workers))`` jobs on the most workers, so that
threads, worker processes, imports and caches exist before the first recorded run.
With ``precision=0.05`` a point is repeated until the t interval of its mean throughput
is within 5 % of the mean, or ``max_repeats`` runs. Every row carries its point's
intervals, outlier flag and machine load (:mod:`qlab.sweep_stats`, :mod:`qlab.machine`).
The process backend keeps its worker processes warm from point to point
(``qlab.backends.process.backend.warm_workers``), so start-up is paid once. Ctrl-C keeps the
points measured so far. Measuring is separate from drawing: ``sweep()`` returns data;
``.plot()`` draws it and ``.fit()`` models it.

Example:
    >>> import qlab
    >>> sw = qlab.sweep(workers=[1, 2, 4], jobs=50, repeats=2)
    >>> sw.df.groupby("workers").size().tolist()
    [2, 2, 2]
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from qlab import workloads
from qlab.backends import BACKENDS
from qlab.core.checks import check_int as _check_int
from qlab.core.checks import describe as _describe
from qlab.core.protocol import Backend
from qlab.core.retry import Retry
from qlab.core.stats import check_confidence, is_precise
from qlab.engine import runner
from qlab.hooks.base import Hook
from qlab.lab.machine import LoadMeter
from qlab.lab.sweep_queues import RunQueues, check_queues
from qlab.lab.sweep_result import COLUMNS, Sweep, frame, load_sweep
from qlab.lab.sweep_stats import finish_point
from qlab.trace.hosts import placement

__all__ = ["COLUMNS", "DEFAULT_JOBS", "DEFAULT_RETRY", "Sweep", "load_sweep", "sweep"]

log = logging.getLogger("qlab.lab.sweep")

#: Jobs per run when ``jobs=None``: the default sweep over 1..16 workers takes ~15 s.
DEFAULT_JOBS = 1000
#: Retry at once: a backoff would leave the pool idle at the end of a run and so
#: understate throughput, most at high worker counts where runs are short.
DEFAULT_RETRY = Retry(max_retries=3, backoff=None)
_HOW = (
    "throughput = (ok + failed) / wall_s of each run; wall_s from the first submission "
    "to the last job's end (time.perf_counter), worker start-up excluded; "
    "one unrecorded warm-up run per backend when warmup=True"
)


def default_workload() -> Callable[[Any], Any]:
    """The workload of ``sweep(workload=None)``: 1 ms I/O-like jobs, 5% of attempts
    failing transiently (so a few retries show up in every run)."""
    return workloads.flaky(workloads.sleep(ms=1), transient=0.05)


def sweep(
    workload: Callable[[Any], Any] | None = None,
    workers: Iterable[int] | int = range(1, 17),
    backend: Any = "thread",
    jobs: int | None = None,
    repeats: int | None = None,
    seed: int | None = 0,
    retry: Retry | int | None = DEFAULT_RETRY,
    progress: bool = False,
    keep_runs: bool = False,
    warmup: bool = True,
    hooks: Iterable[Hook] = (),
    confidence: float = 0.95,
    precision: float | None = None,
    max_repeats: int = 10,
    load: Iterable[float] | None = None,
    stop: Any = None,
    queue: str | Iterable[str] | None = None,
    **run_options: Any,
) -> Any:
    """Run ``workload`` at every worker count on every backend and queue, ``repeats``
    times each.

    Args:
        workload: the handler; None: :func:`default_workload` (1 ms jobs, 5% transient
            failures, retried at once).
        workers: worker counts (ints >= 1), run in ascending order, duplicates dropped.
        backend: a backend name (``"thread"``, ``"process"``, ``"dask"``...), a Backend
            object (``qlab.backends.Dask(address=...)``: each point uses ``workers``
            worker threads of your cluster, which qlab leaves running), or a list.
        jobs: jobs per run (payloads ``range(jobs)``); None: ``DEFAULT_JOBS``.
        repeats: runs per (backend, workers) point; with ``precision``, the least number
            (None: 3, or 2 with ``precision``).
        seed, retry, **run_options: passed to each ``qlab.run`` (timeout, batch_size...).
        progress: one line per run on the ``qlab.sweeps`` logger (INFO).
        keep_runs: keep every recorded :class:`qlab.Run` in ``Sweep.runs``.
        warmup: one unrecorded run per backend first (with the most workers), so that
            the first point pays no start-up or first-use costs.
        hooks: passed to every recorded run.
        confidence: the level of every interval (throughput, latency percentiles, fits).
        precision: repeat a point until the half-width of its throughput interval is at
            most ``precision`` times the mean (0.05: 5 %), or ``max_repeats`` runs; the
            ``precise`` column says which points got there, ``repeats_taken`` how soon.
        max_repeats: the most runs per point with ``precision``.
        load: offered loads (jobs/s) for an open-loop sweep instead: latency against
            load at one worker count on one backend (see :func:`qlab.sweep_load`).
        stop: a ``threading.Event``: when set (from another thread), the running run
            stops as ``qlab.run(stop=)`` does and the sweep ends, as after Ctrl-C.
        queue: ``"memory"`` (None: the default), a queue URL (``sqlite:///runs/q.db``,
            ``redis://host:6379/0?name=q``) or a list of them: the ``queue`` column.
            Each run gets a fresh durable queue derived from the URL (SQLite: the file
            ``q-<n>.db`` beside ``q.db``; Redis: the name ``q-<token>-<n>``), see
            :mod:`qlab.sweep_queues`.

    Returns:
        A :class:`Sweep` (with ``load``: a :class:`qlab.lab.load.LoadSweep`). After Ctrl-C
        (or SIGTERM), the points measured so far, with ``meta["interrupted"]`` set; the
        interrupted run itself is left out.

    Raises:
        ValueError / TypeError: bad input, naming the parameter, before any run.
        ConnectionError: a Redis queue's server does not answer (before any run).

    Example:
        >>> sw = qlab.sweep(qlab.workloads.cpu(ms=1), workers=[1, 2], backend=["thread", "process"],
        ...                 jobs=200, repeats=2)  # doctest: +SKIP
    """
    ws = _check_workers(workers)
    queues = check_queues(queue)
    if load is not None:  # open loop: latency against offered load
        from qlab.lab.load import sweep_load

        if len(ws) != 1 or not isinstance(backend, str) or queues != ["memory"]:
            raise ValueError(
                "with load=, workers must be one int, backend one name and queue 'memory', "
                f"got workers={workers!r}, backend={backend!r}, queue={queue!r}"
            )
        return sweep_load(
            default_workload() if workload is None else workload, load=load, workers=ws[0],
            backend=backend, jobs=jobs, repeats=repeats or 1, seed=seed, retry=retry,
            hooks=hooks, **run_options,
        )  # fmt: skip
    backends = _check_backends(backend)
    confidence = check_confidence(confidence)
    if precision is not None and (
        isinstance(precision, bool) or not isinstance(precision, int | float) or precision <= 0
    ):
        raise ValueError(f"precision must be a number > 0 (e.g. 0.05) or None, got {precision!r}")
    repeats = (3 if precision is None else 2) if repeats is None else repeats
    repeats = _check_int("repeats", repeats, 1)
    max_repeats = _check_int("max_repeats", max_repeats, 1)
    if precision is not None and max_repeats < max(repeats, 2):
        raise ValueError(f"max_repeats must be >= repeats and >= 2, got {max_repeats}")
    most = repeats if precision is None else max_repeats
    jobs = DEFAULT_JOBS if jobs is None else _check_int("jobs", jobs, 1)
    workload = default_workload() if workload is None else workload
    if not callable(workload):
        raise TypeError(f"workload must be callable, got {workload!r}")
    if "process" in backends:
        from qlab.core.pickling import check_picklable

        check_picklable("workload", workload)
    fresh = RunQueues(queues)
    fresh.prepare()
    from qlab.queues import redact
    from qlab.trace.results import provenance

    meta: dict[str, Any] = {
        **provenance(),
        "workload": _describe(workload),
        "jobs": jobs,
        "repeats": repeats,
        "seed": seed,
        "backends": [_name(b) for b in backends],
        "queues": [redact(q) for q in queues],
        "workers": ws,
        "retry": repr(retry),
        "run_options": {k: repr(v) for k, v in run_options.items()},
        "warmup": warmup,
        "confidence": confidence,
        "precision": precision,
        "max_repeats": most,
        "measured": _HOW,
        "start_time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    options = dict(seed=seed, retry=retry, **run_options)
    bar = _sweep_bar(len(backends) * len(queues) * len(ws) * repeats) if progress else None
    point: list[dict[str, Any]] = []  # the rows of the point being measured
    latencies: list[Any] = []
    hooks = [*hooks, bar] if bar is not None else list(hooks)
    rows: list[dict[str, Any]] = []
    runs: list = []
    at = "start"
    t0 = time.perf_counter()
    try:
        with _warm(backends):
            for b, q in ((b, q) for b in backends for q in queues):
                name = _name(b)
                where = name if len(queues) == 1 else f"{name} queue={redact(q)}"
                if warmup:
                    at = f"warm-up of {where}"
                    n = min(jobs, 10 * ws[-1])
                    _checked(runner.run(workload, range(n), ws[-1], backend=b, stop=stop,
                                        queue=fresh(q), **options))  # fmt: skip
                for w in ws:
                    for i in range(most):
                        at = here = f"{where} workers={w} repeat={i}"
                        meter = LoadMeter()
                        run = runner.run(
                            workload, range(jobs), w, backend=b, hooks=hooks, stop=stop,
                            queue=fresh(q), **options,
                        )  # fmt: skip
                        row = _row(_checked(run), name, redact(q), w, i)
                        point.append(row | meter.stop())
                        latencies.append(run.jobs["latency_s"].to_numpy())
                        at = f"the pause after {here}"
                        if keep_runs:
                            runs.append(run)
                        if progress:
                            log.info("sweep %s: %.1f jobs/s", here, point[-1]["throughput"])
                        thr = [r["throughput"] for r in point]
                        if i + 1 >= repeats and (
                            precision is None or is_precise(thr, precision, confidence)
                        ):
                            break
                    rows += finish_point(point, latencies, confidence, precision, seed)
    except KeyboardInterrupt as exc:
        rows += finish_point(point, latencies, confidence, precision, seed)
        meta["interrupted"] = f"{exc.args[0] if exc.args else 'SIGINT'} during {at}"
        log.warning("sweep interrupted during %s: keeping %d runs", at, len(rows))
    finally:
        if bar is not None:
            bar.close()
    meta["duration_s"] = time.perf_counter() - t0
    return Sweep(frame(rows), meta, runs)


def _sweep_bar(points: int) -> Any:
    """``progress=True``: one tqdm bar over the sweep's points (None without tqdm)."""
    try:
        from qlab.hooks.progress import SweepProgress
    except ImportError:
        return None
    return SweepProgress(total=points)


def _warm(backends: list[str]) -> contextlib.AbstractContextManager:
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


def _checked(run: Any) -> Any:
    """The run, or the interrupt that it caught (``qlab.run`` returns on Ctrl-C)."""
    why = run.meta.get("interrupted")
    if why:
        raise KeyboardInterrupt(why)
    return run


def _check_workers(workers: Any) -> list[int]:
    if isinstance(workers, int) and not isinstance(workers, bool):
        workers = [workers]
    bad = isinstance(workers, str | bytes) or not isinstance(workers, Iterable)
    ws = [] if bad else list(workers)
    if bad or not ws or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in ws):
        raise ValueError(f"workers must be a non-empty iterable of ints >= 1, got {workers!r}")
    return sorted(set(ws))


def _check_backends(backend: Any) -> list[Any]:
    """Backend names, or Backend objects such as ``qlab.backends.Dask(address=...)`` (a
    user's cluster, of which each point uses ``workers`` worker threads), or a list of
    them; one per name, so that the ``backend`` column tells them apart."""
    items = [backend] if isinstance(backend, str | Backend) else backend
    items = list(items) if isinstance(items, Iterable) else []
    good = [b in BACKENDS if isinstance(b, str) else isinstance(b, Backend) for b in items]
    if not items or not all(good):
        raise ValueError(
            f"backend must be one of {BACKENDS}, a Backend object, or a list of them, "
            f"got {backend!r}"
        )
    names = [_name(b) for b in items]
    if len(set(names)) < len(names):
        raise ValueError(f"backend: two entries share a name, got {names}")
    return items


def _name(backend: Any) -> str:
    """The ``backend`` column's value: the name, or the Backend object's ``name``."""
    return backend if isinstance(backend, str) else str(backend.name)


def _row(run: Any, backend: str, queue: str, workers: int, repeat: int) -> dict[str, Any]:
    s = run.summary()
    row = {"backend": backend, "queue": queue, "workers": workers, "repeat": repeat}
    row |= {c: s[c] for c in COLUMNS if c in s.index and c not in row}
    return row | placement(run.meta)  # hosts and cores the run used (qlab.hosts)
