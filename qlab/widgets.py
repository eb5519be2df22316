"""Jupyter widgets: a live view of runs and sweeps, and the explorer app.

- :class:`LiveView` is a hook (see :mod:`qlab.hooks`) that shows a run as it goes:
  completed, failed, retried and throughput, updated a few times a second; with
  ``chart=True`` it also grows a scaling chart by one point per run, for sweeps.
- :func:`explore` builds :class:`Explorer`, an app to set up a run (workload, workers,
  backend, failures, retries, backoff, seed), start and stop it, and see its summary,
  timeline and latency; and to sweep worker counts and see the scaling chart with its
  Universal Scalability Law fit.

Threads. Runs go in a background thread, so that the notebook stays live. A background
thread must not print nor use ``with output:``: Jupyter sends that output to whichever
cell is running at the time. Everything here is shown by setting widget traits
(``Output.outputs``, ``HTML.value``) from whatever thread, which goes through the
widget's own channel, and charts are drawn on ``matplotlib.figure.Figure`` objects
(never pyplot's global figures, which the inline backend would show in the running cell).

Example (in a notebook)::

    import qlab
    app = qlab.explore(workload="sleep", ms=2, workers=8)
    app                                   # shows the app
    app.run_button.click(); run = app.wait(60)

    from qlab.widgets import LiveView
    live = LiveView()
    display(live)
    run = qlab.run(qlab.workloads.cpu(ms=1), range(2000), hooks=[live])
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import math
import os
import threading
import traceback
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import ipywidgets as ipw

from qlab import workloads
from qlab.hooks import Hook
from qlab.progress import final_counts, rate

__all__ = ["Explorer", "LiveView", "explore"]

_CARDS = ("completed", "failed", "retried", "throughput")
_COUNTERS = ("submitted", "ok", "failed", "cancelled", "retries", "attempts")
_BACKENDS = ("thread", "process")
_BACKOFFS = ("none", "constant", "exponential")
_WIDE = {"description_width": "initial"}


# -- outputs as data: what a background thread may put in an Output widget ----------------


def html_output(text: str, plain: str = "") -> dict[str, Any]:
    """An ``Output.outputs`` entry showing HTML."""
    return {
        "output_type": "display_data",
        "data": {"text/html": text, "text/plain": plain or "(HTML)"},
        "metadata": {},
    }


def figure_output(fig: Any, dpi: int = 80) -> dict[str, Any]:
    """An ``Output.outputs`` entry showing a matplotlib Figure as a PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    w, h = fig.get_size_inches() * dpi
    return {
        "output_type": "display_data",
        "data": {
            "image/png": base64.b64encode(buf.getvalue()).decode("ascii"),
            "text/plain": f"<Figure size {w:.0f}x{h:.0f}>",
        },
        "metadata": {},
    }


def _error_output(exc: BaseException) -> dict[str, Any]:
    text = "".join(traceback.format_exception(exc))
    return {"output_type": "stream", "name": "stderr", "text": text}


def _figure(width: float, height: float) -> Any:
    """A Figure outside pyplot: safe to draw in a thread, never shown by the backend."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _ms(seconds: float) -> str:
    return "-" if not math.isfinite(seconds) else f"{seconds * 1e3:,.3g} ms"


def _summary_html(run: Any, note: str = "") -> str:
    """A run's headline, its summary as a small table, and its errors by type."""
    s, m = run.summary(), run.meta
    esc = html.escape
    head = (
        f"<b>{esc(str(m.get('backend')))}</b> × {m.get('workers')} workers, workload "
        f"<code>{esc(str(m.get('workload')))}</code>: {s['jobs']:,} jobs, {s['ok']:,} ok, "
        f"{s['failed']:,} failed, {s['cancelled']:,} cancelled; "
        f"<b>{s['throughput']:,.0f} jobs/s</b>"
    )
    rows = [
        ("jobs", f"{s['jobs']:,}"),
        ("ok / failed / cancelled", f"{s['ok']:,} / {s['failed']:,} / {s['cancelled']:,}"),
        ("attempts (retries)", f"{s['attempts']:,} ({s['retries']:,})"),
        ("timeouts / crashed", f"{s['timeouts']:,} / {s['crashed']:,}"),
        ("wall time", f"{s['wall_s']:.3f} s"),
        ("throughput", f"{s['throughput']:,.1f} jobs/s"),
        (
            "latency p50 / p95 / p99",
            " / ".join(_ms(s[f"latency_p{q}_s"]) for q in (50, 95, 99)),
        ),
        ("mean queue wait", _ms(s["queue_wait_mean_s"])),
        ("CPU use", "-" if not math.isfinite(s["cpu_util"]) else f"{s['cpu_util']:.0%}"),
        ("retry policy", esc(str(m.get("retry")))),
        ("seed", esc(str(m.get("seed")))),
    ]
    errors = run.failed["error_type"].astype(str).value_counts()
    if len(errors):
        rows.append(("failed by error", ", ".join(f"{esc(k)}: {v:,}" for k, v in errors.items())))
    table = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>" for k, v in rows)
    note_html = f"<p><i>{esc(note)}</i></p>" if note else ""
    return f"<p>{head}</p>{note_html}<table class='qlab-summary'>{table}</table>"


# -- the live view -------------------------------------------------------------------------


class LiveView(Hook):
    """A hook that shows a run live in a notebook: an ipywidgets box with completed,
    failed, retried and throughput, updated at each ``on_progress`` (a few Hz).

    With ``chart=True`` it also draws throughput vs workers, one point per finished
    run, redrawn as each point arrives: pass it as a sweep's hook to watch the scaling
    chart grow. The last picture stays.

    Create it, and display it, in the notebook's main thread (``display(live)`` or as
    a cell's last expression); the engine may then update it from any thread.

    Args:
        chart: draw a scaling chart that grows by one point per run.
        points: the number of runs expected (a sweep's points), for the status line.

    Attributes:
        widget: the ipywidgets box.
        labels: {"completed", "failed", "retried", "throughput"}: the HTML widgets.
        bar: the IntProgress of jobs done out of jobs submitted.
        chart: the Output widget of the scaling chart (None without ``chart``).
        points: one dict per finished run: backend, workers, repeat, throughput, ...
    """

    def __init__(self, *, chart: bool = False, points: int | None = None) -> None:
        card = ipw.Layout(min_width="9em", padding="0 1em 0 0")
        self.labels = {name: ipw.HTML(layout=card) for name in _CARDS}
        self.bar = ipw.IntProgress(value=0, min=0, max=1, layout=ipw.Layout(width="100%"))
        self.status = ipw.HTML("<i>waiting for a run</i>")
        self.chart = ipw.Output() if chart else None
        children: list[Any] = [self.status, self.bar, ipw.HBox(list(self.labels.values()))]
        if self.chart is not None:
            import qlab.plot  # noqa: F401 - load matplotlib here, not in a worker thread

            children.append(self.chart)
        self.widget = ipw.VBox(children)
        self.points: list[dict[str, Any]] = []
        self.expected_points = points
        self._meta: dict[str, Any] = {}
        self._last: tuple[float, int] = (0.0, 0)  # (elapsed_s, finished) at the last tick
        self._counts: dict[str, Any] = {"elapsed_s": 0.0}
        self._lock = threading.Lock()  # ticks come from the coordinator, the end from the caller
        self._show_counts({**dict.fromkeys(_COUNTERS, 0), "elapsed_s": 0.0})

    # displaying the hook displays its box
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

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
            state = f"stopped ({html.escape(str(why))})" if why else "done"
            self.status.value = f"{self._where()}: <b>{state}</b> in {run.wall_s:.2f} s"
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
        self.bar.max = max(submitted, 1)
        self.bar.value = done
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
            f"<b>{done:,}</b> / {submitted:,} completed<br><small>{ok:,} ok{cancelled_s}</small>"
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
        fig = _figure(7.0, 4.0)
        ax = plot.scaling(df, ax=fig.add_subplot())
        ax.set_title(f"Throughput vs workers (live, {len(df)} runs)")
        chart.outputs = (figure_output(fig),)  # one assignment: no flicker, no partial state


# -- the explorer --------------------------------------------------------------------------


def _sweep_function() -> tuple[Callable[..., Any] | None, str]:
    """``qlab.sweep`` if it can be imported, else (None, why)."""
    try:
        from qlab.sweeps import sweep
    except ImportError as exc:
        return None, f"qlab.sweep is not available ({exc})"
    return sweep, ""


def _workload_params(name: str) -> set[str]:
    cls = getattr(workloads, name, None)
    return {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()


class Explorer(ipw.VBox):
    """The explorer app (built by :func:`explore`): a widget, with handles for code.

    Attributes:
        controls: {name: widget}: workload, ms, transient, permanent, retries, backoff,
            base, seed (shared); workers, backend, jobs (Run tab); sweep_workers,
            sweep_backends, sweep_jobs, repeats (Sweep tab).
        run_button, stop_button, sweep_button: the buttons (``.click()`` them in code).
        output, sweep_output: Output widgets with the results of the last run / sweep.
        live, sweep_live: the :class:`LiveView` of runs and of sweeps.
        status: an HTML line saying what the app is doing.
        tabs: the Tab widget (0: Run, 1: Sweep).
        hooks: the extra hooks given to every run (a list: append to it, remove from it).
        last_run, last_sweep: the last results (None before the first).
        error: the exception of the last task, if it failed.
    """

    def __init__(self, *, hooks: Iterable[Hook] = (), **values: Any) -> None:
        import qlab.plot  # noqa: F401 - load matplotlib in this thread, not in a worker

        # state first: Widget.__del__ calls close(), even when __init__ raised
        self.last_run: Any = None
        self.last_sweep: Any = None
        self.result: Any = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pool: Any = None
        self._stop = threading.Event()
        self.hooks = list(hooks)
        self.controls = _make_controls()
        unknown = set(values) - set(self.controls)
        if unknown:
            raise TypeError(
                f"explore() got unknown control(s) {sorted(unknown)}; "
                f"the controls are {sorted(self.controls)}"
            )
        for name, value in values.items():
            try:
                self.controls[name].value = value
            except Exception as exc:  # a TraitError: say which parameter
                raise ValueError(f"{name}={value!r} is not valid here: {exc}") from None
        self._sweep_fn, why = _sweep_function()

        c = self.controls
        self.run_button = ipw.Button(description="Run", icon="play", button_style="success")
        self.stop_button = ipw.Button(
            description="Stop", icon="stop", button_style="danger", disabled=True
        )
        self.sweep_button = ipw.Button(
            description="Sweep",
            icon="play",
            button_style="success",
            disabled=self._sweep_fn is None,
            tooltip=why,
        )
        self.status = ipw.HTML("<i>ready</i>")
        self.output = ipw.Output()
        self.sweep_output = ipw.Output()
        self.live = LiveView()
        self.sweep_live = LiveView(chart=True)
        if self._sweep_fn is None:
            self.sweep_output.outputs = (html_output(f"<p><b>{html.escape(why)}</b>.</p>", why),)

        shared = ipw.VBox(
            [
                ipw.HBox([c["workload"], c["ms"], c["seed"]]),
                ipw.HBox([c["transient"], c["permanent"]]),
                ipw.HBox([c["retries"], c["backoff"], c["base"]]),
            ]
        )
        run_tab = ipw.VBox(
            [
                ipw.HBox([c["workers"], c["backend"], c["jobs"]]),
                ipw.HBox([self.run_button, self.stop_button]),
                self.live.widget,
                self.output,
            ]
        )
        sweep_tab = ipw.VBox(
            [
                ipw.HBox([c["sweep_workers"], c["sweep_backends"]]),
                ipw.HBox([c["sweep_jobs"], c["repeats"]]),
                self.sweep_button,
                self.sweep_live.widget,
                self.sweep_output,
            ]
        )
        self.tabs = ipw.Tab([run_tab, sweep_tab])
        self.tabs.set_title(0, "Run")
        self.tabs.set_title(1, "Sweep")
        super().__init__(
            [ipw.HTML("<h3>qlab explorer</h3>"), shared, self.tabs, self.status],
        )

        c["workload"].observe(self._on_workload, names="value")
        c["backoff"].observe(self._on_backoff, names="value")
        self._on_workload()
        self._on_backoff()
        self.run_button.on_click(lambda _: self.start_run())
        self.stop_button.on_click(lambda _: self.stop())
        self.sweep_button.on_click(lambda _: self.start_sweep())

    # -- controls -> a handler and a policy -----------------------------------------------

    def _on_workload(self, _: Any = None) -> None:
        self.controls["ms"].disabled = "ms" not in _workload_params(self.controls["workload"].value)

    def _on_backoff(self, _: Any = None) -> None:
        self.controls["base"].disabled = self.controls["backoff"].value == "none"

    def handler(self) -> Callable[[Any], Any]:
        """The workload that the controls describe (wrapped in ``flaky`` for failures)."""
        c = self.controls
        name = c["workload"].value
        transient, permanent = c["transient"].value, c["permanent"].value
        if name == "flaky":
            return workloads.flaky(transient=transient, permanent=permanent)
        params = {"ms": c["ms"].value} if "ms" in _workload_params(name) else {}
        inner = workloads.get(name, **params)
        if transient or permanent:
            return workloads.flaky(inner, transient=transient, permanent=permanent)
        return inner

    def retry(self) -> Any:
        """The retry policy that the controls describe."""
        from qlab.retry import Constant, Exponential, Retry

        c = self.controls
        kind, base = c["backoff"].value, c["base"].value
        backoff = {
            "none": None,
            "constant": Constant(base),
            "exponential": Exponential(base=base, cap=max(1.0, base), jitter=True),
        }[kind]
        return Retry(max_retries=c["retries"].value, backoff=backoff)

    # -- tasks in a background thread -----------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether a run or sweep is going on."""
        t = self._thread
        return t is not None and t.is_alive()

    def start_run(self) -> bool:
        """Start a run with the controls' settings (what the Run button does).

        Returns:
            False if a task is already running (nothing is started).
        """
        c = self.controls
        return self._start(
            "run",
            self._run_task,
            workers=c["workers"].value,
            backend=c["backend"].value,
            jobs=c["jobs"].value,
        )

    def start_sweep(self) -> bool:
        """Start a sweep with the controls' settings (what the Sweep button does)."""
        if self._sweep_fn is None:
            self.status.value = "<b>sweeps are not available</b>: qlab.sweep is missing"
            return False
        c = self.controls
        lo, hi = c["sweep_workers"].value
        backends = list(c["sweep_backends"].value) or ["thread"]
        return self._start(
            "sweep",
            self._sweep_task,
            workers=range(lo, hi + 1),
            backend=backends,
            jobs=c["sweep_jobs"].value,
            repeats=c["repeats"].value,
        )

    def _start(self, kind: str, task: Callable[..., Any], **params: Any) -> bool:
        with self._lock:
            if self.running:
                self.status.value = "<b>busy</b>: wait for the current task, or stop it"
                return False
            self.error = self.result = None
            self._pool = None
            self._stop.clear()
            try:  # read the shared controls here, in the caller's thread
                params.update(handler=self.handler(), retry=self.retry())
            except (ValueError, TypeError) as exc:
                self.error = exc
                self.status.value = f"<b>error</b>: {html.escape(str(exc))}"
                return False
            params["seed"] = self.controls["seed"].value
            self.run_button.disabled = self.sweep_button.disabled = True
            self.stop_button.disabled = kind != "run"  # a sweep cannot be stopped (yet)
            self.status.value = f"<b>{kind} running…</b>"
            self._thread = threading.Thread(
                target=self._guard,
                args=(kind, task, params),
                name=f"qlab-explorer-{kind}",
                daemon=True,
            )
            self._thread.start()
        return True

    def _guard(self, kind: str, task: Callable[..., Any], params: dict[str, Any]) -> None:
        out = self.output if kind == "run" else self.sweep_output
        try:
            self.result = task(**params)
            self.status.value = f"<i>{kind} finished</i>"
        except BaseException as exc:  # shown in the app and raised again by wait()
            self.error = exc
            out.outputs = (*out.outputs, _error_output(exc))
            self.status.value = f"<b>{kind} failed</b>: {html.escape(repr(exc))}"
        finally:
            with self._lock:
                self._pool = None
            self.run_button.disabled = False
            self.sweep_button.disabled = self._sweep_fn is None
            self.stop_button.disabled = True

    def _run_task(self, handler: Any, retry: Any, seed: int, workers: int, backend: str, jobs: int):
        from qlab.engine import Pool

        self.output.outputs = ()
        pool = Pool(
            handler,
            workers,
            backend=backend,
            retry=retry,
            seed=seed,
            hooks=[self.live, *self.hooks],
        )
        with self._lock:
            self._pool = pool
            stopped = self._stop.is_set()
        if stopped:  # Stop came while the workers were starting
            pool.shutdown(wait=False, cancel_pending=True)
        submitted = 0
        try:
            for payload in range(jobs):
                if self._stop.is_set():
                    break
                pool.submit(payload)  # blocks while the queue is full (backpressure)
                submitted += 1
        except RuntimeError:  # Stop shut the pool down while we were submitting
            if not self._stop.is_set():
                raise
        finally:
            pool.shutdown(wait=True, cancel_pending=self._stop.is_set())
        run = pool.trace()
        note = ""
        if self._stop.is_set():
            run.meta["interrupted"] = "stopped"
            note = "Stopped: pending jobs were cancelled, running attempts finished."
            if submitted < jobs:
                note += f" {jobs - submitted:,} of the {jobs:,} jobs were never submitted."
        self.last_run = run
        if submitted:
            self._show_run(run, note)
        else:
            self.output.outputs = (html_output(f"<p><i>{note}</i></p>", note),)
        return run

    def _show_run(self, run: Any, note: str) -> None:
        from qlab import plot

        outputs = [html_output(_summary_html(run, note), repr(run))]
        workers = int(run.meta.get("workers") or 1)
        fig = _figure(9.0, min(2.0 + 0.3 * min(workers, 32), 8.0))
        plot.timeline(run.attempts, ax=fig.add_subplot(), max_workers=32)
        outputs.append(figure_output(fig))
        fig = _figure(9.0, 3.5)
        plot.latency(run.jobs, ax=fig.add_subplot())
        outputs.append(figure_output(fig))
        self.output.outputs = tuple(outputs)

    def _sweep_task(self, handler: Any, retry: Any, seed: int, **params: Any) -> Any:
        self.sweep_output.outputs = ()
        n_points = len(params["workers"]) * len(params["backend"]) * params["repeats"]
        self.sweep_live.reset(points=n_points)
        assert self._sweep_fn is not None
        sweep = self._sweep_fn(
            workload=handler,
            retry=retry,
            seed=seed,
            progress=False,
            hooks=[self.sweep_live, *self.hooks],
            **params,
        )
        self.last_sweep = sweep
        self._show_sweep(sweep)
        return sweep

    def _show_sweep(self, sweep: Any) -> None:
        from qlab import plot

        notes: list[str] = []
        fits = None
        # Record the fit's warnings (too few worker levels...) to show them here: printed
        # from this thread they would land in another cell. catch_warnings is process-wide
        # in Python < 3.14; a warning raised meanwhile by another thread may be caught too.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                fits = sweep.fit()
            except (ValueError, RuntimeError, ArithmeticError) as exc:
                notes.append(f"USL fit failed: {exc}")
        notes += [str(w.message) for w in caught]
        df = sweep.df
        fig = _figure(8.0, 4.5)
        plot.scaling(df, fits=fits, ax=fig.add_subplot())
        table = df.groupby(["backend", "workers"], observed=True)["throughput"].mean().unstack(0)
        parts = [
            "<p><b>Mean throughput (jobs/s) by workers and backend</b></p>",
            table.to_html(float_format=lambda v: f"{v:,.0f}"),
        ]
        if fits is not None:
            cols = ["lam", "sigma", "kappa", "peak_workers", "peak_throughput", "r2"]
            parts += [
                "<p><b>USL fit per backend</b></p>",
                fits[[c for c in cols if c in fits.columns]].to_html(float_format="{:.4g}".format),
            ]
        parts += [f"<p><i>{html.escape(n)}</i></p>" for n in notes]
        self.sweep_output.outputs = (figure_output(fig), html_output("".join(parts)))

    def stop(self) -> None:
        """Stop the current run (what the Stop button does): cancel its pending jobs;
        running attempts finish. Then the run's results are shown as usual."""
        with self._lock:
            if not self.running:
                return
            self._stop.set()
            pool = self._pool
        self.status.value = "<b>stopping…</b> (running attempts finish)"
        if pool is not None:
            pool.shutdown(wait=False, cancel_pending=True)

    def wait(self, timeout: float | None = None) -> Any:
        """Wait for the current run or sweep to end.

        Returns:
            Its result (a Run or a Sweep), or the last one if nothing is running.

        Raises:
            TimeoutError: still running after ``timeout`` seconds.
            Exception: the error that the task failed with.
        """
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise TimeoutError(f"{thread.name} still running after {timeout}s")
        if self.error is not None:
            raise self.error
        return self.result

    def close(self) -> None:
        """Stop a run (a sweep finishes its points), wait for it, close the widget."""
        self.stop()
        thread = self._thread
        if thread is not None:
            thread.join()
        super().close()


def _make_controls() -> dict[str, Any]:
    cpus = os.cpu_count() or 4
    max_workers = max(16, 2 * cpus)
    names = workloads.names()
    return {
        # the workload and its policy: shared by the Run and Sweep tabs
        "workload": ipw.Dropdown(options=names, value="sleep", description="workload"),
        "ms": ipw.BoundedFloatText(
            value=2.0, min=0.0, max=10_000.0, step=0.5, description="ms", style=_WIDE
        ),
        "seed": ipw.IntText(value=0, description="seed", layout=ipw.Layout(width="12em")),
        "transient": ipw.FloatSlider(
            value=0.0, min=0.0, max=1.0, step=0.01, description="transient failures", style=_WIDE
        ),
        "permanent": ipw.FloatSlider(
            value=0.0, min=0.0, max=1.0, step=0.01, description="permanent failures", style=_WIDE
        ),
        "retries": ipw.IntSlider(value=3, min=0, max=10, description="retries"),
        "backoff": ipw.Dropdown(options=_BACKOFFS, value="exponential", description="backoff"),
        "base": ipw.BoundedFloatText(
            value=0.01, min=0.0, max=10.0, step=0.005, description="base (s)", style=_WIDE
        ),
        # one run
        "workers": ipw.IntSlider(value=4, min=1, max=max_workers, description="workers"),
        "backend": ipw.ToggleButtons(options=_BACKENDS, value="thread", description="backend"),
        "jobs": ipw.BoundedIntText(value=200, min=1, max=10_000_000, description="jobs"),
        # a sweep
        "sweep_workers": ipw.IntRangeSlider(
            value=(1, min(8, max_workers)), min=1, max=max_workers, description="workers"
        ),
        "sweep_backends": ipw.SelectMultiple(
            options=_BACKENDS, value=("thread",), rows=2, description="backends"
        ),
        "sweep_jobs": ipw.BoundedIntText(value=200, min=1, max=10_000_000, description="jobs"),
        "repeats": ipw.IntSlider(value=1, min=1, max=10, description="repeats"),
    }


def explore(*, hooks: Iterable[Hook] = (), **values: Any) -> Explorer:
    """An interactive app to run and sweep workloads in a notebook.

    Set a workload (and its ``ms``), failure rates, retries and backoff, and seed; then
    run it with some workers on a backend and see the summary, timeline and latency
    charts, or sweep worker counts and backends and see the scaling chart with its USL
    fit. Runs go in a background thread: the notebook stays live, and Stop cancels a run.

    Args:
        hooks: extra hooks passed to every run (metrics, logs...).
        **values: initial values of controls by name (see ``Explorer.controls``), e.g.
            ``workload="cpu", ms=1, workers=8, jobs=1000, backend="process"``.

    Returns:
        The :class:`Explorer` widget: display it, or drive it from code with its
        ``controls``, buttons (``run_button.click()``) and ``wait()``.

    Raises:
        TypeError: an unknown control name. ValueError: a value the control refuses.

    Example:
        >>> app = explore(workload="seed", workers=4, jobs=100)  # doctest: +SKIP
        >>> app.run_button.click(); app.wait(60).summary()["ok"]  # doctest: +SKIP
        10
    """
    return Explorer(hooks=hooks, **values)
