"""What the charts share: outcome colours, backend colours, axes set-up and finishing.

Example:
    >>> from qlab.plot.style import OUTCOME_COLORS
    >>> OUTCOME_COLORS["ok"]
    '#2ca02c'
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

__all__ = ["OUTCOME_COLORS"]

#: Colour of each attempt outcome / job status (job statuses reuse ok, failed, cancelled).
OUTCOME_COLORS: dict[str, str] = {
    "ok": "#2ca02c",
    "retry": "#ff7f0e",
    "failed": "#d62728",
    "timeout": "#9467bd",
    "crashed": "#222222",
    "cancelled": "#9e9e9e",
}
OTHER_COLOR = "#17becf"
PCT_STYLES = {"p50": "-", "p95": "--", "p99": ":"}


def get_ax(ax: Axes | None, figsize: tuple[float, float] = (8.0, 4.5)) -> Axes:
    """Return ``ax``, or the Axes of a new constrained-layout figure."""
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def require(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} DataFrame lacks column(s) {missing}; has {list(df.columns)}")


def backend_colors(backends: Iterable[Any]) -> dict[str, Any]:
    """Stable colour per backend name (sorted order into the tab10 palette)."""
    palette = plt.get_cmap("tab10").colors  # type: ignore[attr-defined]  # a ListedColormap
    return {b: palette[i % len(palette)] for i, b in enumerate(sorted(set(map(str, backends))))}


def worker_axis(ax: Axes, workers: Iterable[float]) -> None:
    """Ticks at the measured worker counts; labels thinned where they would collide (1, 2, 4...)."""
    ws = np.unique(np.asarray(list(workers), dtype=float))
    if not 0 < len(ws) <= 16:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        labels, last = [], -math.inf
        for w in ws:
            keep = w - last >= (ws[-1] - ws[0]) / 25
            labels.append(f"{w:g}" if keep else "")
            last = w if keep else last
        ax.set_xticks(ws, labels)
    ax.set_xlabel("workers")


def finish(ax: Axes, title: str, ylabel: str, df: pd.DataFrame | None = None, **legend) -> Axes:
    """Title, y label, grid and legend (titled with the repeat count for sweep frames)."""
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if df is not None and "repeat" in df.columns and df["repeat"].nunique() > 1:
        legend.setdefault("title", f"mean of {df['repeat'].nunique()} repeats, band = min to max")
        legend.setdefault("title_fontsize", "small")
    if legend.get("handles") or ax.get_legend_handles_labels()[0]:  # nothing drawn: no legend
        ax.legend(fontsize="small", **legend)
    return ax
