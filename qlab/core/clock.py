"""The one clock a run uses: attempts, deadlines, backoff and the trace read it.

Every part of a run takes time from the same object, so a test can swap in
:class:`qlab.testing.FakeClock` and see exact, instant schedules (as trio's
``MockClock`` does): the batch loop, the cancel tokens that handlers see, the
coordinator's deadlines and the backoff timers.

Example:
    >>> REAL_CLOCK.now() <= REAL_CLOCK.now()
    True
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["REAL_CLOCK", "Clock", "RealClock"]


class Clock(Protocol):
    """What the engine needs of a clock."""

    autojump: bool  # may the engine jump it ahead when everything waits?

    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    def advance(self, seconds: float) -> None:
        """Move ahead (only clocks with ``autojump``)."""
        ...


class RealClock:
    """``time.perf_counter``: monotonic, and shared by threads and processes on one
    machine (CLOCK_MONOTONIC on Linux), so worker processes time on the same scale."""

    autojump = False
    now = staticmethod(time.perf_counter)

    def advance(self, seconds: float) -> None:
        raise TypeError("the real clock cannot be advanced")

    def __reduce__(self) -> str:
        return "REAL_CLOCK"  # unpickles as the module's one instance


REAL_CLOCK = RealClock()
