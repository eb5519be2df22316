"""The result of a sweep: :class:`Sweep` (the tidy frame, its provenance, fits, points,
comparisons, charts), saved to and loaded from Parquet or CSV.

Example:
    >>> from qlab.lab.sweep_result import COLUMNS
    >>> COLUMNS[:4]
    ('backend', 'queue', 'workers', 'repeat')
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qlab.lab.sweep_stats import CI_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLUMNS", "Sweep", "frame", "load_sweep"]

#: The columns of ``Sweep.df``, in order (the contract in docs/design.md).
COLUMNS = (
    "backend", "queue", "workers", "repeat", "jobs", "ok", "failed", "cancelled", "retries",
    "wall_s", "throughput", "speedup", "efficiency", "latency_p50_s", "latency_p95_s",
    "latency_p99_s", "queue_wait_mean_s", "cpu_util",
)  # fmt: skip
_INTS = ("workers", "repeat", "jobs", "ok", "failed", "cancelled", "retries", "repeats_taken",
         "hosts", "cores")  # fmt: skip
_BOOLS = ("precise", "outlier", "busy", "budget_cut")


class Sweep:
    """What a sweep measured: ``df`` (one row per backend, queue, workers, repeat), ``meta``
    (provenance) and, with ``keep_runs=True``, the ``runs`` themselves.

    Example:
        >>> import qlab
        >>> sw = qlab.sweep(qlab.workloads.sleep(ms=1), workers=[1, 2, 3], jobs=20, repeats=2,
        ...                 progress=False)
        >>> len(sw.df), sw.points["workers"].tolist()
        (6, [1, 2, 3])
        >>> sw = qlab.sweep(workers=range(1, 9), jobs=200)  # doctest: +SKIP
        >>> sw.fit()[["lam", "sigma", "kappa", "peak_workers"]]  # doctest: +SKIP
        >>> sw.plot()  # doctest: +SKIP
    """

    def __init__(self, df: pd.DataFrame, meta: dict[str, Any], runs: list | None = None) -> None:
        if "queue" not in df.columns:  # a frame made before the queue was a dimension
            df = df.copy()
            df.insert(1, "queue", "memory")
        self.df = df
        self.meta = meta
        self.runs: list = list(runs or [])
        self._fits: dict[tuple, pd.DataFrame] = {}

    def fit(
        self, model: str = "usl", noise: str = "absolute", confidence: float | None = None
    ) -> pd.DataFrame:
        """Fit the Universal Scalability Law (or ``"amdahl"``) per backend, see
        :func:`qlab.usl.fit_frame`: lam, sigma, kappa, their errors and intervals
        (``sigma_ci_low``...), ``sigma_significant``, r2, peak_workers and its interval.
        Indexed by backend; by (backend, queue) when the sweep ran on several queues.
        ``confidence`` defaults to the sweep's. A fit is made once per options: asked
        again (``plot()`` asks too), it is not redone, and its warnings (a misfit, few
        levels) are given once."""
        from qlab.lab.usl.model import fit_frame

        level = self.meta.get("confidence", 0.95) if confidence is None else confidence
        key = (model, noise, level, id(self.df), len(self.df))
        if key not in self._fits:
            by = ["backend", "queue"] if self.df["queue"].nunique() > 1 else "backend"
            self._fits[key] = fit_frame(self.df, by=by, model=model, noise=noise, confidence=level)
        return self._fits[key].copy()

    @property
    def points(self) -> pd.DataFrame:
        """One row per (backend, queue, workers): mean throughput with its interval, latency
        intervals, repeats taken, precise, outliers (see :func:`qlab.lab.sweep_stats.points`)."""
        from qlab.lab.sweep_stats import points

        return points(self.df)

    def compare(self, other: Sweep, confidence: float | None = None) -> pd.DataFrame:
        """Per point measured by both sweeps: throughput ratio self/other, its interval
        and a verdict (faster, slower, same, unknown); see :func:`qlab.lab.sweep_stats.compare`."""
        from qlab.lab.sweep_stats import compare

        level = self.meta.get("confidence", 0.95) if confidence is None else confidence
        return compare(self.df, other.df, level, labels=("self", "other"))

    @cached_property
    def plot(self) -> Any:
        """Charts: ``sweep.plot()`` (a dashboard), ``sweep.plot.scaling()``, ``.efficiency()``..."""
        from qlab.plot import SweepPlots

        return SweepPlots(self)

    def save(self, path: str | Path) -> Path:
        """Save as Parquet (meta in the schema metadata) or, for a ``.csv`` path, as CSV
        plus a sidecar ``<path>.meta.json``. Returns the path."""
        from qlab.trace.tables import write_frame

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps(self.meta, default=str)
        write_frame(self.df, path, meta)
        if path.suffix == ".csv":
            Path(f"{path}.meta.json").write_text(meta)
        return path

    def __repr__(self) -> str:
        m, ws = self.meta, self.meta.get("workers") or [0]
        qs = m.get("queues") or ["memory"]
        on = "" if qs == ["memory"] else f" on {len(qs)} queues" if len(qs) > 1 else f" on {qs[0]}"
        what = f"{','.join(m.get('backends', []))}{on} workers={min(ws)}..{max(ws)}"
        what += f" x{m.get('repeats')}"
        stop = ", interrupted" if m.get("interrupted") else ""
        return f"<qlab.Sweep {what}: {len(self.df):,} runs of {m.get('workload')}{stop}>"

    def _repr_html_(self) -> str:
        import html

        by = ["backend", "queue"] if self.df["queue"].nunique() > 1 else "backend"
        pivot = self.df.pivot_table(
            index="workers", columns=by, values="throughput", aggfunc="mean"
        )
        from qlab.core import fmt

        head = html.escape(repr(self))
        table = pivot.to_html(float_format=fmt.number)  # the values stay raw in .df
        return f"<p>{head}<br>mean throughput (jobs/s)</p>{table}"


def load_sweep(path: str | Path) -> Sweep:
    """Load a sweep saved with :meth:`Sweep.save` (Parquet, or CSV with its sidecar).


    Example:
        >>> import os, tempfile, qlab
        >>> sw = qlab.sweep(abs, workers=[1, 2], jobs=10, repeats=1, progress=False)
        >>> path = sw.save(os.path.join(tempfile.mkdtemp(), "sweep.parquet"))
        >>> qlab.load_sweep(path).df["workers"].tolist()
        [1, 2]
    """
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

        from qlab.trace.tables import META_KEY

        df = pd.read_parquet(path)
        raw = (pq.read_schema(path).metadata or {}).get(META_KEY)
        meta = json.loads(raw) if raw else {}
    if "queue" not in df.columns:  # saved before the queue was a dimension
        df.insert(1, "queue", "memory")
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"path {str(path)!r} holds no qlab sweep: columns {missing} missing")
    if "throughput_ci_low" not in df.columns:
        df = _with_intervals(df, meta)
    if "budget_cut" not in df.columns:  # saved before sweeps had a budget
        df["budget_cut"] = False
    placed = [c for c in ("hosts", "cores") if c in df.columns]  # (qlab.trace.hosts.PLACEMENT)
    return Sweep(_typed(df[[*COLUMNS, *CI_COLUMNS, *placed]]), meta)


def _with_intervals(df: pd.DataFrame, meta: dict[str, Any]) -> pd.DataFrame:
    """A sweep saved before the intervals: the throughput interval, ``precise`` and the
    outlier flags from its repeats; the latency intervals and the machine load per repeat
    were not recorded (NaN), and ``busy`` comes from the sweep's ``meta["others_cpus"]``."""
    import pandas as pd

    from qlab.core.stats import outliers
    from qlab.lab.machine import BUSY_CPUS
    from qlab.lab.sweep_stats import point_columns

    df = df.copy()
    level = meta.get("confidence", 0.95)
    others = meta.get("others_cpus")
    for col in CI_COLUMNS:  # object columns take floats, ints and bools alike
        df[col] = pd.Series([float("nan")] * len(df), index=df.index, dtype=object)
    for _, g in df.groupby(["backend", "queue", "workers"], sort=False):
        cols = point_columns(g["throughput"].tolist(), [], level, meta.get("precision"))
        for col, value in cols.items():
            df.loc[g.index, col] = value
        df.loc[g.index, "outlier"] = list(outliers(g["throughput"].to_numpy()))
    df["busy"] = bool(others is not None and others >= BUSY_CPUS)
    df["others_cpus"] = float("nan") if others is None else others
    return df


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    def kind(c: str) -> str:
        return "int64" if c in _INTS else "bool" if c in _BOOLS else "float64"

    types = {c: kind(c) for c in df.columns if c not in ("backend", "queue")}
    return df.astype({"backend": str, "queue": str, **types}).reset_index(drop=True)


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The tidy frame of a sweep's rows, with speedup over X1 = (mean throughput at the
    lowest worker count) / that count, per (backend, queue), and efficiency = speedup /
    workers.

    Example:
        >>> list(frame([]).columns[:4]), len(frame([]))
        (['backend', 'queue', 'workers', 'repeat'], 0)
    """
    import pandas as pd

    from qlab.trace.hosts import PLACEMENT

    names = [c for c in (*COLUMNS, *CI_COLUMNS, *PLACEMENT) if c not in ("speedup", "efficiency")]
    df = pd.DataFrame(rows, columns=names)
    by = [df["backend"], df["queue"]]
    low = df.groupby(by)["workers"].transform("min")
    x_low = df["throughput"].where(df["workers"] == low).groupby(by).transform("mean")
    df["speedup"] = df["throughput"] / (x_low / low)
    df["efficiency"] = df["speedup"] / df["workers"]
    return _typed(df[[*COLUMNS, *CI_COLUMNS, *PLACEMENT]])
