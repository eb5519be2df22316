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

__all__ = ["OUTCOME_COLORS", "below", "readable_axes"]

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


def below(ax: Axes, ncols: int | None = None) -> dict[str, Any]:
    """Legend keywords that put it under the axes, where it covers no data (constrained
    layout makes room); two columns when the axes are wide enough."""
    width = ax.figure.get_figwidth()  # type: ignore[union-attr]  # (qlab's axes are a Figure's)
    wide = width * ax.get_position().width >= 6.0  # inches
    return {"loc": "upper center", "bbox_to_anchor": (0.5, -0.13),
            "ncols": ncols or (2 if wide else 1)}  # fmt: skip


def readable_axes(ax: Axes) -> Axes:
    """Tick labels written for people (:func:`qlab.fmt.number`: 400, 1,000, 0.05) on
    both axes, linear or log, instead of 4×10² or 1e+03; minor ticks of a log axis keep
    their marks and lose their labels.

    Example:
        >>> import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots()
        >>> _ = ax.plot([1, 10, 1000], [400, 450, 5000]); _ = ax.set(xscale="log", yscale="log")
        >>> _ = readable_axes(ax); fig.canvas.draw()
        >>> labels = [t.get_text() for t in ax.get_xticklabels()]
        >>> "1,000" in labels and not any("$" in t or "e+" in t for t in labels)
        True
        >>> plt.close(fig)
    """
    from matplotlib.ticker import FuncFormatter, NullFormatter

    from qlab.core import fmt

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda v, _: fmt.number(v)))
        if axis.get_scale() == "log":
            lo, hi = sorted(axis.get_view_interval())
            decades = math.log10(hi / lo) if lo > 0 else math.inf
            axis.set_minor_formatter(
                FuncFormatter(lambda v, _: fmt.number(v)) if decades < 1 else NullFormatter()
            )
    return ax
