"""``run.summary()``: one pass over the trace's arrays, not over its DataFrames.

:func:`summarize` reduces the arrays of :func:`arrays_of_columns` (a trace's, before or
without its frames) or of :func:`arrays_of_frames` (a saved run's, or a Run whose
frames are made); both give the same numbers as the pandas reductions they replace
(percentiles by linear interpolation, means and sums skipping NaN).

Example:
    >>> import numpy as np
    >>> a = {"status": np.array([0, 0, 1], np.int8), "outcome": np.array([0, 0, 1, 2]),
    ...      "attempt": np.array([1, 1, 1, 2]), "cpu": np.array([0.1, 0.1, 0.1, np.nan]),
    ...      "latency": np.array([1.0, 2.0, 3.0]), "queue_wait": np.zeros(3),
    ...      "service": np.ones(3)}
    >>> s = summarize(a, wall=3.0, workers=1)
    >>> s["ok"], s["failed"], s["retries"], s["throughput"], s["latency_p50_s"]
    (2, 1, 1, 1.0, 2.0)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from qlab.core.codes import CRASHED, JOB_STATUSES, OUTCOMES, TIMEOUT

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from qlab.trace.columns import Columns

__all__ = ["arrays_of_columns", "arrays_of_frames", "summarize"]


def arrays_of_columns(c: Columns, meta: dict[str, Any]) -> dict[str, np.ndarray]:
    """What the summary reads of a trace's columns (sorted, as the frames hold them)."""
    p = c.per_job(meta)
    return {
        "status": p.code,
        "outcome": c.sorted("out"),
        "attempt": c.sorted("attempt"),
        "cpu": c.sorted("cpu"),
        "latency": p.latency,
        "queue_wait": p.queue_wait,
        "service": p.service,
    }


def arrays_of_frames(jobs: pd.DataFrame, att: pd.DataFrame) -> dict[str, np.ndarray]:
    """What the summary reads of a jobs and an attempts frame (status and outcome as
    codes into ``JOB_STATUSES`` and ``OUTCOMES``, -1 for NA or another name)."""
    return {
        "status": _codes(jobs["status"], JOB_STATUSES),
        "outcome": _codes(att["outcome"], OUTCOMES),
        "attempt": att["attempt"].to_numpy(),
        "cpu": att["cpu_s"].to_numpy(float),
        "latency": jobs["latency_s"].to_numpy(float),
        "queue_wait": jobs["queue_wait_s"].to_numpy(float),
        "service": jobs["service_s"].to_numpy(float),
    }


def _codes(col: pd.Series, names: tuple[str, ...]) -> np.ndarray:
    """A categorical (or string) column as codes into ``names``."""
    import numpy as np
    import pandas as pd

    cat = col.astype("category") if not isinstance(col.dtype, pd.CategoricalDtype) else col
    cats = list(cat.cat.categories)
    index = np.array([names.index(x) if x in names else -1 for x in cats] + [-1], np.int64)
    return index[cat.cat.codes.to_numpy()]  # code -1 (NA) takes the trailing -1


def _nansum(x: np.ndarray) -> tuple[float, int]:
    """The sum skipping NaN, as pandas sums it (NaN as 0, one pairwise sum), and the
    count of the values that are not NaN."""
    import numpy as np

    nan = np.isnan(x)
    missing = int(nan.sum())
    total = x.sum() if not missing else np.where(nan, 0.0, x).sum()
    return float(total), len(x) - missing


def _nanmean(x: np.ndarray) -> float:
    """The mean skipping NaN, as pandas computes it (NaN if none is known)."""
    total, count = _nansum(x)
    return total / count if count else math.nan


def summarize(a: dict[str, np.ndarray], wall: float, workers: int) -> dict[str, Any]:
    """The summary's values (see :meth:`qlab.Run.summary`) from the arrays ``a``."""
    import numpy as np

    from qlab.core.stats import latency_cis

    status, out = a["status"], a["outcome"]
    st = [int(np.count_nonzero(status == k)) for k in range(len(JOB_STATUSES))]
    lat = a["latency"]
    known = ~np.isnan(lat)
    lat = lat if known.all() else lat[known]
    q = np.quantile(lat, [0.5, 0.95, 0.99]).tolist() if len(lat) else [math.nan] * 3
    finished = st[0] + st[1]
    cpu = _nansum(a["cpu"])[0]
    return {
        "jobs": len(status),
        "ok": st[0],
        "failed": st[1],
        "cancelled": st[2],
        "pending": st[3],
        "attempts": len(out),
        "retries": int(np.count_nonzero(a["attempt"] > 1)),
        "timeouts": int(np.count_nonzero(out == TIMEOUT)),
        "crashed": int(np.count_nonzero(out == CRASHED)),
        "wall_s": wall,
        "throughput": finished / wall if wall > 0 else math.nan,
        "latency_p50_s": q[0],
        "latency_p95_s": q[1],
        "latency_p99_s": q[2],
        **latency_cis(lat),
        "queue_wait_mean_s": _nanmean(a["queue_wait"]),
        "service_mean_s": _nanmean(a["service"]),
        "cpu_s": cpu,
        "cpu_util": cpu / (wall * workers) if wall > 0 else math.nan,
    }
