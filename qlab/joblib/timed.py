"""A joblib batch that records where and when it runs, for :mod:`qlab.joblib.tracing`.

:class:`Timed` wraps a batch on its way to a backend. Run in the tracing process (a
thread backend), it writes its start, end and (process, thread) straight into the
records waiting for its token (:data:`OPEN`); run elsewhere (a worker process), it
returns :class:`Done` (the results with the times) or raises the batch's exception
with the times on it (``_qlab_times``), and the parent notes them.

Example:
    >>> OPEN[7] = []  # no trace waits for token 7
    >>> Timed(lambda: [1, 2], 7)()
    [1, 2]
"""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Any

__all__ = ["NAN", "OPEN", "TIMES", "Done", "Timed", "note"]

#: token -> the (trace, record index) pairs its batch fills
OPEN: dict[int, list[tuple[Any, int]]] = {}
TIMES = "_qlab_times"  # the attribute that carries a failed batch's times
NAN = math.nan


class Timed:
    """A batch that records where and when it runs (see the module docs)."""

    __slots__ = ("batch", "home", "token")

    def __init__(self, batch: Any, token: int) -> None:
        self.batch, self.token, self.home = batch, token, os.getpid()

    @property
    def items(self) -> Any:  # joblib's Dask backend unpacks a batch's tasks
        return self.batch.items

    def __len__(self) -> int:
        return len(self.batch)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        local = os.getpid() == self.home
        c0 = NAN if local else time.thread_time()
        t0 = time.perf_counter()
        try:
            value = self.batch(*args, **kwargs)
        except BaseException as exc:
            times = _times(t0, c0)
            if local:
                note(self.token, times)
            else:
                setattr(exc, TIMES, times)
            raise
        times = _times(t0, c0)
        if local:
            note(self.token, times)
            return value
        return Done(value, times)


class Done:
    """A batch's results from another process, with its times."""

    __slots__ = ("times", "value")

    def __init__(self, value: Any, times: tuple) -> None:
        self.value, self.times = value, times

    def __reduce__(self) -> tuple:
        return (Done, (self.value, self.times))


def _times(t0: float, c0: float) -> tuple:
    t1 = time.perf_counter()
    cpu = NAN if math.isnan(c0) else time.thread_time() - c0
    return (t0, t1, cpu, (os.getpid(), threading.get_ident()))


def note(token: int, times: tuple) -> None:
    """Write a batch's times into every record that waits for its token."""
    for t, i in OPEN.get(token, ()):
        t.note(i, *times)
