"""Jupyter widgets: a live view of runs and sweeps, and the explorer app.

- :class:`LiveView` (:mod:`qlab.widgets.live`) is a hook (see :mod:`qlab.hooks`) that
  shows a run as it goes: completed, failed, retried and throughput, updated a few times
  a second; with ``chart=True`` it also grows a scaling chart by one point per run.
- :func:`explore` (:mod:`qlab.widgets.explorer`) builds :class:`Explorer`, an app to set
  up a run (workload, workers, backend, failures, retries, backoff, seed), start and stop
  it, and see its summary, timeline and latency; and to sweep worker counts and see the
  scaling chart with its Universal Scalability Law fit.
- :mod:`qlab.widgets.outputs`: outputs as data, which a background thread may show.

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

from collections.abc import Iterable
from typing import Any

from qlab.hooks.base import Hook
from qlab.widgets.explorer import Explorer
from qlab.widgets.live import LiveView
from qlab.widgets.outputs import figure_output, html_output

__all__ = ["Explorer", "LiveView", "explore", "figure_output", "html_output"]


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
        >>> app = explore(workload="seed", workers=4, jobs=100)
        >>> app.run_button.click()
        >>> int(app.wait(60).summary()["ok"])
        10
        >>> app.close()
    """
    return Explorer(hooks=hooks, **values)
