"""Sweeping joblib code: how a callable that takes ``n_jobs`` scales, on each joblib backend.

``sweep(fn, n_jobs=[1, 2, 4], backend=["loky", "qlab"])`` calls ``fn(n)`` inside
``joblib.parallel_config(backend=b)`` and :func:`qlab.joblib.trace`, ``repeats``
times per (backend, n) point, after one unrecorded warm-up call per backend (at the
most ``n_jobs``: worker processes start there). ``qlab.sweep(fn, workers=[1, 2, 4],
backend="joblib:loky")`` is the same sweep.

Each call is one job of the sweep: ``throughput`` is calls per second (1 / the call's
wall time, ``time.perf_counter``), so ``speedup`` is how much faster a call is than at
the fewest ``n_jobs``, Amdahl's serial parts included (a trace alone would show only
the parallel batches). The rows go through qlab's own sweep statistics (intervals,
``precision=``, outliers, machine load), so the :class:`qlab.Sweep` plots, fits and
compares like any other. ``keep_runs=True`` keeps each call's traced Run (one job per
joblib batch) in ``Sweep.runs``.

Backends are joblib's names (``"loky"``, ``"threading"``, ``"qlab"``...), optionally
prefixed ``"joblib:"``; ``"qlab:process"`` is the qlab backend on worker processes.
The ``backend`` column reads ``joblib:<name>``.

Example:
    >>> import joblib, qlab.joblib
    >>> def work(n_jobs):
    ...     return joblib.Parallel(n_jobs=n_jobs)(joblib.delayed(abs)(-i) for i in range(20))
    >>> sw = qlab.joblib.sweep(work, n_jobs=[1, 2], backend="qlab", repeats=2)
    >>> sw.df[["backend", "workers"]].drop_duplicates().values.tolist()
    [['joblib:qlab', 1], ['joblib:qlab', 2]]
    >>> qlab.joblib.shutdown()
    1
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import joblib

from qlab.joblib.tracing import trace

__all__ = ["parse_backend", "sweep"]

_HOW = (
    "throughput = calls of fn per second = 1 / wall_s of one call fn(n_jobs) inside "
    "joblib.parallel_config(backend=...) and qlab.joblib.trace(); time.perf_counter; "
    "one unrecorded warm-up call per backend at the most n_jobs"
)


def parse_backend(name: Any) -> tuple[str, dict[str, Any]]:
    """``"joblib:qlab:process"`` -> (``"joblib:qlab:process"``, the parallel_config
    arguments ``{"backend": "qlab", "inner": "process"}``).

    Raises:
        ValueError: not a string, or not a backend joblib knows.
    """
    from joblib.parallel import BACKENDS, EXTERNAL_BACKENDS

    if not isinstance(name, str) or not name:
        raise ValueError(f"backend must be a joblib backend name such as 'loky', got {name!r}")
    bare = name.removeprefix("joblib:")
    base, _, inner = bare.partition(":")
    if base not in BACKENDS and base not in EXTERNAL_BACKENDS:
        raise ValueError(f"backend: joblib knows {sorted(BACKENDS)}, got {name!r}")
    if inner and base != "qlab":
        raise ValueError(
            f"backend: only 'qlab' takes an inner backend ('qlab:process'), got {name!r}"
        )
    config: dict[str, Any] = {"backend": base} | ({"inner": inner} if inner else {})
    return f"joblib:{bare}", config


def sweep(
    fn: Callable[[int], Any],
    n_jobs: Iterable[int] | int = (1, 2, 4),
    backend: str | Iterable[str] = ("loky", "qlab"),
    repeats: int | None = None,
    precision: float | None = None,
    max_repeats: int = 10,
    confidence: float = 0.95,
    warmup: bool = True,
    keep_runs: bool = False,
    seed: int | None = 0,
) -> Any:
    """Measure ``fn(n_jobs)`` at every ``n_jobs`` on every joblib backend.

    Args:
        fn: a callable taking ``n_jobs`` (it passes it to ``Parallel``, or to
            scikit-learn's ``n_jobs=``).
        n_jobs: the values to try (ints >= 1).
        backend: a joblib backend name or a list of them (see the module docs).
        repeats, precision, max_repeats, confidence: as in :func:`qlab.sweep`.
        warmup: one unrecorded call per backend first.
        keep_runs: keep each call's traced :class:`qlab.Run` in ``Sweep.runs``.
        seed: seeds the bootstrap of the latency intervals.

    Returns:
        A :class:`qlab.Sweep`; ``meta["measured"]`` says how.

    Raises:
        ValueError / TypeError: bad input, naming the parameter, before any call.
    """
    from qlab.core.checks import check_int
    from qlab.core.stats import check_confidence

    if not callable(fn):
        raise TypeError(f"fn must be callable (it takes n_jobs), got {fn!r}")
    ns = _check_n_jobs(n_jobs)
    names = [backend] if isinstance(backend, str) else list(backend)
    backends = [parse_backend(b) for b in names]
    if not backends:
        raise ValueError("backend: give at least one joblib backend name")
    confidence = check_confidence(confidence)
    repeats = check_int(
        "repeats", (3 if precision is None else 2) if repeats is None else repeats, 1
    )
    most = repeats if precision is None else max(check_int("max_repeats", max_repeats, 2), repeats)
    rows: list[dict[str, Any]] = []
    runs: list[Any] = []
    t0 = time.perf_counter()
    for label, config in backends:
        if warmup:
            _call(fn, ns[-1], config)
        for n in ns:
            point = _point(fn, n, label, config, repeats, most, precision, confidence, runs)
            rows += _finish(point, confidence, precision, seed)
            if not keep_runs:
                runs.clear()
    return _result(rows, runs, fn, ns, backends, repeats, most, confidence, precision, t0)


def _point(fn: Any, n: int, label: str, config: dict, repeats: int, most: int,
           precision: float | None, confidence: float, runs: list) -> list[dict]:  # fmt: skip
    """One (backend, n_jobs) point: ``repeats`` calls, more (up to ``most``) until the
    throughput interval is within ``precision``; each call's Run goes to ``runs``."""
    from qlab.core.stats import is_precise

    point: list[dict[str, Any]] = []
    for i in range(most):
        wall, run, load = _call(fn, n, config)
        point.append(_row(label, n, i, wall, run) | load)
        runs.append(run)
        thr = [r["throughput"] for r in point]
        if i + 1 >= repeats and (precision is None or is_precise(thr, precision, confidence)):
            break
    return point


def _check_n_jobs(n_jobs: Any) -> list[int]:
    ns = [n_jobs] if isinstance(n_jobs, int) else n_jobs
    ok = isinstance(ns, Iterable) and not isinstance(ns, str)
    ns = list(ns) if ok else []
    if not ns or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in ns):
        raise ValueError(f"n_jobs must be an int >= 1 or a list of them, got {n_jobs!r}")
    return sorted(set(ns))


def _call(fn: Callable[[int], Any], n: int, config: dict[str, Any]) -> tuple[float, Any, dict]:
    """One traced call ``fn(n)``: its wall time, its Run and the machine's load."""
    from qlab.lab.machine import LoadMeter

    meter = LoadMeter()
    with joblib.parallel_config(**config), trace() as t:
        start = time.perf_counter()
        fn(n)
        wall = time.perf_counter() - start
    return wall, t.run, meter.stop()


def _row(label: str, n: int, repeat: int, wall: float, run: Any) -> dict[str, Any]:
    nan = float("nan")
    jobs = run.jobs
    return {
        "backend": label, "queue": "memory", "workers": n, "repeat": repeat, "jobs": 1,
        "ok": 1, "failed": 0, "cancelled": 0, "retries": 0, "wall_s": wall,
        "throughput": 1.0 / wall if wall > 0 else nan, "latency_p50_s": wall,
        "latency_p95_s": wall, "latency_p99_s": wall,
        "queue_wait_mean_s": float(jobs.queue_wait_s.mean()) if len(jobs) else nan,
        "cpu_util": nan, "hosts": 1, "cores": min(n, joblib.cpu_count()),
    }  # fmt: skip


def _finish(point: list[dict], confidence: float, precision: float | None, seed: Any) -> list:
    from qlab.lab.sweep_stats import finish_point

    walls = [[r["wall_s"]] for r in point]
    return finish_point(point, walls, confidence, precision, seed)


def _result(rows: list, runs: list, fn: Any, ns: list[int], backends: list, repeats: int,
            most: int, confidence: float, precision: float | None, t0: float) -> Any:  # fmt: skip
    from qlab.core.checks import describe
    from qlab.lab.sweep_result import Sweep, frame
    from qlab.trace.results import provenance

    meta = {
        **provenance(), "workload": describe(fn), "jobs": 1, "repeats": repeats,
        "backends": [label for label, _ in backends], "queues": ["memory"], "workers": ns,
        "confidence": confidence, "precision": precision, "max_repeats": most,
        "measured": _HOW, "joblib_version": joblib.__version__,
        "start_time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "duration_s": time.perf_counter() - t0,
    }  # fmt: skip
    return Sweep(frame(rows), meta, runs)
