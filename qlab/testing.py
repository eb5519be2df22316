"""Helpers for testing code that uses qlab (and qlab itself).

:class:`FakeClock` replaces the engine's clock: time stands still while jobs run and
jumps straight to the next backoff deadline when nothing else can happen, so a test
of a retry schedule with minutes of backoff runs in milliseconds and sees the exact
delays::

    >>> import qlab
    >>> from qlab.testing import FakeClock
    >>> flaky = qlab.workloads.flaky(transient=1.0)
    >>> retry = qlab.Retry(max_retries=2, backoff=qlab.Constant(60))
    >>> run = qlab.run(flaky, range(1), retry=retry, clock=FakeClock())
    >>> run.attempts.start_s.tolist()
    [0.0, 60.0, 120.0]
"""

from __future__ import annotations

import threading

__all__ = ["FakeClock"]


class FakeClock:
    """A clock that only moves when the engine has nothing to do but wait.

    Attempts take no time on it; backoff waits are skipped (the clock jumps ahead).
    Attempt timeouts still use the real clock.
    """

    autojump = True

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward (never backward)."""
        with self._lock:
            self._now += max(seconds, 0.0)
