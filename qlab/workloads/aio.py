"""Workloads for the asyncio backend: ``async def`` handlers.

Example:
    >>> import qlab
    >>> from qlab.workloads.aio import asleep
    >>> qlab.run(asleep(ms=1), range(100), workers=10, backend="asyncio").summary()["ok"]
    100
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
