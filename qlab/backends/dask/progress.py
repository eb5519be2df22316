"""The parent's handle on one slot's progress file (see :mod:`qlab.backends.dask_remote`).

A worker on the parent's own machine shares its temporary folder: the parent maps
the same file and reads it for free, as the process backend reads its shared
memory. A worker on another machine is asked through ``client.run`` (a round trip,
so the running attempt is read at most every 0.2 s, and only when a timeout is set).
The flags the parent sets (cancel, stop) are also kept on the parent's side, so
that they can be asked without a round trip.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from qlab.backends.dask.remote import ProgressFile, progress_op

__all__ = ["Progress", "SlotFlag"]

_REMOTE_READ_EVERY_S = 0.2
_NOTHING = (-1, 0.0, False, False, 0)


class Progress:
    """One slot's progress file on its worker's host.

    Example:
        >>> import os, tempfile
        >>> from qlab.backends.dask.cluster import WorkerInfo
        >>> info = WorkerInfo("tcp://127.0.0.1:1", ("me", os.getpid(), 0.0, 0.0), None, 0.0, True)
        >>> p = Progress(os.path.join(tempfile.mkdtemp(), "slot0"), info, client=None)
        >>> p.running(), p.cancelled()
        ((-1, 0.0), False)
        >>> p.set(2, 1.0); p.cancelled()
        True
        >>> p.unlink()
    """

    def __init__(self, path: str, info: Any, client: Any) -> None:
        self.path, self.info, self.client = path, info, client
        self._file = ProgressFile(path) if info.local else None
        self._flags = {2: False, 3: False}
        self._read_at, self._last = 0.0, _NOTHING

    def _op(self, op: str, index: int = 0, value: float = 0.0, via: Any = None) -> Any:
        address = (via or self.info).address
        out = self.client.run(progress_op, self.path, op, index, value, workers=[address])
        return out[address]

    def _apply(self, op: str, *args: Any) -> None:
        """``op`` (set, reset, unlink) on the file: here if it is local, else on its
        worker, best effort (a worker that is gone has nothing left to change)."""
        if self._file is not None:
            getattr(self._file, op)(*args)
        else:
            with contextlib.suppress(Exception):
                self._op(op, *args)

    def read(self) -> tuple[int, float, bool, bool, int]:
        """(running index or -1, its start on the worker's clock, cancel, stop, batch)."""
        if self._file is not None:
            return self._file.read()
        now = time.monotonic()
        if now - self._read_at >= _REMOTE_READ_EVERY_S:
            self._read_at = now
            with contextlib.suppress(Exception):
                self._last = tuple(self._op("read"))
        return self._last

    def running(self) -> tuple[int, float]:
        """The running attempt's index in its batch (or -1) and its start."""
        i, t0, *_ = self.read()
        return i, t0

    def set(self, index: int, value: float) -> None:
        """Set the cancel (2) or stop (3) flag."""
        self._flags[index] = bool(value)
        self._apply("set", index, value)

    def cancelled(self) -> bool:
        return self._file.is_set() if self._file is not None else self._flags[2]

    def stopped(self) -> bool:
        return self._flags[3]

    def reset(self) -> None:
        """A fresh worker: nothing running, no flag set (the stop flag stays if the
        pool already stopped intake)."""
        stop = self._flags[3]
        self._flags[2] = False
        self._apply("reset")
        if stop:
            self.set(3, 1.0)

    def moved(self, info: Any) -> Progress:
        """The same slot's progress on its new worker (same file on the same host)."""
        new = Progress(self.path, info, self.client)
        new._flags = dict(self._flags)
        return new

    def after_death(self, current: Progress) -> tuple[int | None, float | None, int | None]:
        """What the dead worker was running, as (index, start, batch): read from its
        file directly, or through ``current`` (the replacement) on the same host;
        (None, None, None) if nobody can read it."""
        if self._file is not None:
            i, t0, _, _, number = self._file.read()
            return i, t0, number
        if current is not self and current.info.host == self.info.host:
            with contextlib.suppress(Exception):
                i, t0, _, _, number = self._op("read", via=current.info)
                return i, t0, number
        return None, None, None

    def unlink(self) -> None:
        self._apply("unlink")


class SlotFlag:
    """The parent's handle on a slot's cancel flag (the engine calls ``set()``); it
    follows the slot to a replacement worker.

    Example:
        >>> flag = SlotFlag(lambda: None, threading.Event())
        >>> flag.wait(0)
        False
    """

    def __init__(self, progress: Callable[[], Any], stopped: threading.Event) -> None:
        self._progress, self._stopped = progress, stopped

    def set(self) -> None:
        self._progress().set(2, 1.0)

    def is_set(self) -> bool:
        p = self._progress()
        return p is not None and p.cancelled()

    def wait(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout) or self.is_set()
