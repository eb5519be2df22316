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
import sys
import threading
import weakref
from collections.abc import Iterable
from typing import Any

__all__ = ["Hook", "HookSet", "LogProgress", "abort"]

log = logging.getLogger("qlab")


class Hook:
    """Base class of engine observers; every method is a no-op.

    Example:
        >>> import qlab
        >>> class Ends(qlab.Hook):
        ...     def on_end(self, run):
        ...         print(len(run.jobs), "jobs")
        >>> _ = qlab.run(abs, range(5), hooks=[Ends()])
        5 jobs
    """

    #: True for a hook that shows progress itself (a bar, the live view): a sweep whose
    #: ``progress=`` is left at None then draws no bar of its own beside it.
    shows_progress = False

    def on_start(self, meta: dict[str, Any]) -> None:
        """The pool's workers are up; ``meta`` is the run's provenance so far."""

    def on_progress(self, counts: dict[str, Any]) -> None:
        """Counters so far: submitted, ok, failed, cancelled, retries, attempts,
        unfinished, elapsed_s."""

    def on_end(self, run: Any) -> None:
        """The run is over; ``run`` is the final :class:`qlab.Run`."""

    def on_abort(self, error: BaseException) -> None:
        """The pool was not made (``error``: a bad option, say): no ``on_start`` and no
        ``on_end`` follow. A hook that holds a resource for the run lets it go."""


class LogProgress(Hook):
    """``progress=True`` without a display: a line on the ``qlab`` logger per second."""

    shows_progress = True

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


class HookSet:
    """The hooks of one pool. A hook that raises anything (SystemExit included) is
    removed and logged at WARNING, once per hook object, as trio does with its
    instruments: observers never take a run down, hang it, or leak its workers.

    Example:
        >>> class Bad(Hook):
        ...     def on_progress(self, counts):
        ...         raise SystemExit(1)
        >>> hooks = HookSet([Bad()])
        >>> hooks.call("on_progress", {})
        >>> len(hooks)
        0
    """

    def __init__(self, hooks: Iterable[Any] = ()) -> None:
        if hooks is None or isinstance(hooks, Hook | str) or not isinstance(hooks, Iterable):
            raise TypeError(f"hooks must be a list of qlab.Hook instances, got {hooks!r}")
        self._hooks = list(hooks)
        bad = [h for h in self._hooks if not isinstance(h, Hook)]
        if bad:
            raise TypeError(f"hooks must be qlab.Hook instances, got {bad[0]!r}")
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._hooks)

    def add(self, hook: Hook) -> None:
        self._hooks.append(hook)

    def call(self, name: str, arg: Any) -> None:
        """Call method ``name`` of every hook; remove a hook that raises."""
        for hook in list(self._hooks):
            try:
                getattr(hook, name)(arg)
            except KeyboardInterrupt:
                if threading.current_thread() is threading.main_thread():
                    raise  # a real Ctrl-C in the caller's thread is the caller's
                self._drop(hook, name)
            except BaseException:
                self._drop(hook, name)

    def _drop(self, hook: Hook, name: str) -> None:
        with self._lock:
            if hook not in self._hooks:
                return
            self._hooks.remove(hook)
        if _first_failure(hook):
            _tell(f"hook {hook!r} failed in {name}; it is removed from this run")


_FAILED: weakref.WeakSet = weakref.WeakSet()
_FAILED_IDS: set[int] = set()  # hooks that cannot be weakly referenced


def _first_failure(hook: Hook) -> bool:
    """Whether this hook object fails for the first time (a sweep passes one hook to
    every run: its failures are said once, not once per run)."""
    try:
        if hook in _FAILED:
            return False
        _FAILED.add(hook)
    except TypeError:
        if id(hook) in _FAILED_IDS:
            return False
        _FAILED_IDS.add(id(hook))
    return True


def _tell(message: str) -> None:
    """A WARNING on the ``qlab`` logger, with the traceback. When nothing handles it
    (qlab's NullHandler only, no logging configured), Python's last-resort handler
    prints it on stderr, as it would without the NullHandler: a failing hook is never
    silent."""
    log.warning(message, exc_info=True)
    if (
        not logging.getLogger().handlers
        and all(isinstance(h, logging.NullHandler) for h in log.handlers)
        and log.propagate
        and logging.lastResort is not None
    ):
        logging.lastResort.handle(log.makeRecord(
            log.name, logging.WARNING, __file__, 0, message, (), sys.exc_info()
        ))  # fmt: skip


def abort(hooks: Any, error: BaseException) -> None:
    """Tell ``hooks`` (as given to a pool, checked or not) that no run comes: a
    check before the pool failed with ``error``."""
    try:
        hook_set = HookSet(hooks)
    except TypeError:
        return  # not hooks at all: nothing holds a resource
    hook_set.call("on_abort", error)
