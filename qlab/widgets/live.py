"""The live view: a hook that shows a run (or a sweep's runs) as it goes, in a notebook.

Example (in a notebook)::

    from qlab.widgets import LiveView
    live = LiveView()
    display(live)
    run = qlab.run(qlab.workloads.cpu(ms=1), range(2000), hooks=[live])
"""

from __future__ import annotations

import html
import math
import threading
from collections.abc import Mapping
from typing import Any

import ipywidgets as ipw

from qlab.hooks import Hook
from qlab.progress import final_counts, rate
from qlab.widgets.outputs import figure_output, new_figure, seconds

__all__ = ["LiveView"]

_CARDS = ("completed", "failed", "retried", "throughput")
_COUNTERS = ("submitted", "ok", "failed", "cancelled", "retries", "attempts")


class LiveView(Hook):
    """A hook that shows a run live in a notebook: an ipywidgets box with completed,
    failed, retried and throughput, updated at each ``on_progress`` (a few Hz).

    With ``chart=True`` it also draws throughput vs workers, one point per finished
    run, redrawn as each point arrives: pass it as a sweep's hook to watch the scaling
    chart grow. The last picture stays.

    Create it, and display it, in the notebook's main thread (``display(live)`` or as
    a cell's last expression); the engine may then update it from any thread.

    The denominator of "completed" is the number of jobs requested: ``jobs=`` here (or
    :meth:`expect`), else the engine's ``meta["jobs_total"]`` for a sized input, else the
    jobs submitted so far (a generator of unknown length).

    Args:
        chart: draw a scaling chart that grows by one point per run.
        points: the number of runs expected (a sweep's points), for the status line.
        jobs: the number of jobs each run is asked to do, if known.

    Attributes:
        widget: the ipywidgets box.
        labels: {"completed", "failed", "retried", "throughput"}: the HTML widgets.
        bar: the IntProgress of jobs done out of jobs requested.
        chart: the Output widget of the scaling chart (None without ``chart``).
        points: one dict per finished run: backend, workers, repeat, throughput, ...

    Example:
        >>> import qlab
        >>> live = LiveView(jobs=100)
        >>> _ = qlab.run(qlab.workloads.noop(), range(100), hooks=[live])
        >>> live.labels["completed"].value.split("<br>")[0]
        '<b>100</b> / 100 completed'
        >>> "done" in live.status.value
        True
    """

    def __init__(
        self, *, chart: bool = False, points: int | None = None, jobs: int | None = None
    ) -> None:
        card = ipw.Layout(min_width="9em", padding="0 1em 0 0", overflow="hidden")
        self.labels = {name: ipw.HTML(layout=card) for name in _CARDS}
        # "auto" and no overflow: a 100%-wide bar plus its margins overflowed the box
        # and gave every live view an empty horizontal scrollbar
        self.bar = ipw.IntProgress(value=0, min=0, max=1, layout=ipw.Layout(width="auto"))
        self.status = ipw.HTML("<i>waiting for a run</i>")
        self.chart = ipw.Output() if chart else None
        cards = ipw.HBox(list(self.labels.values()), layout=ipw.Layout(overflow="hidden"))
        children: list[Any] = [self.status, self.bar, cards]
        if self.chart is not None:
            import qlab.plot  # noqa: F401 - load matplotlib here, not in a worker thread

            children.append(self.chart)
        self.widget = ipw.VBox(children, layout=ipw.Layout(overflow="hidden"))
        self.widget.add_class("qlab-live")  # a handle for browser tests and styles
        self.points: list[dict[str, Any]] = []
        self.expected_points = points
        self.expected_jobs = jobs
        self._total: int | None = jobs
        self._meta: dict[str, Any] = {}
        self._last: tuple[float, int] = (0.0, 0)  # (elapsed_s, finished) at the last tick
        self._counts: dict[str, Any] = {"elapsed_s": 0.0}
        self._lock = threading.Lock()  # ticks come from the coordinator, the end from the caller
        self._show_counts({**dict.fromkeys(_COUNTERS, 0), "elapsed_s": 0.0})

    # displaying the hook displays its box, with a static copy for readers without widgets
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        bundle["text/html"] = self.snapshot_html()
        return bundle

    def snapshot_html(self) -> str:
        """The view as static HTML: its status and counts as they are now."""
        cards = "".join(
            f"<td style='padding-right:2em'>{self.labels[name].value}</td>" for name in _CARDS
        )
        return f"<div class='qlab-live'>{self.status.value}<table><tr>{cards}</tr></table></div>"

    def expect(self, jobs: int | None) -> None:
        """Announce the number of jobs of the next runs (the denominator of "completed")."""
        with self._lock:
            self.expected_jobs = self._total = jobs

    def reset(self, points: int | None = None) -> None:
        """Forget the points drawn so far (and expect ``points`` runs)."""
        with self._lock:
            self.points = []
            self.expected_points = points
            if self.chart is not None:
                self.chart.outputs = ()
            self.status.value = "<i>waiting for a run</i>"

    def on_start(self, meta: dict[str, Any]) -> None:
        with self._lock:
            self._meta = meta
            self._last = (0.0, 0)
            self._total = self.expected_jobs or meta.get("jobs_total")
            self.bar.bar_style = ""
            self.status.value = f"{self._where()}: <b>running</b>"
            self._show_counts({**dict.fromkeys(_COUNTERS, 0), "elapsed_s": 0.0})

    def on_progress(self, counts: dict[str, Any]) -> None:
        with self._lock:
            self._show_counts(counts)

    def on_end(self, run: Any) -> None:
        counts = final_counts(run, self._counts)
        with self._lock:
            self._meta = {**self._meta, **run.meta}
            self._show_counts(counts, final=True)
            why = run.meta.get("interrupted")
            self.bar.bar_style = "warning" if why or counts["cancelled"] else "success"
            if why == "stopped":
                state = "stopped"
            elif why:
                state = f"stopped ({html.escape(str(why))})"
            elif counts["cancelled"]:
                state = "done, with cancelled jobs"
            else:
                state = "done"
            self.status.value = f"{self._where()}: <b>{state}</b> in {seconds(run.wall_s)}"
            if self.chart is None:
                return
            self._add_point(run, counts)
        self._draw()

    def _where(self) -> str:
        m = self._meta
        where = f"{html.escape(str(m.get('backend', '?')))} × {m.get('workers', '?')} workers"
        if self.chart is not None:
            total = f" of {self.expected_points}" if self.expected_points else ""
            where = f"point {len(self.points) + 1}{total}: {where}"
        return where

    def _show_counts(self, counts: Mapping[str, Any], final: bool = False) -> None:
        self._counts = {**self._counts, **counts}
        ok, failed = counts.get("ok", 0), counts.get("failed", 0)
        cancelled, submitted = counts.get("cancelled", 0), counts.get("submitted", 0)
        done = ok + failed + cancelled
        total = max(self._total or 0, submitted)  # jobs requested; submitted if unknown
        self.bar.max = max(total, 1)
        self.bar.value = done  # every job with its final status, cancelled ones too
        elapsed = counts.get("elapsed_s", 0.0)
        avg = rate(counts) if elapsed else math.nan
        # the rate since the last tick, to see a run speed up or slow down
        t0, f0 = self._last
        now = (ok + failed - f0) / (elapsed - t0) if elapsed > t0 and not final else math.nan
        self._last = (elapsed, ok + failed)
        cancelled_s = f", {cancelled:,} cancelled" if cancelled else ""
        self.labels[
            "completed"
        ].value = (
            f"<b>{ok + failed:,}</b> / {total:,} completed<br><small>{ok:,} ok{cancelled_s}</small>"
        )
        self.labels["failed"].value = f"<b>{failed:,}</b> failed"
        self.labels["retried"].value = f"<b>{counts.get('retries', 0):,}</b> retried"
        avg_s = "-" if math.isnan(avg) else f"{avg:,.0f}"
        now_s = f"<br><small>now {now:,.0f} jobs/s</small>" if math.isfinite(now) else ""
        self.labels["throughput"].value = f"<b>{avg_s}</b> jobs/s{now_s}"

    def _add_point(self, run: Any, counts: Mapping[str, Any]) -> None:
        backend, workers = run.meta.get("backend"), run.meta.get("workers")
        same = [p for p in self.points if (p["backend"], p["workers"]) == (backend, workers)]
        self.points.append(
            {
                "backend": backend,
                "workers": workers,
                "repeat": len(same),
                "throughput": rate(counts),
                "jobs": counts["submitted"],
                "wall_s": run.wall_s,
            }
        )

    def _draw(self) -> None:
        import pandas as pd

        from qlab import plot

        with self._lock:
            df = pd.DataFrame(self.points)
            chart = self.chart
        df = df[df["throughput"].notna()]
        if chart is None or df.empty:
            return
        fig = new_figure(7.0, 4.0)
        ax = plot.scaling(df, ax=fig.add_subplot())
        ax.set_title(f"Throughput vs workers (live, {len(df)} runs)")
        chart.outputs = (figure_output(fig),)  # one assignment: no flicker, no partial state
