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

    The semantics, decided once (trio's ``MockClock`` with ``autojump_threshold=0``
    is the model, with qlab's timers in place of trio's sleeps):

    - **Timers jump.** When every worker waits for a timer of the run (a retry's
      backoff, a rate-limit token, an open-loop arrival), the clock jumps straight to
      the earliest one: instant, and the delays in the trace are exact.
    - **A handler's own time does not count.** Handlers run in real threads; their
      real time (``time.sleep``, computing, I/O) is invisible to the fake clock, so an
      attempt takes 0 s on it unless the handler (or the test) calls :meth:`advance`.
      Hence a handler that ``time.sleep(3)`` under ``timeout=1`` is ``ok`` on a
      FakeClock, and ``timeout`` on the real clock: the FakeClock cannot tell a slow
      handler from a quick one, and it never moves while a handler runs.
    - **Deadlines follow the clock.** Attempt deadlines, ``qlab.current().cancelled``
      and ``remaining()`` read this clock. A handler that spends its time *on the run's
      clock* (``clock.advance(3)``, as a test's fake slow dependency does) is past its
      ``timeout=1`` deadline exactly as on the real clock: its cancel token is true,
      ``cancelled.check()`` raises, and the attempt is a ``timeout`` lasting 3.0 s.

    So timeouts are instant and exact for time that passes on the clock, and invisible
    for real time that a handler spends; a test of timeouts advances the clock.
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
