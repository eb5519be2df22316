"""Charts of one run: the attempts' timeline, the jobs' latency and the queue depth.

Every function takes ``ax=None`` (a new figure is made when None) and returns the Axes
it drew on. ``run.plot`` is a :class:`RunPlots`.

Example:
    >>> ax = timeline(run.attempts)  # doctest: +SKIP
    >>> ax.figure.savefig("timeline.png")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from qlab.core import fmt
from qlab.plot.contention import contention, with_meta
from qlab.plot.style import (
    OTHER_COLOR,
    OUTCOME_COLORS,
    PCT_STYLES,
    finish,
    get_ax,
    require,
)

__all__ = ["RunPlots", "latency", "queue_depth", "timeline"]

_BACKOFF_OFFSET = 0.46  # bars span lane ± 0.4: a backoff line runs just below its bar


def timeline(
    attempts: pd.DataFrame,
    ax: Axes | None = None,
    *,
    max_workers: int = 64,
    legend: bool = True,
) -> Axes:
    """Gantt chart: one lane per worker, each attempt a bar coloured by outcome.

    When the attempts ran on more than one host (a ``host`` column, as Dask runs on
    several machines have), lanes are grouped by host: a line between hosts, and the
    host's name on its group.

    A thin dashed line after an attempt shows the backoff before that job's next attempt.
    It runs along the lower edge of the lane, between the bars, so that it never crosses
    a bar or a label written on one. Drawn with one PolyCollection per outcome, so
    200,000 attempts render in seconds. The x tick labels are shown even on an Axes that
    shares its x axis with a panel below (stacked timelines each keep their numbers).

    Args:
        attempts: attempts frame (job_id, worker, start_s, end_s, outcome, backoff_s, ...).
        ax: Axes to draw on; a new figure when None.
        max_workers: only workers 0..max_workers-1 get a lane (the title says so).
        legend: draw the outcome legend (stacked panels show it once, on the first).

    Returns:
        The Axes.

    Example:
        >>> timeline(run.attempts, max_workers=16)  # doctest: +SKIP
    """
    require(attempts, ["worker", "start_s", "end_s", "outcome"], "attempts")
    n_workers = int(attempts["worker"].max()) + 1 if len(attempts) else 0
    a = attempts[attempts["worker"] < max_workers]
    lane, groups = _lanes(a)
    shown = groups[0][-1] + 1 if groups else min(n_workers, max_workers)
    ax = get_ax(ax, (10.0, min(2.0 + 0.3 * max(shown, 1), 12.0)))
    x0, x1 = a["start_s"].to_numpy(dtype=float), a["end_s"].to_numpy(dtype=float)
    outcome = a["outcome"].astype(str).to_numpy()
    handles: list[Any] = []
    for name in list(OUTCOME_COLORS) + sorted(set(outcome) - set(OUTCOME_COLORS)):
        m = outcome == name
        if not m.any():
            continue
        y0, y1 = lane[m] - 0.4, lane[m] + 0.4
        verts = np.stack([[x0[m], y0], [x1[m], y0], [x1[m], y1], [x0[m], y1]]).transpose(2, 0, 1)
        color = OUTCOME_COLORS.get(name, OTHER_COLOR)
        ax.add_collection(PolyCollection(verts, facecolors=color, edgecolors="none", label=name))  # type: ignore[arg-type]
        handles.append(Patch(color=color, label=f"{name} ({m.sum():,})"))
    backoff = a["backoff_s"].to_numpy(dtype=float) if "backoff_s" in a else np.full(len(a), np.nan)
    b = np.isfinite(backoff) & (backoff > 0)
    if b.any():
        y = lane[b] + _BACKOFF_OFFSET  # below the bar (lanes grow downwards)
        segs = np.stack([[x1[b], y], [x1[b] + backoff[b], y]]).transpose(2, 0, 1)
        lines = LineCollection(segs, colors="#555555", linestyles="--", linewidths=0.8)  # type: ignore[arg-type]
        ax.add_collection(lines)
        handles.append(Line2D([], [], color="#555555", ls="--", lw=0.8, label="backoff"))
    x_end = np.nanmax(np.concatenate([x1, x1[b] + backoff[b]])) if len(a) else 1.0
    ax.set_xlim(0, x_end * 1.01 or 1.0)
    ax.set_ylim(max(shown, 1) - 0.5, -0.5)  # worker 0 on top
    ax.xaxis.set_tick_params(labelbottom=True)
    ax.set_xlabel("time since run start (s)")
    if groups:
        _label_hosts(ax, *groups)
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=int(min(max(shown, 1), 20))))
        ax.set_ylabel("worker")
    more = (
        f", lanes for workers 0-{max_workers - 1} of {n_workers}" if max_workers < n_workers else ""
    )
    hosts = f" on {len(set(groups[2]))} hosts" if groups else ""
    ax.set_title(f"Attempts per worker over time{hosts} ({len(attempts):,} attempts{more})")
    if legend:
        ax.legend(
            handles=handles,
            title="attempt outcome",
            fontsize="small",
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
        )
    return ax


_HEADER = 0.8  # the band above each host's lanes that holds its name, in lanes


def _lanes(a: pd.DataFrame) -> tuple[np.ndarray, tuple[list[float], list[int], list[str]] | None]:
    """Each attempt's lane position: its worker; or, when the attempts ran on more
    than one host, its (host, worker) pair in host order, each host's lanes below a
    header band (a worker that moved host has a lane on each). Grouped, also returns
    each lane's position, worker and host."""
    if "host" not in a.columns or a["host"].nunique() < 2:
        return a["worker"].to_numpy(dtype=float), None
    key = pd.DataFrame({"host": a["host"].astype(str).to_numpy(), "worker": a["worker"].to_numpy()})
    pairs = pd.MultiIndex.from_frame(key.drop_duplicates().sort_values(["host", "worker"]))
    workers, hosts = (pairs.get_level_values(k).tolist() for k in ("worker", "host"))
    group = np.cumsum([i > 0 and hosts[i] != hosts[i - 1] for i in range(len(hosts))])
    ys = np.arange(len(hosts)) + _HEADER * (group + 1)
    return ys[pairs.get_indexer(pd.MultiIndex.from_frame(key))], (ys.tolist(), workers, hosts)


def _label_hosts(ax: Axes, ys: list[float], workers: list[int], hosts: list[str]) -> None:
    """Worker numbers on the lanes; above each host's lanes a band with its name, and
    a line between hosts."""
    step = max(1, -(-len(workers) // 24))  # at most about 24 lane labels
    ticks = list(range(0, len(workers), step))
    ax.set_yticks([ys[i] for i in ticks], [str(workers[i]) for i in ticks])
    ax.set_ylabel("worker, grouped by host")
    for i in range(len(hosts)):
        if i and hosts[i] == hosts[i - 1]:
            continue
        top = ys[i] - 0.5 - _HEADER
        if i:
            ax.axhline(top, color="#333333", lw=1.0)
        ax.annotate(
            hosts[i], (0.0, top + _HEADER / 2), xycoords=("axes fraction", "data"),
            xytext=(4, 0), textcoords="offset points", ha="left", va="center",
            fontsize="small", fontweight="bold",
        )  # fmt: skip


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
    require(jobs, ["latency_s"], "jobs")
    ax = get_ax(ax)
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
        colors = [OUTCOME_COLORS.get(s, OTHER_COLOR) for s in names]
        ax.hist(groups, bins=bins, stacked=True, color=colors, alpha=0.75, label=names)  # type: ignore[arg-type]
        if log:
            ax.set_xscale("log")
        for (p, ls), color in zip(PCT_STYLES.items(), ("black", "#1f77b4", "#d62728"), strict=True):
            v = float(np.percentile(ms, int(p[1:])))
            ax.axvline(v, color=color, ls=ls, lw=1.5, label=f"{p} = {fmt.duration(v / 1e3)}")
    ax.set_xlabel("latency: submit → done (ms)")
    return finish(ax, f"Job latency ({len(ms):,} jobs)", "jobs")


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
    require(jobs, ["submitted_s", "first_start_s", "end_s"], "jobs")
    ax = get_ax(ax)
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
    return finish(ax, f"Queue depth over time ({len(jobs):,} jobs)", "jobs")


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
        return contention(with_meta(self._run), **kw)
