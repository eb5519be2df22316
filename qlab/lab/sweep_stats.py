"""The statistics of a sweep point: intervals, precision, outliers, and comparisons.

A *point* is one (backend, queue, workers) of a sweep, measured by one or more repeats.

- ``throughput_ci_low`` / ``_high``: Student's t interval of the mean throughput of the
  repeats (:func:`qlab.core.stats.mean_ci`), its low end at least 0; NaN with one repeat.
- ``latency_p50_s_ci_low`` ... ``latency_p99_s_ci_high``: intervals of the percentiles of
  the latencies of every job of the point's repeats, pooled
  (:func:`qlab.core.stats.quantile_ci`: scipy's BCa bootstrap, seeded, or order statistics
  above 2,000 jobs). They say how precisely the jobs pin the percentile down;
  run-to-run drift shows in the throughput interval.
- ``precise``: the throughput half-width is within ``precision`` of the mean (without
  ``precision=``, within 5 %); ``repeats_taken``: how many repeats the point took.
- ``budget_cut``: the sweep's budget stopped the point's repeats before it had the
  repeats planned (or, with ``precision``, before it was precise); such a point is not
  ``precise``.
- ``outlier``: the repeat's throughput has a modified z-score above 3.5 among the
  point's repeats (:func:`qlab.core.stats.outliers`; 5 repeats or more). Outliers are flagged
  and *kept*: every interval includes them, so a reader sees them rather than losing
  them silently.

Example:
    >>> cols = point_columns([100.0, 102.0, 98.0], [[0.1, 0.2], [0.1, 0.3], [0.2, 0.2]])
    >>> round(cols["throughput_ci_low"], 1), cols["precise"]
    (95.0, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from qlab.core import stats

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CI_COLUMNS", "DEFAULT_PRECISION", "compare", "finish_point", "keys", "point_columns", "points",
]  # fmt: skip

QUANTILES = ("latency_p50_s", "latency_p95_s", "latency_p99_s")  # (stats.latency_cis)
#: The per-point columns that a sweep adds to each of the point's rows.
CI_COLUMNS = (
    "throughput_ci_low", "throughput_ci_high",
    *(f"{name}_ci_{end}" for name in QUANTILES for end in ("low", "high")),
    "repeats_taken", "precise", "outlier", "others_cpus", "load_avg", "busy", "budget_cut",
)  # fmt: skip
#: The precision that ``precise`` is judged by when a sweep is given none.
DEFAULT_PRECISION = 0.05


def point_columns(
    throughputs: Sequence[float],
    latencies: Sequence[Any],
    confidence: float = 0.95,
    precision: float | None = None,
    seed: int | None = 0,
) -> dict[str, Any]:
    """The point-level columns (all but ``outlier`` and the load, which are per repeat).

    Args:
        throughputs: one throughput per repeat. latencies: one array of job latencies
            per repeat. confidence: the level. precision: relative half-width for
            ``precise`` (None: ``DEFAULT_PRECISION``). seed: seeds the bootstrap.
    """
    ci = stats.mean_ci(throughputs, confidence)
    # throughput is never negative: a t interval of 2 scattered repeats can reach below 0
    out: dict[str, Any] = {"throughput_ci_low": max(ci.low, 0.0), "throughput_ci_high": ci.high}
    out |= stats.latency_cis(list(latencies), confidence, method="auto", seed=seed)
    rel = DEFAULT_PRECISION if precision is None else precision
    out["repeats_taken"] = len(throughputs)
    out["precise"] = stats.is_precise(throughputs, rel, confidence)
    return out


def finish_point(
    point: list[dict[str, Any]],
    latencies: list[Any],
    confidence: float,
    precision: float | None,
    seed: int | None,
) -> list[dict[str, Any]]:
    """The point's rows (one per repeat, with ``throughput`` and ``others_cpus``) with its
    intervals, outlier flags and busy flags; empties both buffers for the next point.

    Example:
        >>> rows = [{"throughput": x, "others_cpus": c} for x, c in [(10.0, 0.0), (12.0, 2.0)]]
        >>> [(r["repeats_taken"], r["busy"]) for r in finish_point(rows, [], 0.95, None, 0)]
        [(2, False), (2, True)]
    """
    from qlab.lab.machine import BUSY_CPUS

    rows, lat = list(point), list(latencies)
    point.clear()
    latencies.clear()
    if not rows:
        return []
    thr = [r["throughput"] for r in rows]
    cols = point_columns(thr, lat, confidence, precision, seed)
    flags = stats.outliers(thr)
    for row, flag in zip(rows, flags, strict=True):
        row |= cols | {"outlier": bool(flag), "busy": bool(row["others_cpus"] >= BUSY_CPUS)}
    return rows


def keys(df: pd.DataFrame) -> list[str]:
    """What names a point in ``df``: backend[, queue], workers (a frame saved before
    the queue column has none)."""
    return ["backend", *(["queue"] if "queue" in df.columns else []), "workers"]


def points(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (backend, queue, workers): mean throughput, its interval, the pooled latency
    percentiles' intervals, repeats, precise, ``outliers`` and ``busy_runs`` (counts of
    flagged repeats), the most CPUs other processes used during a repeat, and
    ``why_not_precise`` (empty for a precise point).

    Example:
        >>> sweep.points[["throughput", "throughput_ci_low", "precise"]]  # doctest: +SKIP
    """
    by = keys(df)
    firsts = [c for c in CI_COLUMNS if c in df.columns and c not in ("outlier", "busy")]
    firsts = [c for c in firsts if c not in ("others_cpus", "load_avg")]
    agg: dict[str, Any] = {"throughput": ("throughput", "mean"), "runs": ("throughput", "size")}
    for col in ("speedup", "efficiency", "latency_p50_s", "latency_p95_s", "latency_p99_s"):
        agg[col] = (col, "mean")
    agg |= {c: (c, "first") for c in firsts}
    for name, col, how in (("outliers", "outlier", "sum"), ("busy_runs", "busy", "sum"),
                            ("others_cpus", "others_cpus", "max"), ("hosts", "hosts", "max"),
                            ("cores", "cores", "max")):  # fmt: skip
        if col in df.columns:
            agg[name] = (col, how)
    out = df.groupby(by, sort=False).agg(**agg).reset_index()
    out["why_not_precise"] = [_why(r) for r in out.to_dict("records")]
    return out


def _why(point: dict[str, Any]) -> str:
    """Why a point is not precise, from its own columns ("" when it is)."""
    if point.get("precise", True) is True or "precise" not in point:
        return ""
    runs = int(point["runs"])
    if point.get("budget_cut", False):
        reasons = [f"the budget was spent after {runs} repeat(s)"]
    elif runs < 2:
        reasons = ["one repeat: no interval"]
    else:
        reasons = [f"{runs} repeats were not enough (max_repeats, or repeats without precision=)"]
    if point.get("busy_runs", 0):
        others = point.get("others_cpus", math.nan)
        busy = int(point["busy_runs"])
        reasons.append(f"{busy} of {runs} under load (others up to {others:.2f} CPUs)")
    if point.get("outliers", 0):
        reasons.append(f"{int(point['outliers'])} outlier repeat(s)")
    return "; ".join(reasons)


def compare(
    a: pd.DataFrame, b: pd.DataFrame, confidence: float = 0.95, labels: tuple = ("a", "b")
) -> pd.DataFrame:
    """Per (backend, queue, workers) point measured by both ``a`` and ``b`` (sweep frames):
    mean throughputs, their ratio a/b with its interval (:func:`qlab.core.stats.ratio_ci`),
    and a verdict: ``"faster"`` / ``"slower"`` (the interval excludes 1), ``"same"``
    (it includes 1) or ``"unknown"`` (fewer than 2 repeats on a side).

    Example:
        >>> this.compare(reference)[["ratio", "ratio_ci_low", "verdict"]]  # doctest: +SKIP
    """
    import pandas as pd

    stats.check_confidence(confidence)
    rows = []
    a, b = _with_queue(a), _with_queue(b)
    by = keys(a)
    ga, gb = a.groupby(by), b.groupby(by)
    for key in sorted(set(ga.groups) & set(gb.groups), key=lambda k: (*map(str, k[:-1]), k[-1])):
        xa, xb = ga.get_group(key)["throughput"], gb.get_group(key)["throughput"]
        ratio, ci = stats.ratio_ci(xa, xb, confidence)
        if math.isnan(ci.low):
            verdict = "unknown"
        elif ci.low > 1:
            verdict = "faster"
        elif ci.high < 1:
            verdict = "slower"
        else:
            verdict = "same"
        rows.append({
            "backend": key[0], "queue": key[1], "workers": int(key[2]),
            f"throughput_{labels[0]}": float(np.mean(xa)),
            f"throughput_{labels[1]}": float(np.mean(xb)),
            "ratio": ratio, "ratio_ci_low": ci.low, "ratio_ci_high": ci.high,
            "verdict": verdict,
        })  # fmt: skip
    columns = ["backend", "queue", "workers", f"throughput_{labels[0]}", f"throughput_{labels[1]}",
               "ratio", "ratio_ci_low", "ratio_ci_high", "verdict"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def _with_queue(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a queue column ("memory" for a frame saved before there was one)."""
    return df if "queue" in df.columns else df.assign(queue="memory")
