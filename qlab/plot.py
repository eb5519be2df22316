"""Charts for qlab runs (attempts/jobs frames) and sweeps (one row per backend, workers, repeat).

Every function takes ``ax=None`` (a new figure is made when None) and returns the Axes it drew on,
so charts compose into your own figures. Inputs are duck-typed DataFrames (see the column contract
in the package docs); nothing here imports the rest of qlab.

Example:
    >>> ax = timeline(run.attempts)  # doctest: +SKIP
    >>> ax.figure.savefig("timeline.png")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from qlab.usl import usl

#: Colour of each attempt outcome / job status (job statuses reuse ok, failed, cancelled).
OUTCOME_COLORS: dict[str, str] = {
    "ok": "#2ca02c",
    "retry": "#ff7f0e",
    "failed": "#d62728",
    "timeout": "#9467bd",
    "crashed": "#222222",
    "cancelled": "#9e9e9e",
}
_OTHER_COLOR = "#17becf"
_PCT_STYLES = {"p50": "-", "p95": "--", "p99": ":"}


def _get_ax(ax: Axes | None, figsize: tuple[float, float] = (8.0, 4.5)) -> Axes:
    """Return ``ax``, or the Axes of a new constrained-layout figure."""
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _require(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} DataFrame lacks column(s) {missing}; has {list(df.columns)}")


def _backend_colors(backends: Iterable[Any]) -> dict[str, Any]:
    """Stable colour per backend name (sorted order into the tab10 palette)."""
    palette = plt.get_cmap("tab10").colors
    return {b: palette[i % len(palette)] for i, b in enumerate(sorted(set(map(str, backends))))}


def _worker_axis(ax: Axes, workers: Iterable[float]) -> None:
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
    _require(df, ["backend", "workers", column], "sweep")
    colors = _backend_colors(df["backend"])
    stats: dict[str, pd.DataFrame] = {}
    for backend, g in df.groupby(df["backend"].astype(str), sort=True):
        s = g.groupby("workers")[column].agg(["mean", "min", "max"]).sort_index() * scale
        x = s.index.to_numpy(dtype=float)
        color = colors[backend]
        ax.plot(x, s["mean"], style, marker="o", ms=4, color=color, label=f"{backend}{suffix}")
        if band and (s["max"] > s["min"]).any():
            ax.fill_between(x, s["min"], s["max"], color=color, alpha=0.18, linewidth=0)
        stats[backend] = s
    _worker_axis(ax, df["workers"])
    return stats


def _finish(ax: Axes, title: str, ylabel: str, df: pd.DataFrame | None = None, **legend) -> Axes:
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


def timeline(attempts: pd.DataFrame, ax: Axes | None = None, *, max_workers: int = 64) -> Axes:
    """Gantt chart: one lane per worker, each attempt a bar coloured by outcome.

    A thin dashed line after an attempt shows the backoff before that job's next attempt.
    Drawn with one PolyCollection per outcome, so 200,000 attempts render in seconds.

    Args:
        attempts: attempts frame (job_id, worker, start_s, end_s, outcome, backoff_s, ...).
        ax: Axes to draw on; a new figure when None.
        max_workers: only workers 0..max_workers-1 get a lane (the title says so).

    Returns:
        The Axes.

    Example:
        >>> timeline(run.attempts, max_workers=16)  # doctest: +SKIP
    """
    _require(attempts, ["worker", "start_s", "end_s", "outcome"], "attempts")
    n_workers = int(attempts["worker"].max()) + 1 if len(attempts) else 0
    shown = min(n_workers, max_workers)
    ax = _get_ax(ax, (10.0, min(2.0 + 0.3 * max(shown, 1), 12.0)))
    a = attempts[attempts["worker"] < max_workers]
    lane = a["worker"].to_numpy(dtype=float)
    x0, x1 = a["start_s"].to_numpy(dtype=float), a["end_s"].to_numpy(dtype=float)
    outcome = a["outcome"].astype(str).to_numpy()
    handles = []
    for name in list(OUTCOME_COLORS) + sorted(set(outcome) - set(OUTCOME_COLORS)):
        m = outcome == name
        if not m.any():
            continue
        y0, y1 = lane[m] - 0.4, lane[m] + 0.4
        verts = np.stack([[x0[m], y0], [x1[m], y0], [x1[m], y1], [x0[m], y1]]).transpose(2, 0, 1)
        color = OUTCOME_COLORS.get(name, _OTHER_COLOR)
        ax.add_collection(PolyCollection(verts, facecolors=color, edgecolors="none", label=name))
        handles.append(Patch(color=color, label=f"{name} ({m.sum():,})"))
    backoff = a["backoff_s"].to_numpy(dtype=float) if "backoff_s" in a else np.full(len(a), np.nan)
    b = np.isfinite(backoff) & (backoff > 0)
    if b.any():
        segs = np.stack([[x1[b], lane[b]], [x1[b] + backoff[b], lane[b]]]).transpose(2, 0, 1)
        lines = LineCollection(segs, colors="#555555", linestyles="--", linewidths=0.8)
        ax.add_collection(lines)
        handles.append(Line2D([], [], color="#555555", ls="--", lw=0.8, label="backoff"))
    x_end = np.nanmax(np.concatenate([x1, x1[b] + backoff[b]])) if len(a) else 1.0
    ax.set_xlim(0, x_end * 1.01 or 1.0)
    ax.set_ylim(max(shown, 1) - 0.5, -0.5)  # worker 0 on top
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=min(max(shown, 1), 20)))
    ax.set_xlabel("time since run start (s)")
    ax.set_ylabel("worker")
    more = f", lanes for workers 0-{shown - 1} of {n_workers}" if shown < n_workers else ""
    ax.set_title(f"Attempts per worker over time ({len(attempts):,} attempts{more})")
    ax.legend(
        handles=handles,
        title="attempt outcome",
        fontsize="small",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )
    return ax


def latency(jobs: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Histogram of job latency (submit to done, in ms) stacked by status, with p50/p95/p99 lines.

    Bins are log-spaced (log x) when latencies span more than two decades.

    Args:
        jobs: jobs frame (latency_s, status).
        ax: Axes to draw on; a new figure when None.

    Returns:
        The Axes.

    Example:
        >>> latency(run.jobs)  # doctest: +SKIP
    """
    _require(jobs, ["latency_s"], "jobs")
    ax = _get_ax(ax)
    j = jobs[np.isfinite(jobs["latency_s"].to_numpy(dtype=float))]
    ms = j["latency_s"].to_numpy(dtype=float) * 1e3
    status = j["status"].astype(str) if "status" in j else pd.Series("job", index=j.index)
    if len(ms):
        lo, hi = ms.min(), ms.max()
        log = lo > 0 and hi / lo > 100
        bins = np.geomspace(lo, hi, 50) if log else np.linspace(lo, hi if hi > lo else lo + 1, 50)
        names = [s for s in ["ok", "failed", "cancelled"] if (status == s).any()]
        names += sorted(set(status) - set(names))
        groups = [ms[(status == s).to_numpy()] for s in names]
        colors = [OUTCOME_COLORS.get(s, _OTHER_COLOR) for s in names]
        ax.hist(groups, bins=bins, stacked=True, color=colors, alpha=0.75, label=names)
        if log:
            ax.set_xscale("log")
        for (p, ls), color in zip(
            _PCT_STYLES.items(), ("black", "#1f77b4", "#d62728"), strict=True
        ):
            v = float(np.percentile(ms, int(p[1:])))
            ax.axvline(v, color=color, ls=ls, lw=1.5, label=f"{p} = {v:,.3g} ms")
    ax.set_xlabel("latency: submit → done (ms)")
    return _finish(ax, f"Job latency ({len(ms):,} jobs)", "jobs")


def queue_depth(jobs: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Step lines over time: jobs queued (submitted, not started) and jobs in progress.

    A job never started stays queued until its end_s (or the run's end). "In progress" spans the
    first start to the end, so it includes backoff waits between attempts.

    Args:
        jobs: jobs frame (submitted_s, first_start_s, end_s).
        ax: Axes to draw on; a new figure when None.

    Returns:
        The Axes.

    Example:
        >>> queue_depth(run.jobs)  # doctest: +SKIP
    """
    _require(jobs, ["submitted_s", "first_start_s", "end_s"], "jobs")
    ax = _get_ax(ax)
    cols = ("submitted_s", "first_start_s", "end_s")
    sub, start, end = (jobs[c].to_numpy(dtype=float) for c in cols)
    run_end = np.nanmax(np.concatenate([sub, start, end, [0.0]]))
    end = np.where(np.isfinite(end), end, run_end)
    started = np.isfinite(start)
    leave_queue = np.where(started, start, end)
    for label, t_in, t_out, color in [
        ("queued (submitted, not started)", sub, leave_queue, "#1f77b4"),
        ("in progress (started, not finished)", start[started], end[started], "#ff7f0e"),
    ]:
        t = np.concatenate([[0.0], t_in, t_out])
        d = np.concatenate([[0], np.ones(len(t_in)), -np.ones(len(t_out))])
        steps = pd.Series(d).groupby(t).sum().cumsum()
        ax.step(steps.index, steps.to_numpy(), where="post", color=color, label=label)
    ax.set_xlabel("time since run start (s)")
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return _finish(ax, f"Queue depth over time ({len(jobs):,} jobs)", "jobs")


def _fit_params(fits: Mapping[str, Any] | pd.DataFrame) -> dict[str, tuple[float, ...]]:
    """{backend: (lam, sigma, kappa, peak_workers)} from a dict of fit objects or a DataFrame."""
    rows = fits.to_dict("index") if isinstance(fits, pd.DataFrame) else fits
    out = {}
    for backend, f in rows.items():
        get = f.get if isinstance(f, Mapping) else lambda k, d=None, f=f: getattr(f, k, d)
        lam, sigma, kappa = (float(get(k)) for k in ("lam", "sigma", "kappa"))
        if not all(map(math.isfinite, (lam, sigma, kappa))):
            continue
        peak = float(get("peak_workers", math.nan))
        if math.isnan(peak):
            peak = math.sqrt((1 - sigma) / kappa) if kappa > 0 else math.inf
        out[str(backend)] = (lam, sigma, kappa, peak)
    return out


def scaling(
    df: pd.DataFrame, fits: Mapping[str, Any] | pd.DataFrame | None = None, ax: Axes | None = None
) -> Axes:
    """Throughput vs workers per backend, with ideal linear scaling and optional USL fits.

    Ideal (dashed) = mean throughput at the lowest worker count x N / N_lowest.
    USL (dotted): X(N) = lam N / (1 + sigma (N-1) + kappa N (N-1)).

    Args:
        df: sweep frame (backend, workers, repeat, throughput).
        fits: {backend: fit with lam/sigma/kappa[/peak_workers]} or a DataFrame indexed by backend.
        ax: Axes to draw on; a new figure when None.

    Returns:
        The Axes. Ideal lines have gid "ideal:<backend>", fit curves "usl:<backend>".

    Example:
        >>> scaling(sweep.df, fits=sweep.fit())  # doctest: +SKIP
    """
    ax = _get_ax(ax)
    stats = _per_backend(ax, df, "throughput")
    colors = _backend_colors(df["backend"])
    params = _fit_params(fits) if fits is not None else {}
    for backend, s in stats.items():
        n = s.index.to_numpy(dtype=float)
        ideal = s["mean"].iloc[0] * n / n[0]
        ax.plot(n, ideal, "--", color=colors[backend], lw=1, alpha=0.8, gid=f"ideal:{backend}")
        if backend in params:
            lam, sigma, kappa, peak = params[backend]
            grid = np.linspace(n.min(), n.max(), 200)
            curve = usl(grid, lam, sigma, kappa)
            peak_s = "∞" if math.isinf(peak) else f"{peak:.3g}"
            label = rf"{backend} USL: $\sigma$={sigma:.3g}, $\kappa$={kappa:.2g}, peak N≈{peak_s}"
            ax.plot(
                grid, curve, ":", color=colors[backend], lw=2, label=label, gid="usl:" + backend
            )
    ax.plot([], [], "--", color="grey", lw=1, label="ideal linear scaling")
    ax.set_ylim(bottom=0, top=max(s["max"].max() for s in stats.values()) * 1.5 if stats else None)
    return _finish(ax, "Throughput vs workers", "throughput (jobs/s)", df)


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
    ax = _get_ax(ax)
    _per_backend(ax, df, "speedup")
    n = np.unique(df["workers"].to_numpy(dtype=float))
    ax.plot(n, n, "--", color="black", lw=1, label="ideal (speedup = N)", gid="ideal")
    return _finish(ax, "Speedup vs workers", "speedup (vs. lowest worker count)", df)


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
    ax = _get_ax(ax)
    _per_backend(ax, df, "efficiency")
    ax.axhline(1.0, ls="--", color="black", lw=1, label="ideal (efficiency = 1)", gid="ideal")
    ax.set_ylim(0, max(1.1, float(df["efficiency"].max()) * 1.1))
    return _finish(ax, "Parallel efficiency vs workers", "efficiency (speedup / N)", df)


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
    ax = _get_ax(ax)
    for p, style in _PCT_STYLES.items():
        _per_backend(ax, df, f"latency_{p}_s", scale=1e3, style=style, suffix=f" {p}", band=False)
    vals = df[[f"latency_{p}_s" for p in _PCT_STYLES]].to_numpy(dtype=float)
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if len(vals) and vals.max() / vals.min() > 100:
        ax.set_yscale("log")
    # legend: colour = backend, line style = percentile (each line keeps "<backend> <pNN>" label)
    handles = [
        Line2D([], [], color=c, marker="o", ms=4, label=b)
        for b, c in _backend_colors(df["backend"]).items()
    ]
    handles += [Line2D([], [], color="black", ls=st, label=p) for p, st in _PCT_STYLES.items()]
    title = "Job latency percentiles vs workers"
    return _finish(ax, title, "latency (ms, mean of repeats)", handles=handles, ncols=2)


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
    ax = _get_ax(ax)
    _per_backend(ax, df, "queue_wait_mean_s", scale=1e3)
    ax.set_ylim(bottom=0)
    return _finish(ax, "Mean queue wait vs workers", "queue wait: submit → first start (ms)", df)


def _contention_groups(attempts: pd.DataFrame) -> list[str]:
    keys = ["workers"]
    if "backend" in attempts.columns and attempts["backend"].nunique() > 1:
        keys.insert(0, "backend")
    return keys


def contention_summary(attempts: pd.DataFrame) -> pd.DataFrame:
    """Per worker count (and backend, if several): attempts, mean wall/cpu, wait fraction.

    wait_fraction = 1 - mean cpu / mean wall: the share of attempt time not spent on the CPU
    (waiting for the GIL, a lock or I/O). Negative when an attempt used several cores.

    Args:
        attempts: attempts frame with extra column ``workers`` (and optionally ``backend``).

    Returns:
        DataFrame indexed by workers (or backend, workers): attempts, wall_mean_s, cpu_mean_s,
        wait_fraction.

    Example:
        >>> contention_summary(sweep_attempts)  # doctest: +SKIP
    """
    _require(attempts, ["workers", "duration_s", "cpu_s"], "attempts")
    g = attempts.groupby(_contention_groups(attempts), sort=True)
    out = g.agg(
        attempts=("cpu_s", "size"), wall_mean_s=("duration_s", "mean"), cpu_mean_s=("cpu_s", "mean")
    )
    out["wait_fraction"] = 1 - out["cpu_mean_s"] / out["wall_mean_s"]
    return out


def contention(attempts: pd.DataFrame, ax: Axes | None = None, *, max_points: int = 5000) -> Axes:
    """CPU time vs wall time per attempt, coloured by worker count, with the y = x line.

    Points below the line spent time waiting (GIL, lock, I/O); each legend entry gives the
    wait fraction from :func:`contention_summary` over all attempts (the scatter is sampled).

    Args:
        attempts: attempts frame with extra column ``workers`` (and optionally ``backend``).
        ax: Axes to draw on; a new figure when None.
        max_points: scatter at most this many randomly chosen attempts.

    Returns:
        The Axes.

    Example:
        >>> contention(run.attempts.assign(workers=8))  # doctest: +SKIP
    """
    summary = contention_summary(attempts)
    ax = _get_ax(ax, (7.0, 6.0))
    sample = attempts.sample(min(max_points, len(attempts)), random_state=0)
    keys = _contention_groups(attempts)
    counts = np.unique(attempts["workers"].to_numpy(dtype=float))
    cmap = plt.get_cmap("viridis")
    backends = sorted(map(str, attempts["backend"].unique())) if "backend" in keys else []
    markers = dict(zip(backends, "osD^v*", strict=False))
    for key, g in sample.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row, w = summary.loc[key if len(key) > 1 else key[0]], key[-1]
        color = cmap(np.searchsorted(counts, w) / max(len(counts) - 1, 1) * 0.9)
        name = f"{key[0]}, {w:g} workers" if len(key) > 1 else f"{w:g} workers"
        label = f"{name}: wait {row['wait_fraction']:.0%}"
        marker = markers.get(str(key[0]), "o") if len(key) > 1 else "o"
        ax.scatter(
            g["duration_s"] * 1e3,
            g["cpu_s"] * 1e3,
            s=8,
            alpha=0.5,
            color=color,
            marker=marker,
            label=label,
            linewidths=0,
        )
    top = float(np.nanmax(sample[["duration_s", "cpu_s"]].to_numpy(dtype=float), initial=0)) * 1e3
    ax.plot([0, top], [0, top], "--", c="black", lw=1, label="cpu = wall (no waiting)", gid="ideal")
    lim = (0, top * 1.05 or 1)
    ax.set(xlim=lim, ylim=lim, xlabel="wall time per attempt (ms)")
    n = f" ({len(sample):,} of {len(attempts):,} sampled)" if len(sample) < len(attempts) else ""
    return _finish(ax, f"CPU vs wall time per attempt{n}", "CPU time per attempt (ms)")


class RunPlots:
    """``run.plot`` accessor: charts of one run (needs ``.attempts``, ``.jobs``, ``.meta``).

    Example:
        >>> run.plot.timeline(max_workers=8)  # doctest: +SKIP
    """

    def __init__(self, run: Any) -> None:
        self._run = run

    def timeline(self, **kw: Any) -> Axes:
        """See :func:`timeline`."""
        return timeline(self._run.attempts, **kw)

    def latency(self, **kw: Any) -> Axes:
        """See :func:`latency`."""
        return latency(self._run.jobs, **kw)

    def queue_depth(self, **kw: Any) -> Axes:
        """See :func:`queue_depth`."""
        return queue_depth(self._run.jobs, **kw)

    def contention(self, **kw: Any) -> Axes:
        """See :func:`contention`; workers comes from ``run.meta["workers"]``."""
        return contention(_with_meta(self._run), **kw)


def _with_meta(run: Any) -> pd.DataFrame:
    """The run's attempts plus ``workers`` (and ``backend``, if known) columns from its meta."""
    a, meta = run.attempts, getattr(run, "meta", {}) or {}
    workers = meta.get("workers", int(a["worker"].max()) + 1 if len(a) else 0)
    return a.assign(workers=workers, **({"backend": meta["backend"]} if "backend" in meta else {}))


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

    def scaling(self, *, fit: bool = True, ax: Axes | None = None) -> Axes:
        """See :func:`scaling`; with ``fit`` the curve comes from ``sweep.fit()``."""
        return scaling(self._sweep.df, fits=self._fits() if fit else None, ax=ax)

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
        return contention(pd.concat([_with_meta(r) for r in runs], ignore_index=True), **kw)
