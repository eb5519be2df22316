"""What else used the machine while a sweep point ran: CPUs of other processes, load.

A sweep measures the machine as much as the code. :class:`LoadMeter` takes two readings
with psutil, before and after a point, and reports how many CPUs *other* processes kept
busy meanwhile: the whole machine's busy CPU time (every CPU, minus idle and iowait)
minus this process's and its children's (the worker processes), per second of wall time.
It also reads the 1-minute load average. A point is *busy* when other processes used
``BUSY_CPUS`` or more (0.15 CPUs: on 2 cores, a neighbour that takes a few percent of one
core already moves throughput by more than the run-to-run noise of a quiet machine).

Example:
    >>> meter = LoadMeter()
    >>> reading = meter.stop()
    >>> sorted(reading)
    ['load_avg', 'others_cpus']
"""

from __future__ import annotations

import contextlib
import math
import os
import time

__all__ = ["BUSY_CPUS", "LoadMeter"]

#: Other processes' CPUs at or above which a point is flagged as run under load.
BUSY_CPUS = 0.15


def _machine_busy_s() -> float:
    import psutil

    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def _own_s() -> float:
    """CPU seconds of this process, its live children and its finished, waited children."""
    import psutil

    me = psutil.Process()
    total = 0.0
    procs = [me]
    with contextlib.suppress(psutil.Error):
        procs += me.children(recursive=True)
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.Error:  # a worker that ended between the listing and the reading
            continue
        total += t.user + t.system
    t = os.times()
    return total + t.children_user + t.children_system


class LoadMeter:
    """Started on creation; :meth:`stop` returns ``others_cpus`` and ``load_avg``
    (NaN where the platform has no such reading)."""

    def __init__(self) -> None:
        self._t0 = time.perf_counter()
        try:
            self._busy0, self._own0 = _machine_busy_s(), _own_s()
        except Exception:  # no psutil or no readable counters: measure nothing
            self._busy0 = self._own0 = math.nan

    def stop(self) -> dict[str, float]:
        """The readings since creation: ``others_cpus`` (>= 0) and ``load_avg``."""
        wall = time.perf_counter() - self._t0
        try:
            busy, own = _machine_busy_s() - self._busy0, _own_s() - self._own0
            others = max(busy - own, 0.0) / wall if wall > 0 else math.nan
        except Exception:
            others = math.nan
        try:
            load = os.getloadavg()[0]
        except (OSError, AttributeError):
            load = math.nan
        return {"others_cpus": float(others), "load_avg": float(load)}
