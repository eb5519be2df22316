"""Workloads for the asyncio backend: ``async def`` handlers.

An async workload may offer a blocking twin, ``__qlab_sync__()``: a backend that
runs plain functions (thread, process, inline) runs the twin instead, so one
workload sweeps across threads and the event loop (``run.meta["workload"]`` names
the workload as given). ``asleep(ms=)``'s twin is ``sleep(ms=)``.

Example:
    >>> import qlab
    >>> from qlab.workloads.aio import asleep
    >>> qlab.run(asleep(ms=1), range(100), workers=10, backend="asyncio").summary()["ok"]
    100
    >>> run = qlab.run(asleep(ms=1), range(10), workers=2, backend="thread")
    >>> run.summary()["ok"], run.meta["workload"]
    (10, 'asleep(ms=1)')
    >>> asleep(ms=-5)
    Traceback (most recent call last):
    ...
    ValueError: asleep: ms must be >= 0, got -5
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from qlab.workloads.checks import number

__all__ = ["asleep"]


@dataclass(frozen=True)
class asleep:
    """Awaits ``asyncio.sleep(ms / 1000)``: an I/O-like job for the asyncio backend
    (a timeout or a stop cancels it)."""

    ms: float = 1.0

    def __post_init__(self) -> None:
        number("asleep", "ms", self.ms, low=0)

    async def __call__(self, payload: Any) -> Any:
        await asyncio.sleep(self.ms / 1000)
        return payload

    def __qlab_sync__(self) -> Any:
        """The blocking twin, for backends that run plain functions."""
        from qlab.workloads.synthetic import sleep

        return sleep(ms=self.ms)
