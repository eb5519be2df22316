"""Hooks: how progress bars, metrics and logs observe the engine.

A hook is an object with the no-op methods of :class:`Hook`; override the ones you
need and pass it as ``qlab.run(..., hooks=[MyHook()])``. The engine calls
``on_progress`` a few times a second from its coordinator thread (never once per job),
so a hook costs nothing on the hot path.

Example:
    >>> import qlab
    >>> class Count(qlab.Hook):
    ...     def on_end(self, run):
    ...         self.jobs = len(run.jobs)
    >>> hook = Count()
    >>> _ = qlab.run(abs, range(10), hooks=[hook])
    >>> hook.jobs
    10
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["Hook", "LogProgress"]

log = logging.getLogger("qlab")


class Hook:
    """Base class of engine observers; every method is a no-op."""

    def on_start(self, meta: dict[str, Any]) -> None:
        """The pool's workers are up; ``meta`` is the run's provenance so far."""

    def on_progress(self, counts: dict[str, Any]) -> None:
        """Counters so far: submitted, ok, failed, cancelled, retries, attempts,
        unfinished, elapsed_s."""

    def on_end(self, run: Any) -> None:
        """The run is over; ``run`` is the final :class:`qlab.Run`."""


class LogProgress(Hook):
    """``progress=True`` without a display: a line on the ``qlab`` logger per second."""

    def __init__(self, every_s: float = 1.0) -> None:
        self.every_s = every_s
        self._last = -1e9

    def on_progress(self, counts: dict[str, Any]) -> None:
        if counts["elapsed_s"] - self._last < self.every_s:
            return
        self._last = counts["elapsed_s"]
        done = counts["ok"] + counts["failed"] + counts["cancelled"]
        log.info(
            "progress: %d/%d done (%d ok, %d failed, %d retries) in %.1fs",
            done,
            counts["submitted"],
            counts["ok"],
            counts["failed"],
            counts["retries"],
            counts["elapsed_s"],
        )
