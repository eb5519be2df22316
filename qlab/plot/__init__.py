"""Charts for qlab runs (attempts/jobs frames) and sweeps (one row per backend, workers, repeat).

Every function takes ``ax=None`` (a new figure is made when None) and returns the Axes it drew
on, so charts compose into your own figures. Inputs are duck-typed DataFrames (see the column
contract in ``docs/design.md``); nothing here imports the engine.

- :mod:`qlab.plot.run`: one run: :func:`timeline`, :func:`latency`, :func:`queue_depth`, and
  the ``run.plot`` accessor :class:`RunPlots`.
- :mod:`qlab.plot.sweep`: a sweep: :func:`scaling`, :func:`speedup`, :func:`efficiency`,
  :func:`latency_percentiles`, :func:`queue_wait`, and the ``sweep.plot`` accessor
  :class:`SweepPlots`.
- :mod:`qlab.plot.contention`: CPU vs wall time per attempt (:func:`contention`,
  :func:`contention_summary`), for a run or a sweep's kept runs.

Example:
    >>> import qlab
    >>> run = qlab.run(qlab.workloads.sleep(ms=1), range(20), workers=2)
    >>> ax = timeline(run.attempts)
    >>> ax.get_xlabel()
    'time since run start (s)'
    >>> ax.figure.savefig("timeline.png")  # doctest: +SKIP
"""

from __future__ import annotations

from qlab.plot.contention import contention, contention_summary
from qlab.plot.run import RunPlots, latency, queue_depth, timeline
from qlab.plot.style import OUTCOME_COLORS, readable_axes
from qlab.plot.sweep import (
    SweepPlots,
    efficiency,
    latency_percentiles,
    queue_wait,
    scaling,
    speedup,
)

__all__ = [
    "OUTCOME_COLORS",
    "RunPlots",
    "SweepPlots",
    "contention",
    "contention_summary",
    "efficiency",
    "latency",
    "latency_percentiles",
    "queue_depth",
    "queue_wait",
    "readable_axes",
    "scaling",
    "speedup",
    "timeline",
]
