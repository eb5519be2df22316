"""CPU time vs wall time per attempt: how much of an attempt was spent waiting.

Example:
    >>> contention_summary(run.attempts.assign(workers=4))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from qlab.plot.style import finish, get_ax, require

__all__ = ["contention", "contention_summary"]


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
    require(attempts, ["workers", "duration_s", "cpu_s"], "attempts")
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
    ax = get_ax(ax, (7.0, 6.0))
    sample = attempts.sample(min(max_points, len(attempts)), random_state=0)
    keys = _contention_groups(attempts)
    counts = np.unique(attempts["workers"].to_numpy(dtype=float))
    # up to 10 worker counts: distinct colours (eight viridis shades were hard to tell apart)
    palette = plt.get_cmap("tab10").colors if len(counts) <= 10 else None  # type: ignore[attr-defined]
    cmap = plt.get_cmap("viridis")
    backends = sorted(map(str, attempts["backend"].unique())) if "backend" in keys else []
    markers = dict(zip(backends, "osD^v*", strict=False))
    for key, g in sample.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row, w = summary.loc[key if len(key) > 1 else key[0]], key[-1]
        i = int(np.searchsorted(counts, w))
        color = palette[i] if palette else cmap(i / max(len(counts) - 1, 1) * 0.9)
        workers = f"{w:g} worker" + ("" if w == 1 else "s")
        name = f"{key[0]}, {workers}" if len(key) > 1 else workers
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
    return finish(ax, f"CPU vs wall time per attempt{n}", "CPU time per attempt (ms)")


def with_meta(run: Any) -> pd.DataFrame:
    """The run's attempts plus ``workers`` (and ``backend``, if known) columns from its meta."""
    a, meta = run.attempts, getattr(run, "meta", {}) or {}
    workers = meta.get("workers", int(a["worker"].max()) + 1 if len(a) else 0)
    return a.assign(workers=workers, **({"backend": meta["backend"]} if "backend" in meta else {}))
