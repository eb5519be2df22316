"""The explorer app: set a run or a sweep up by hand, start and stop it, and watch it.

Runs go in a background thread, so that the notebook stays live; everything is shown by
setting widget traits (see :mod:`qlab.widgets.outputs`), never by printing.

Example (in a notebook)::

    import qlab
    app = qlab.explore(workload="sleep", ms=2, workers=8)
    app                                   # shows the app
    app.run_button.click(); run = app.wait(60)
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Iterable
from typing import Any

import ipywidgets as ipw

from qlab.hooks.base import Hook
from qlab.widgets.controls import (
    handler_from,
    make_controls,
    retry_from,
    sweep_function,
    workload_params,
)
from qlab.widgets.live import LiveView
from qlab.widgets.outputs import error_output, html_output
from qlab.widgets.views import explorer_html, run_outputs, shared_controls, sweep_outputs, tabs

__all__ = ["Explorer"]


class Explorer(ipw.VBox):
    """The explorer app (built by :func:`explore`): a widget, with handles for code.

    Attributes:
        controls: {name: widget}: workload, ms, transient, permanent, retries, backoff,
            base, seed (shared); workers, backend, jobs (Run tab); sweep_workers,
            sweep_backends, sweep_jobs, repeats (Sweep tab).
        run_button, stop_button, sweep_button: the buttons (``.click()`` them in code).
        output, sweep_output: Output widgets with the results of the last run / sweep.
        live, sweep_live: the :class:`LiveView` of runs and of sweeps.
        status, sweep_status: the Run tab's and the Sweep tab's status lines, each
            saying what that tab's task is doing now.
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
        self._stop = threading.Event()
        self._kind = "run"  # of the current (or last) task: whose tab's status line to use
        self.hooks = list(hooks)
        self.controls = make_controls(**values)
        self._sweep_fn, why = sweep_function()

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
        self.status = ipw.HTML("<i>ready</i>")  # the Run tab's
        self.sweep_status = ipw.HTML("<i>ready</i>")
        self.output = ipw.Output()
        self.sweep_output = ipw.Output()
        self.live = LiveView()
        self.sweep_live = LiveView(chart=True)
        if self._sweep_fn is None:
            self.sweep_output.outputs = (html_output(f"<p><b>{html.escape(why)}</b>.</p>", why),)

        self.tabs = ipw.Tab(tabs(self))
        self.tabs.set_title(0, "Run")
        self.tabs.set_title(1, "Sweep")
        super().__init__([ipw.HTML("<h3>qlab explorer</h3>"), shared_controls(c), self.tabs])
        self.add_class("qlab-explorer")

        c["workload"].observe(self._on_workload, names="value")
        c["backoff"].observe(self._on_backoff, names="value")
        self._on_workload()
        self._on_backoff()
        self.run_button.on_click(lambda _: self.start_run())
        self.stop_button.on_click(lambda _: self.stop())
        self.sweep_button.on_click(lambda _: self.start_sweep())

    # -- controls -> a handler and a policy -----------------------------------------------

    def _on_workload(self, _: Any = None) -> None:
        self.controls["ms"].disabled = "ms" not in workload_params(self.controls["workload"].value)

    def _on_backoff(self, _: Any = None) -> None:
        self.controls["base"].disabled = self.controls["backoff"].value == "none"

    def handler(self) -> Callable[[Any], Any]:
        """The workload that the controls describe (wrapped in ``flaky`` for failures)."""
        return handler_from(self.controls)

    def retry(self) -> Any:
        """The retry policy that the controls describe."""
        return retry_from(self.controls)

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
            self.sweep_status.value = "<b>sweeps are not available</b>: qlab.sweep is missing"
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

    def _status(self, kind: str) -> Any:
        """The status line of the tab of ``kind`` ("run" or "sweep")."""
        return self.status if kind == "run" else self.sweep_status

    def _start(self, kind: str, task: Callable[..., Any], **params: Any) -> bool:
        status = self._status(kind)
        with self._lock:
            if self.running:
                other = f"a {self._kind}"
                status.value = f"<b>busy</b>: {other} is going on; wait for it, or stop it"
                return False
            self.error = self.result = None
            self._stop.clear()
            try:  # read the shared controls here, in the caller's thread
                params.update(handler=self.handler(), retry=self.retry())
            except (ValueError, TypeError) as exc:
                self.error = exc
                status.value = f"<b>error</b>: {html.escape(str(exc))}"
                return False
            params["seed"] = self.controls["seed"].value
            self._kind = kind
            self.run_button.disabled = self.sweep_button.disabled = True
            self.stop_button.disabled = False  # a run and a sweep both take stop=
            status.value = f"<b>{kind} started</b>, see the counts below"
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
        status = self._status(kind)
        try:
            self.result = task(**params)
            meta = getattr(self.result, "meta", {}) or {}
            done = "stopped" if meta.get("interrupted") else "finished"
            status.value = f"<i>{kind} {done}</i>"
        except BaseException as exc:  # shown in the app and raised again by wait()
            self.error = exc
            out.outputs = (*out.outputs, error_output(exc))
            status.value = f"<b>{kind} failed</b>: {html.escape(repr(exc))}"
        finally:
            self.run_button.disabled = False
            self.sweep_button.disabled = self._sweep_fn is None
            self.stop_button.disabled = True

    def _run_task(self, handler: Any, retry: Any, seed: int, workers: int, backend: str, jobs: int):
        from qlab.engine.runner import run as run_jobs

        self.output.outputs = ()
        self.live.expect(jobs)
        # run(stop=event) cancels the pending jobs (and the payloads not yet taken) when
        # Stop sets the event, lets running attempts finish, and still returns the Run
        run = run_jobs(
            handler,
            range(jobs),
            workers,
            backend=backend,
            retry=retry,
            seed=seed,
            hooks=[self.live, *self.hooks],
            stop=self._stop,
        )
        note = ""
        if run.meta.get("interrupted"):
            never = int(run.jobs["first_start_s"].isna().sum())
            note = "Stopped: pending jobs were cancelled, running attempts finished."
            note += f" {never:,} of the {jobs:,} jobs never started."
        self.last_run = run
        self.output.outputs = run_outputs(run, note)
        return run

    def _sweep_task(self, handler: Any, retry: Any, seed: int, **params: Any) -> Any:
        self.sweep_output.outputs = ()
        n_points = len(params["workers"]) * len(params["backend"]) * params["repeats"]
        self.sweep_live.reset(points=n_points)
        self.sweep_live.expect(params["jobs"])
        assert self._sweep_fn is not None
        sweep = self._sweep_fn(
            workload=handler,
            retry=retry,
            seed=seed,
            progress=False,
            hooks=[self.sweep_live, *self.hooks],
            stop=self._stop,  # the Stop button ends a sweep too
            **params,
        )
        self.last_sweep = sweep
        chart, tables = sweep_outputs(sweep)
        # one chart: the final one, with its fit, takes the live chart's place
        if self.sweep_live.chart is not None:
            self.sweep_live.chart.outputs = (chart,)
            self.sweep_output.outputs = (tables,)
        else:
            self.sweep_output.outputs = (chart, tables)
        return sweep

    # -- a static picture, for readers without a kernel ------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = dict(super()._repr_mimebundle_(**kwargs) or {})
        bundle["text/html"] = self.snapshot_html()
        return bundle

    def snapshot_html(self) -> str:
        """The app as static HTML: settings, status, and the last run's and sweep's results.

        A notebook stores it next to the live widget, so that a reader without a kernel
        (a fresh clone, GitHub) sees a readable picture instead of a broken widget.
        """
        return explorer_html(self)

    def snapshot(self) -> Any:
        """The static picture of :meth:`snapshot_html`, as an object that notebooks show."""
        from IPython.display import HTML

        return HTML(self.snapshot_html())

    def stop(self) -> None:
        """Stop the current run or sweep (what the Stop button does): cancel its pending
        jobs; running attempts finish. Then the results (a sweep's points measured
        before the stop) are shown as usual."""
        with self._lock:
            if not self.running:
                return
            self._stop.set()
            kind = self._kind
        self._status(kind).value = "<b>stopping…</b> (running attempts finish)"

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
        """Stop a run or a sweep, wait for it, close the widget."""
        self.stop()
        thread = self._thread
        if thread is not None:
            thread.join()
        super().close()
