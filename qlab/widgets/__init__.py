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

from qlab.widgets.explorer import Explorer, explore
from qlab.widgets.live import LiveView
from qlab.widgets.outputs import figure_output, html_output

__all__ = ["Explorer", "LiveView", "explore", "figure_output", "html_output"]
