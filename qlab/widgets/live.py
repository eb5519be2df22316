"""The live view: a hook that shows a run (or a sweep's runs) as it goes, in a notebook.

Example (in a notebook)::

    from qlab.widgets import LiveView
    live = LiveView()
    display(live)
    run = qlab.run(qlab.workloads.cpu(ms=1), range(2000), hooks=[live])

Its second row shows the counters that :class:`qlab.metrics.Prometheus` exports, made
from the same progress counts by :func:`prometheus_values` (busy workers, queue
depth, jobs in flight, attempts by outcome), so a notebook and a Grafana panel fed by
the same run agree; each card's tooltip names its metric.
"""

from __future__ import annotations

import html
import math
import threading
from collections.abc import Mapping
from typing import Any

import ipywidgets as ipw

from qlab.core.fmt import plural
from qlab.hooks.base import Hook
from qlab.hooks.progress import final_counts, rate
from qlab.widgets.outputs import figure_output, new_figure, seconds

__all__ = ["LiveView", "prometheus_values"]

_CARDS = ("completed", "failed", "retried", "throughput")
# the second row: the gauges and counters Prometheus exports (see prometheus_values)
_METRIC_CARDS = ("busy_workers", "queue_depth", "in_flight", "attempts")
_COUNTERS = ("submitted", "ok", "failed", "cancelled", "retries", "attempts")
_TIPS = {
    "busy_workers": "qlab_busy_workers: workers running a batch",
    "queue_depth": "qlab_queue_depth: jobs waiting: ready, or for a retry's backoff",
    "in_flight": "qlab_jobs_in_flight: jobs submitted and not finished; "
    "qlab_jobs_submitted_total: jobs submitted",
    "attempts": "qlab_attempts_total{outcome}: ok; retry (followed by another attempt); "
    "failed (ended its job without success)",
}


def prometheus_values(counts: Mapping[str, Any]) -> dict[str, float]:
    """The samples :class:`qlab.metrics.Prometheus` exports from a progress tick's
    counts (``on_progress``), named as in its text format without the backend and
    workload labels. The histograms are left out: they are made from ``run.jobs`` at
    the end, not from counts. A gauge whose count is missing (a durable queue has no
    busy_workers or queue_depth) is NaN, and every value is 0 before the first tick,
    as in the exporter.

    Example:
        >>> v = prometheus_values({"ok": 8, "failed": 1, "cancelled": 0, "retries": 3,
        ...                        "attempts": 12, "submitted": 10, "unfinished": 1,
        ...                        "busy_workers": 2, "queue_depth": 0})
        >>> v['qlab_attempts_total{outcome="failed"}'], v["qlab_busy_workers"]
        (1, 2)
        >>> prometheus_values({})["qlab_queue_depth"]
        0
    """
    from qlab.hooks.metrics import count_samples

    out: dict[str, float] = {}
    for kind, name, _, label, samples in count_samples(counts):
        name += "_total" if kind == "counter" else ""
        for value_of_label, value in samples:
            out[name if label is None else f'{name}{{{label}="{value_of_label}"}}'] = value
    return out


def _num(value: float) -> str:
    """A count as the cards write it (a gauge not reported: a dash)."""
    return "–" if isinstance(value, float) and math.isnan(value) else f"{value:,.0f}"


class LiveView(Hook):
    """A hook that shows a run live in a notebook: an ipywidgets box with completed,
    failed, retried and throughput, and below them the counters that
    :class:`qlab.metrics.Prometheus` exports (busy workers, queue depth, jobs in
    flight and submitted, attempts by outcome), updated at each ``on_progress`` (a
    few Hz).

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
        labels: {"completed", "failed", "retried", "throughput", "busy_workers",
            "queue_depth", "in_flight", "attempts"}: the HTML widgets.
        metrics: the Prometheus samples shown (:func:`prometheus_values` of the last
            progress tick, which is what a ``Prometheus`` hook on the run exports).
        bar: the IntProgress of jobs done out of jobs requested (the current run's).
        sweep_bar: with ``points``, the IntProgress of runs done out of runs planned (a
            whole sweep's progress), above ``bar``; None without ``points``.
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
        >>> live.metrics['qlab_jobs_total{status="ok"}'], live.metrics["qlab_busy_workers"]
        (100, 0)
    """

    shows_progress = True

    def __init__(
        self, *, chart: bool = False, points: int | None = None, jobs: int | None = None
    ) -> None:
        card = ipw.Layout(min_width="9em", padding="0 1em 0 0", overflow="hidden")
        self.labels = {name: ipw.HTML(layout=card) for name in _CARDS + _METRIC_CARDS}
        # "auto" and no overflow: a 100%-wide bar plus its margins overflowed the box
        # and gave every live view an empty horizontal scrollbar
        self.bar = ipw.IntProgress(value=0, min=0, max=1, layout=ipw.Layout(width="auto"))
        self.status = ipw.HTML("<i>waiting for a run</i>")
        self.sweep_bar = ipw.IntProgress(
            value=0, min=0, max=max(points or 1, 1), layout=ipw.Layout(width="auto")
        )
        self.sweep_bar.layout.display = "" if points else "none"
        self.chart = ipw.Output() if chart else None
        row = ipw.Layout(overflow="hidden")
        cards = ipw.HBox([self.labels[name] for name in _CARDS], layout=row)
        gauges = ipw.HBox([self.labels[name] for name in _METRIC_CARDS], layout=row)
        children: list[Any] = [self.status, self.sweep_bar, self.bar, cards, gauges]
        if self.chart is not None:
            import qlab.plot  # noqa: F401 - load matplotlib here, not in a worker thread

            children.append(self.chart)
        self.widget = ipw.VBox(children, layout=ipw.Layout(overflow="hidden"))
        self.widget.add_class("qlab-live")  # a handle for browser tests and styles
        self.points: list[dict[str, Any]] = []
        self.expected_points = points
        self.runs_done = 0  # runs ended since the last reset (a sweep's points done)
        self.expected_jobs = jobs
        self._total: int | None = jobs
        self._meta: dict[str, Any] = {}
        self._last: tuple[float, int] = (0.0, 0)  # (elapsed_s, finished) at the last tick
        self._counts: dict[str, Any] = {"elapsed_s": 0.0}
        self._tick: dict[str, Any] = {}  # the last on_progress counts, as Prometheus keeps
        self.metrics: dict[str, float] = prometheus_values({})
        self._lock = threading.Lock()  # ticks come from the coordinator, the end from the caller
        self._show_counts({**dict.fromkeys(_COUNTERS, 0), "elapsed_s": 0.0})

    # displaying the hook displays its box, with a static copy for readers without widgets
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        bundle["text/html"] = self.snapshot_html()
        return bundle

    def snapshot_html(self) -> str:
        """The view as static HTML: its status and counts as they are now."""
        rows = "".join(
            "<tr>"
            + "".join(
                f"<td style='padding-right:2em'>{self.labels[name].value}</td>" for name in names
            )
            + "</tr>"
            for names in (_CARDS, _METRIC_CARDS)
        )
        return f"<div class='qlab-live'>{self.status.value}<table>{rows}</table></div>"

    def expect(self, jobs: int | None) -> None:
        """Announce the number of jobs of the next runs (the denominator of "completed")."""
        with self._lock:
            self.expected_jobs = self._total = jobs

    def reset(self, points: int | None = None) -> None:
        """Forget the points drawn so far (and expect ``points`` runs)."""
        with self._lock:
            self.points = []
            self.runs_done = 0
            self.expected_points = points
            self.sweep_bar.max, self.sweep_bar.value = max(points or 1, 1), 0
            self.sweep_bar.bar_style = ""
            self.sweep_bar.layout.display = "" if points else "none"
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
            self._tick = {}  # a new run: Prometheus forgets the last one's counts too
            self._show_counts({**dict.fromkeys(_COUNTERS, 0), "elapsed_s": 0.0})

    def on_progress(self, counts: dict[str, Any]) -> None:
        with self._lock:
            self._tick = dict(counts)
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
            self.runs_done += 1
            self.sweep_bar.value = min(self.runs_done, self.sweep_bar.max)
            if self.expected_points and self.runs_done >= self.expected_points:
                self.sweep_bar.bar_style = "success"
            if self.chart is None:
                return
            self._add_point(run, counts)
        self._draw()

    def _where(self) -> str:
        m = self._meta
        workers = m.get("workers")
        n = plural(workers, "worker") if isinstance(workers, int) else "? workers"
        where = f"{html.escape(str(m.get('backend', '?')))} × {n}"
        if self.chart is not None or self.expected_points:
            total = f" of {self.expected_points:,}" if self.expected_points else ""
            where = f"point {self.runs_done + 1:,}{total}: {where}"
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
        self._show_metrics()

    def _show_metrics(self) -> None:
        """The second row: what Prometheus exports from the last tick's counts (the
        engine's last tick comes just before ``on_end``, with the final counts)."""
        m = self.metrics = prometheus_values(self._tick)
        workers = self._meta.get("workers")
        of = f" / {workers:,}" if isinstance(workers, int) else ""
        att = {o: m[f'qlab_attempts_total{{outcome="{o}"}}'] for o in ("ok", "retry", "failed")}
        text = {
            "busy_workers": f"<b>{_num(m['qlab_busy_workers'])}</b>{of} busy workers",
            "queue_depth": f"<b>{_num(m['qlab_queue_depth'])}</b> queue depth",
            "in_flight": f"<b>{_num(m['qlab_jobs_in_flight'])}</b> in flight<br>"
            f"<small>{_num(m['qlab_jobs_submitted_total'])} submitted</small>",
            "attempts": f"<b>{_num(sum(att.values()))}</b> attempts<br><small>"
            + ", ".join(f"{_num(n)} {o}" for o, n in att.items())
            + "</small>",
        }
        for name, value in text.items():
            self.labels[name].value = f"<span title='{html.escape(_TIPS[name])}'>{value}</span>"

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
