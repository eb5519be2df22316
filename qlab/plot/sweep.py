"""Charts of a sweep (one row per backend, queue, workers, repeat): scaling, speedup,
efficiency, latency percentiles and queue wait vs workers, and the ``sweep.plot`` dashboard.

Every function takes ``ax=None`` (a new figure is made when None) and returns the Axes
it drew on. ``sweep.plot`` is a :class:`SweepPlots`. A sweep over several queues draws
one line (and one colour, and one fit) per (backend, queue): its series, named by
:func:`series` (``"sqlite synchronous=full"``, or ``"thread, redis"`` with several
backends).

Example:
    >>> scaling(sweep.df, fits=sweep.fit())  # doctest: +SKIP
    >>> fig = sweep.plot()  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from qlab.plot.contention import contention, with_meta
from qlab.plot.series import ci_bands, series, shade
from qlab.plot.style import (
    PCT_STYLES,
    backend_colors,
    below,
    finish,
    get_ax,
    require,
    worker_axis,
)

__all__ = [
    "SweepPlots",
    "efficiency",
    "latency_percentiles",
    "queue_wait",
    "scaling",
    "series",
    "speedup",
]


def _per_backend(
    ax: Axes,
    df: pd.DataFrame,
    column: str,
    *,
    scale: float = 1.0,
    style: str = "-",
    suffix: str = "",
    band: bool = True,
) -> dict[str, pd.DataFrame]:
    """Draw ``column * scale`` vs workers, one line per backend (mean over repeats, min-max band).

    Returns {backend: frame indexed by workers with mean/min/max (scaled)}.
    """
    require(df, ["backend", "workers", column], "sweep")
    colors = backend_colors(df["backend"])
    stats: dict[str, pd.DataFrame] = {}
    for backend, g in df.groupby(df["backend"].astype(str), sort=True):
        s = g.groupby("workers")[column].agg(["mean", "min", "max"]).sort_index() * scale
        x = s.index.to_numpy(dtype=float)
        color = colors[backend]
        ax.plot(x, s["mean"], style, marker="o", ms=4, color=color, label=f"{backend}{suffix}")
        if band and (s["max"] > s["min"]).any():
            shade(ax, x, s["min"], s["max"], color, alpha=0.18)
        stats[backend] = s
    worker_axis(ax, df["workers"])
    return stats


def scaling(
    df: pd.DataFrame,
    fits: Mapping[str, Any] | pd.DataFrame | None = None,
    ax: Axes | None = None,
    *,
    bands: bool = True,
) -> Axes:
    """Throughput vs workers per backend (and queue), with ideal linear scaling and
    optional USL fits.

    Ideal (dashed) = mean throughput at the lowest worker count x N / N_lowest.
    USL (dotted): X(N) = lam N / (1 + sigma (N-1) + kappa N (N-1)). With ``bands``: the
    shaded band is each point's confidence interval of the mean throughput (from
    ``throughput_ci_low/high``; min to max of the repeats for frames without them), and
    the hatched band the fit's prediction band (where a new run would fall).

    Args:
        df: sweep frame (backend, workers, repeat, throughput[, throughput_ci_*]).
        fits: {backend: fit with lam/sigma/kappa[/peak_workers]} or a DataFrame indexed by
            backend, or by (backend, queue) as ``sweep.fit()`` gives for several queues.
        ax: Axes to draw on; a new figure when None.
        bands: draw the bands (and say what they are in the legend).

    Returns:
        The Axes. Ideal lines have gid "ideal:<backend>", fit curves "usl:<backend>".

    Example:
        >>> scaling(sweep.df, fits=sweep.fit())  # doctest: +SKIP
    """
    from qlab.plot import uncertainty as unc

    ax = get_ax(ax)
    df, fits = series(df, fits)
    colors = backend_colors(df["backend"])
    has_ci = bands and {"throughput_ci_low", "throughput_ci_high"} <= set(df.columns)
    stats = _per_backend(ax, df, "throughput", band=bands and not has_ci)
    ci_text = ci_bands(ax, df, colors) if has_ci else None
    rows = unc.fit_rows(fits) if fits is not None else {}
    pred = False
    for backend, s in stats.items():
        n = s.index.to_numpy(dtype=float)
        ideal = s["mean"].iloc[0] * n / n[0]
        ax.plot(n, ideal, "--", color=colors[backend], lw=1, alpha=0.8, gid=f"ideal:{backend}")
        if backend in rows:
            r = rows[backend]
            ns = {k: unc.caveat(r, k) for k in ("sigma", "kappa")}
            label = (
                rf"{backend} USL: $\sigma$={unc.small(r['sigma'])}{ns['sigma']}, "
                rf"$\kappa$={unc.small(r['kappa'])}{ns['kappa']}, "
                f"peak {unc.peak_text(r['peak_workers'], s.index.max())}"
            )
            if r.get("misfit"):  # say it where the curve is drawn (qlab.uslcheck)
                label += f"\n  the USL does not fit: {r['misfit']}"
            g = df[df["backend"].astype(str) == backend]
            g.name = backend
            pred |= unc.draw_fit(ax, g, r, colors[backend], label, bands)
    ax.plot([], [], "--", color="grey", lw=1, label="ideal linear scaling")
    highs = [s["max"].max() for s in stats.values()]
    ci_high = df["throughput_ci_high"].to_numpy(dtype=float) if has_ci else np.array([])
    if np.isfinite(ci_high).any():  # one repeat per point: no interval
        highs.append(float(np.nanmax(ci_high)))
    ax.set_ylim(bottom=0, top=max(highs) * 1.15 if highs else None)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    handles, _ = ax.get_legend_handles_labels()
    level = float(next(iter(rows.values())).get("confidence", 0.95)) if rows else 0.95
    handles += unc.legend_patches(ci_text, pred, level)
    reps = df["repeat"].nunique() if "repeat" in df.columns else 1
    title = f"mean of {reps} repeats" + ("" if has_ci or reps < 2 else ", band = min to max")
    # below the axes, where it covers no point, curve or band (constrained layout makes room)
    finish(ax, "Throughput vs workers", "throughput (jobs/s)", handles=handles, **below(ax))
    ax.get_legend().set_title(title, prop={"size": "small"})  # type: ignore[union-attr,arg-type]
    return ax


def speedup(df: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Speedup vs workers per backend, with the ideal y = N.

    Args:
        df: sweep frame (backend, workers, repeat, speedup).
        ax: Axes to draw on; a new figure when None.

    Returns:
        The Axes (the ideal line has gid "ideal").

    Example:
        >>> speedup(sweep.df)  # doctest: +SKIP
    """
    ax = get_ax(ax)
    df = series(df)[0]
    _per_backend(ax, df, "speedup")
    n = np.unique(df["workers"].to_numpy(dtype=float))
    ax.plot(n, n, "--", color="black", lw=1, label="ideal (speedup = N)", gid="ideal")
    return finish(ax, "Speedup vs workers", "speedup (vs. lowest worker count)", df, **below(ax))


def efficiency(df: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Parallel efficiency (speedup / N) vs workers per backend, with the ideal y = 1.

    Args:
        df: sweep frame (backend, workers, repeat, efficiency).
        ax: Axes to draw on; a new figure when None.

    Returns:
        The Axes (the ideal line has gid "ideal").

    Example:
        >>> efficiency(sweep.df)  # doctest: +SKIP
    """
    ax = get_ax(ax)
    df = series(df)[0]
    _per_backend(ax, df, "efficiency")
    ax.axhline(1.0, ls="--", color="black", lw=1, label="ideal (efficiency = 1)", gid="ideal")
    ax.set_ylim(0, max(1.1, float(df["efficiency"].max()) * 1.1))
    return finish(ax, "Parallel efficiency vs workers", "efficiency (speedup / N)", df, **below(ax))


def latency_percentiles(df: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Job latency p50 (solid), p95 (dashed), p99 (dotted) vs workers per backend, in ms.

    The y axis is logarithmic when the values span more than two decades.

    Args:
        df: sweep frame (backend, workers, latency_p50_s, latency_p95_s, latency_p99_s).
        ax: Axes to draw on; a new figure when None.

    Returns:
        The Axes (lines labelled "<backend> <pNN>"; legend: colour = backend, style = pNN).

    Example:
        >>> latency_percentiles(sweep.df)  # doctest: +SKIP
    """
    ax = get_ax(ax)
    df = series(df)[0]
    for p, style in PCT_STYLES.items():
        _per_backend(ax, df, f"latency_{p}_s", scale=1e3, style=style, suffix=f" {p}", band=False)
    vals = df[[f"latency_{p}_s" for p in PCT_STYLES]].to_numpy(dtype=float)
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if len(vals) and vals.max() / vals.min() > 100:
        ax.set_yscale("log")
    # legend: colour = backend, line style = percentile (each line keeps "<backend> <pNN>" label)
    handles = [
        Line2D([], [], color=c, marker="o", ms=4, label=b)
        for b, c in backend_colors(df["backend"]).items()
    ]
    handles += [Line2D([], [], color="black", ls=st, label=p) for p, st in PCT_STYLES.items()]
    title = "Job latency percentiles vs workers"
    return finish(ax, title, "latency (ms, mean of repeats)", handles=handles, **below(ax, 2))


def queue_wait(df: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Mean queue wait (submit to first start, ms) vs workers per backend.

    Args:
        df: sweep frame (backend, workers, repeat, queue_wait_mean_s).
        ax: Axes to draw on; a new figure when None.

    Returns:
        The Axes.

    Example:
        >>> queue_wait(sweep.df)  # doctest: +SKIP
    """
    ax = get_ax(ax)
    df = series(df)[0]
    _per_backend(ax, df, "queue_wait_mean_s", scale=1e3)
    ax.set_ylim(bottom=0)
    title = "Mean queue wait vs workers"
    return finish(ax, title, "queue wait: submit → first start (ms)", df, **below(ax))


class SweepPlots:
    """``sweep.plot`` accessor (needs ``.df``, ``.fit()`` and optionally ``.runs``).

    Calling it, ``sweep.plot()``, draws a 2x2 dashboard (throughput with USL fit, efficiency,
    latency percentiles, queue wait) and returns the Figure; ``sweep.plot(ax=ax)`` draws only
    the scaling chart on ``ax`` and returns that Axes.

    Example:
        >>> fig = sweep.plot()  # doctest: +SKIP
        >>> sweep.plot.efficiency()  # doctest: +SKIP
    """

    def __init__(self, sweep: Any) -> None:
        self._sweep = sweep

    def __call__(
        self, *, fit: bool = True, ax: Axes | None = None, figsize: tuple[float, float] = (14, 9)
    ) -> Figure | Axes:
        """Dashboard Figure, or just the scaling chart on ``ax`` when given (returns the Axes)."""
        if ax is not None:
            return self.scaling(fit=fit, ax=ax)
        fig, axs = plt.subplots(2, 2, figsize=figsize, layout="constrained")
        self.scaling(fit=fit, ax=axs[0, 0])
        self.efficiency(ax=axs[0, 1])
        self.latency(ax=axs[1, 0])
        self.queue_wait(ax=axs[1, 1])
        return fig

    def _fits(self) -> pd.DataFrame | None:
        try:
            return self._sweep.fit()
        except (ValueError, RuntimeError, ArithmeticError) as exc:  # keep the measured chart
            warnings.warn(f"USL fit failed, plotting without it: {exc}", stacklevel=3)
            return None

    def scaling(self, *, fit: bool = True, ax: Axes | None = None, bands: bool = True) -> Axes:
        """See :func:`scaling`; with ``fit`` the curve comes from ``sweep.fit()``."""
        fits = self._fits() if fit else None
        return scaling(self._sweep.df, fits=fits, ax=ax, bands=bands)

    def speedup(self, ax: Axes | None = None) -> Axes:
        """See :func:`speedup`."""
        return speedup(self._sweep.df, ax=ax)

    def efficiency(self, ax: Axes | None = None) -> Axes:
        """See :func:`efficiency`."""
        return efficiency(self._sweep.df, ax=ax)

    def latency(self, ax: Axes | None = None) -> Axes:
        """See :func:`latency_percentiles`."""
        return latency_percentiles(self._sweep.df, ax=ax)

    def queue_wait(self, ax: Axes | None = None) -> Axes:
        """See :func:`queue_wait`."""
        return queue_wait(self._sweep.df, ax=ax)

    def contention(self, **kw: Any) -> Axes:
        """See :func:`contention`, over the attempts of every kept run of the sweep."""
        runs = list(getattr(self._sweep, "runs", None) or [])
        if not runs:
            raise ValueError("no runs kept: run the sweep with keep_runs=True to plot contention")
        return contention(pd.concat([with_meta(r) for r in runs], ignore_index=True), **kw)
