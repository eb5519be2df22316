"""The lines of a sweep chart: one per (backend, queue), named for a legend, and the
shaded bands around them (a min-max range of the repeats, or a point's interval), drawn
by one helper.

Example:
    >>> df = pd.DataFrame({"backend": ["thread"] * 2, "queue": ["memory", "sqlite:///q.db"]})
    >>> series(df)[0]["backend"].tolist()
    ['memory', 'sqlite']
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

__all__ = ["ci_bands", "series", "shade"]


def series(df: pd.DataFrame, fits: pd.DataFrame | None = None) -> tuple[pd.DataFrame, Any]:
    """``df`` (and ``fits``) with one name per line in the ``backend`` column: the backend
    alone for a sweep on one queue, else the queue's short label
    (:func:`qlab.lab.sweep_queues.labels`), after the backend when there are several; fits
    indexed by (backend, queue) are renamed to match.

    Example:
        >>> df = pd.DataFrame({"backend": ["thread"] * 2, "queue": ["memory", "redis://h/0"]})
        >>> series(df)[0]["backend"].tolist()
        ['memory', 'redis']
    """
    from qlab.lab.sweep_queues import labels

    if "queue" not in df.columns or df["queue"].nunique() < 2:
        return df, fits
    short = labels(df["queue"].astype(str))
    several = df["backend"].nunique() > 1

    def name(backend: Any, queue: Any) -> str:
        return f"{backend}, {short[str(queue)]}" if several else short[str(queue)]

    out = df.assign(backend=[name(b, q) for b, q in zip(df["backend"], df["queue"], strict=True)])
    if isinstance(fits, pd.DataFrame) and fits.index.nlevels == 2:
        fits = fits.set_axis([name(b, q) for b, q in fits.index], axis=0)
    return out, fits


def shade(ax: Axes, x: Any, low: Any, high: Any, color: Any, alpha: float) -> None:
    """One shaded band between ``low`` and ``high`` (a min-max range, or an interval)."""
    ax.fill_between(np.asarray(x, dtype=float), low, high, color=color, alpha=alpha, linewidth=0)


def ci_bands(ax: Axes, df: pd.DataFrame, colors: dict[str, Any]) -> str | None:
    """Shade each line's throughput interval (``throughput_ci_low/high``) between its
    points; returns the legend text of the band, or None when the frame has none."""
    cols = ["throughput_ci_low", "throughput_ci_high"]
    if not set(cols) <= set(df.columns) or not df[cols].notna().any().any():
        return None
    for backend, g in df.groupby(df["backend"].astype(str), sort=True):
        s = g.groupby("workers")[cols].first().sort_index()
        shade(ax, s.index, s[cols[0]], s[cols[1]], colors[backend], alpha=0.25)
    return "band: confidence interval of the mean"
