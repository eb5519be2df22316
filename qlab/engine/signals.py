"""Interrupts: Ctrl-C, SIGTERM and ``run(stop=event)``, raised only where it is safe.

While ``qlab.run`` runs in the main thread, SIGINT and SIGTERM are only *noted* by a
signal handler; the engine raises them where it waits (between jobs, never halfway
through an update of the queue's books), as :class:`Interrupted` exceptions that
are KeyboardInterrupts, so one path handles all three. The old handlers come back
when the run ends.

Example:
    >>> import threading
    >>> stop = threading.Event()
    >>> watch = Interrupts(stop=stop)
    >>> watch.check()          # nothing yet
    >>> stop.set()
    >>> try:
    ...     watch.check()
    ... except Stopped as exc:
    ...     exc.why
    'stopped'
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["Interrupted", "Interrupts", "Stopped", "Terminated", "noting_signals"]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT), as the engine raises it; ``why`` goes to ``run.meta``."""

    why = "SIGINT"


class Terminated(Interrupted):
    """SIGTERM, delivered as an interrupt so that one path handles both."""

    why = "SIGTERM"


class Stopped(Interrupted):
    """``run(stop=event)`` was set: handled as an interrupt."""

    why = "stopped"


def why(exc: BaseException) -> str:
    """The ``run.meta["interrupted"]`` of an interrupt (a plain Ctrl-C is SIGINT)."""
    return getattr(exc, "why", "SIGINT")


class Interrupts:
    """The signals noted during a run, and its stop event, checked where safe.

    Args:
        noted: the list that the signal handler appends signal numbers to.
        stop: a ``threading.Event`` that stops the run when set.
    """

    def __init__(self, noted: list[int] | None = None, stop: Any = None) -> None:
        if stop is not None and not (hasattr(stop, "is_set") and hasattr(stop, "set")):
            raise TypeError(f"stop must be a threading.Event or None, got {stop!r}")
        self.noted = noted if noted is not None else []
        self.stop = stop
        self.seen = 0
        self._stopped = False
        self._failure: BaseException | None = None  # raised by the next check

    def fail(self, exc: BaseException) -> None:
        """Make the next :meth:`check` raise ``exc`` (a backend that cannot run jobs
        any more, from a worker's thread; the first such error wins)."""
        if self._failure is None:
            self._failure = exc

    def check(self) -> None:
        """Raise the interrupt noted since the last check, if any, or the error a
        worker's thread handed to :meth:`fail` (once)."""
        if self._failure is not None:
            exc, self._failure = self._failure, None
            raise exc
        if self.stop is not None and not self._stopped and self.stop.is_set():
            self._stopped = True
            raise Stopped()
        if len(self.noted) > self.seen:
            self.seen = len(self.noted)
            raise Terminated() if self.noted[-1] == signal.SIGTERM else Interrupted()

    def unseen(self) -> str | None:
        """A signal that came after the last check (while joining), by name."""
        if len(self.noted) > self.seen:
            return "SIGTERM" if self.noted[-1] == signal.SIGTERM else "SIGINT"
        return None


@contextlib.contextmanager
def noting_signals() -> Iterator[list[int]]:
    """In the main thread, note SIGINT and SIGTERM instead of raising them; yields
    the list of noted signal numbers (elsewhere, signals are left alone)."""
    noted: list[int] = []
    old: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, lambda signum, frame: noted.append(signum))
    try:
        yield noted
    finally:
        for signum, handler in old.items():
            signal.signal(signum, handler)
