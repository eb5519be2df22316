"""Sweeps: one workload run across worker counts and backends, as one tidy DataFrame.

For each backend: one warm-up run (not recorded), then ``repeats`` runs at every worker
count, each one ``qlab.run(workload, range(jobs), workers=w, backend=b, seed=seed)``.
The process backend keeps its worker processes warm from point to point
(``qlab.backends.process.warm_workers``), so start-up is paid once. Ctrl-C keeps the
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
import json
import logging
import time
from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qlab import engine, workloads
from qlab.engine import BACKENDS, _check_int, _describe
from qlab.hooks import Hook
from qlab.retry import Retry

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLUMNS", "DEFAULT_JOBS", "DEFAULT_RETRY", "Sweep", "load_sweep", "sweep"]

log = logging.getLogger("qlab.sweeps")

#: The columns of ``Sweep.df``, in order (the contract in DESIGN.md).
COLUMNS = (
    "backend", "workers", "repeat", "jobs", "ok", "failed", "cancelled", "retries", "wall_s",
    "throughput", "speedup", "efficiency", "latency_p50_s", "latency_p95_s", "latency_p99_s",
    "queue_wait_mean_s", "cpu_util",
)  # fmt: skip
_INTS = ("workers", "repeat", "jobs", "ok", "failed", "cancelled", "retries")
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


class Sweep:
    """What a sweep measured: ``df`` (one row per backend, workers, repeat), ``meta``
    (provenance) and, with ``keep_runs=True``, the ``runs`` themselves.

    Example:
        >>> sw = qlab.sweep(workers=range(1, 9), jobs=200)  # doctest: +SKIP
        >>> sw.fit()[["lam", "sigma", "kappa", "peak_workers"]]  # doctest: +SKIP
        >>> sw.plot()  # doctest: +SKIP
    """

    def __init__(self, df: pd.DataFrame, meta: dict[str, Any], runs: list | None = None) -> None:
        self.df = df
        self.meta = meta
        self.runs: list = list(runs or [])

    def fit(self, model: str = "usl") -> pd.DataFrame:
        """Fit the Universal Scalability Law (or ``"amdahl"``) per backend, see
        :func:`qlab.usl.fit_frame`: lam, sigma, kappa, their errors, r2, peak_workers..."""
        from qlab.usl import fit_frame

        return fit_frame(self.df, by="backend", model=model)

    @cached_property
    def plot(self) -> Any:
        """Charts: ``sweep.plot()`` (a dashboard), ``sweep.plot.scaling()``, ``.efficiency()``..."""
        from qlab.plot import SweepPlots

        return SweepPlots(self)

    def save(self, path: str | Path) -> Path:
        """Save as Parquet (meta in the schema metadata) or, for a ``.csv`` path, as CSV
        plus a sidecar ``<path>.meta.json``. Returns the path."""
        from qlab.results import write_frame

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps(self.meta, default=str)
        write_frame(self.df, path, meta)
        if path.suffix == ".csv":
            Path(f"{path}.meta.json").write_text(meta)
        return path

    def __repr__(self) -> str:
        m, ws = self.meta, self.meta.get("workers") or [0]
        what = f"{','.join(m.get('backends', []))} workers={min(ws)}..{max(ws)} x{m.get('repeats')}"
        stop = ", interrupted" if m.get("interrupted") else ""
        return f"<qlab.Sweep {what}: {len(self.df)} runs of {m.get('workload')}{stop}>"

    def _repr_html_(self) -> str:
        import html

        pivot = self.df.pivot_table(
            index="workers", columns="backend", values="throughput", aggfunc="mean"
        )
        head = html.escape(repr(self))
        return f"<p>{head}<br>mean throughput (jobs/s)</p>{pivot.round(1).to_html()}"


def load_sweep(path: str | Path) -> Sweep:
    """Load a sweep saved with :meth:`Sweep.save` (Parquet, or CSV with its sidecar)."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"path {str(path)!r} does not exist")
    if path.suffix == ".csv":
        df = pd.read_csv(path)
        side = Path(f"{path}.meta.json")
        meta = json.loads(side.read_text()) if side.exists() else {}
    else:
        import pyarrow.parquet as pq

        from qlab.results import META_KEY

        df = pd.read_parquet(path)
        raw = (pq.read_schema(path).metadata or {}).get(META_KEY)
        meta = json.loads(raw) if raw else {}
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"path {str(path)!r} holds no qlab sweep: columns {missing} missing")
    return Sweep(_typed(df[list(COLUMNS)]), meta)


def sweep(
    workload: Callable[[Any], Any] | None = None,
    workers: Iterable[int] | int = range(1, 17),
    backend: str | Iterable[str] = "thread",
    jobs: int | None = None,
    repeats: int = 3,
    seed: int | None = 0,
    retry: Retry | int | None = DEFAULT_RETRY,
    progress: bool = False,
    keep_runs: bool = False,
    warmup: bool = True,
    hooks: Iterable[Hook] = (),
    **run_options: Any,
) -> Sweep:
    """Run ``workload`` at every worker count on every backend, ``repeats`` times each.

    Args:
        workload: the handler; None: :func:`default_workload` (1 ms jobs, 5% transient
            failures, retried at once).
        workers: worker counts (ints >= 1), run in ascending order, duplicates dropped.
        backend: ``"thread"``, ``"process"`` or a list of them.
        jobs: jobs per run (payloads ``range(jobs)``); None: ``DEFAULT_JOBS``.
        repeats: runs per (backend, workers) point.
        seed, retry, **run_options: passed to each ``qlab.run`` (timeout, batch_size...).
        progress: one line per run on the ``qlab.sweeps`` logger (INFO).
        keep_runs: keep every recorded :class:`qlab.Run` in ``Sweep.runs``.
        warmup: one unrecorded run per backend first (with the most workers), so that
            the first point pays no start-up or first-use costs.
        hooks: passed to every recorded run.

    Returns:
        A :class:`Sweep`. After Ctrl-C (or SIGTERM), the points measured so far, with
        ``meta["interrupted"]`` set; the interrupted run itself is left out.

    Raises:
        ValueError / TypeError: bad input, naming the parameter, before any run.

    Example:
        >>> sw = qlab.sweep(qlab.workloads.cpu(ms=1), workers=[1, 2], backend=["thread", "process"],
        ...                 jobs=200, repeats=2)  # doctest: +SKIP
    """
    ws = _check_workers(workers)
    backends = _check_backends(backend)
    repeats = _check_int("repeats", repeats, 1)
    jobs = DEFAULT_JOBS if jobs is None else _check_int("jobs", jobs, 1)
    workload = default_workload() if workload is None else workload
    if not callable(workload):
        raise TypeError(f"workload must be callable, got {workload!r}")
    if "process" in backends:
        from qlab.backends.process import check_picklable

        check_picklable("workload", workload)
    from qlab.results import provenance

    meta: dict[str, Any] = {
        **provenance(),
        "workload": _describe(workload),
        "jobs": jobs,
        "repeats": repeats,
        "seed": seed,
        "backends": backends,
        "workers": ws,
        "retry": repr(retry),
        "run_options": {k: repr(v) for k, v in run_options.items()},
        "warmup": warmup,
        "measured": _HOW,
        "start_time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    options = dict(seed=seed, retry=retry, **run_options)
    bar = _sweep_bar(len(backends) * len(ws) * repeats) if progress else None
    hooks = [*hooks, bar] if bar is not None else list(hooks)
    rows: list[dict[str, Any]] = []
    runs: list = []
    at = "start"
    t0 = time.perf_counter()
    try:
        with _warm("process" in backends):
            for b in backends:
                if warmup:
                    at = f"warm-up of {b}"
                    n = min(jobs, 10 * ws[-1])
                    _checked(engine.run(workload, range(n), ws[-1], backend=b, **options))
                for w in ws:
                    for i in range(repeats):
                        at = point = f"{b} workers={w} repeat={i}"
                        run = engine.run(
                            workload, range(jobs), w, backend=b, hooks=hooks, **options
                        )
                        rows.append(_row(_checked(run), b, w, i))
                        at = f"the pause after {point}"
                        if keep_runs:
                            runs.append(run)
                        if progress:
                            log.info("sweep %s: %.1f jobs/s", point, rows[-1]["throughput"])
    except KeyboardInterrupt as exc:
        meta["interrupted"] = f"{exc.args[0] if exc.args else 'SIGINT'} during {at}"
        log.warning("sweep interrupted during %s: keeping %d runs", at, len(rows))
    finally:
        if bar is not None:
            bar.close()
    meta["duration_s"] = time.perf_counter() - t0
    return Sweep(_frame(rows), meta, runs)


def _sweep_bar(points: int) -> Any:
    """``progress=True``: one tqdm bar over the sweep's points (None without tqdm)."""
    try:
        from qlab.progress import SweepProgress
    except ImportError:
        return None
    return SweepProgress(total=points)


def _warm(process: bool) -> contextlib.AbstractContextManager:
    if not process:
        return contextlib.nullcontext()
    from qlab.backends.process import warm_workers

    return warm_workers()


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


def _check_backends(backend: Any) -> list[str]:
    names = [backend] if isinstance(backend, str) else backend
    names = list(names) if isinstance(names, Iterable) else []
    if not names or any(b not in BACKENDS for b in names):
        raise ValueError(f"backend must be one of {BACKENDS} or a list of them, got {backend!r}")
    return list(dict.fromkeys(names))


def _row(run: Any, backend: str, workers: int, repeat: int) -> dict[str, Any]:
    s = run.summary()
    row = {"backend": backend, "workers": workers, "repeat": repeat}
    return row | {c: s[c] for c in COLUMNS if c in s.index and c not in row}


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The tidy frame, with speedup over X1 = (mean throughput at the lowest worker
    count) / that count, per backend, and efficiency = speedup / workers."""
    import pandas as pd

    df = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("speedup", "efficiency")])
    low = df.groupby("backend")["workers"].transform("min")
    x_low = df[df["workers"] == low].groupby("backend")["throughput"].mean()
    df["speedup"] = df["throughput"] / (df["backend"].map(x_low) / low)
    df["efficiency"] = df["speedup"] / df["workers"]
    return _typed(df[list(COLUMNS)])


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    types = {c: "int64" if c in _INTS else "float64" for c in COLUMNS if c != "backend"}
    return df.astype({"backend": str, **types}).reset_index(drop=True)
