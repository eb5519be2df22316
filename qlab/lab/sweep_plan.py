"""A sweep's time budget: parse it, plan jobs per run from a calibration, and keep to it.

A sweep with ``budget="1min"`` and no ``jobs=`` first calibrates: on each backend (and
queue) one short unrecorded run on 1 worker and one on the most workers, each about
``CALIBRATION_SHARE / 2`` of the budget (the second is also the warm-up). Amdahl's law
through those two throughputs, ``X(N) = X(1) N / (1 + s (N - 1))``, estimates every
point's throughput; it underestimates a curve that peaks in between, so a plan errs on
the short side. Every run of the sweep then gets the same share of what is left
(``PLAN_SHARE`` of it, the rest kept in reserve), and a point at ``N`` workers runs
``X(N) x share`` jobs, between ``min_jobs(N)`` and ``max_jobs``.

While the sweep runs, :class:`Budget` gives each point an equal share of the time left
and grants a repeat beyond the ones that must run only if the last run of the point,
taken again, fits in that share (give or take half a run) and in the budget.

Example:
    >>> parse_budget("2min"), parse_budget("1m30s"), parse_budget(45), parse_budget(None)
    (120.0, 90.0, 45.0, None)
    >>> plan = plan_jobs([1, 2, 4], x1=10.0, xmax=40.0, repeats=3, seconds=9.0, overhead_s=0.0)
    >>> plan.jobs
    {1: 10, 2: 20, 4: 40}
    >>> plan.describe(points=3, budget_s=10.0)
    '3 points × ~10 to 40 jobs × 3 repeats ≈ 9s (budget 10s)'
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CALIBRATION_SHARE", "DEFAULT_BUDGET", "Budget", "JobsPlan", "duration_text", "min_jobs",
    "parse_budget", "plan_jobs",
]  # fmt: skip

#: The default budget of ``qlab.sweep``: a notebook cell's patience.
DEFAULT_BUDGET = "1min"
#: The share of the budget that the calibration runs may take, all backends together.
CALIBRATION_SHARE = 0.1
#: The share of the rest that the plan fills; the remainder absorbs noise and overheads.
PLAN_SHARE = 0.85
_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|sec|min|s|m|h)")


def parse_budget(budget: Any) -> float | None:
    """Seconds from ``"90s"``, ``"2min"``, ``"1m30s"``, ``"1h"``, a number of seconds, or
    None (no budget). A ValueError names the parameter otherwise."""
    if budget is None:
        return None
    if isinstance(budget, int | float) and not isinstance(budget, bool):
        seconds = float(budget)
    elif isinstance(budget, str):
        text = budget.strip().lower().replace(" ", "")
        parts = _PART.findall(text)
        joined = "".join(f"{n}{u}" for n, u in parts)
        seconds = sum(float(n) * _UNITS[u] for n, u in parts) if joined == text else math.nan
    else:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(
            f"budget must be a duration like '90s', '2min' or '1m30s', a number of seconds "
            f"> 0, or None, got {budget!r}"
        )
    return seconds


def duration_text(seconds: float) -> str:
    """``1m50s``, ``45s``, ``2h05m``, ``0.4s``: a duration for people.

    Example:
        >>> duration_text(110), duration_text(0.42), duration_text(7500)
        ('1m50s', '0.4s', '2h05m')
    """
    if seconds < 10:
        return f"{seconds:.1f}s".replace(".0s", "s")
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s".replace("m00s", "m")
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def min_jobs(workers: int) -> int:
    """The fewest jobs a run gets: two per worker, and at least 5."""
    return max(5, 2 * workers)


@dataclass(frozen=True)
class JobsPlan:
    """Jobs per run at each worker count, repeats per point, and the estimated seconds."""

    jobs: dict[int, int]
    repeats: int
    estimate_s: float

    def describe(self, points: int, budget_s: float | None) -> str:
        """``16 points × ~47 to 160 jobs × 3 repeats ≈ 52s (budget 1m)``."""
        lo, hi = min(self.jobs.values()), max(self.jobs.values())
        jobs = f"{lo:,}" if lo == hi else f"~{lo:,} to {hi:,}"
        text = f"{points} points × {jobs} jobs × {self.repeats} repeats"
        text += f" ≈ {duration_text(self.estimate_s)}"
        return text + (f" (budget {duration_text(budget_s)})" if budget_s else "")


def plan_jobs(
    workers: list[int],
    *,
    x1: float,
    xmax: float,
    repeats: int,
    seconds: float,
    overhead_s: float,
    max_jobs: int = 1000,
) -> JobsPlan:
    """Jobs per run so that ``len(workers) * repeats`` runs fill ``seconds``, each the same
    time, from the throughputs measured on 1 worker (``x1``) and on the most (``xmax``).

    Args:
        workers: the worker counts of one backend (ascending). x1, xmax: jobs/s measured.
        repeats: runs per point. seconds: the time to fill. overhead_s: a run's time
            beyond its jobs (pool start and stop). max_jobs: the most jobs per run.
    """
    top = max(workers)
    x1 = max(x1, 1e-9)
    # Amdahl's s through both points (s > 1: the most workers were slower than one)
    s = max(0.0, (x1 * top / max(xmax, 1e-9) - 1) / (top - 1)) if top > 1 else 0.0
    per_run = seconds / (len(workers) * repeats) - overhead_s
    jobs, estimate = {}, 0.0
    for w in workers:
        rate = x1 * w / (1 + s * (w - 1))
        jobs[w] = min(max_jobs, max(min_jobs(w), int(rate * max(per_run, 0.0))))
        estimate += repeats * (overhead_s + jobs[w] / rate)
    return JobsPlan(jobs, repeats, estimate)


class Budget:
    """The time left to a sweep, shared out point by point.

    Example:
        >>> b = Budget(60.0, points=4)
        >>> b.start_point()
        >>> b.allows(last_run_s=5.0), b.allows(last_run_s=40.0)
        (True, False)
    """

    def __init__(self, seconds: float | None, points: int, clock: Any = time.perf_counter):
        self.seconds = seconds
        self._clock = clock
        self._end = math.inf if seconds is None else clock() + seconds
        self._left = points
        self._point_end = math.inf

    def start_point(self) -> None:
        """A new point begins: its share is an equal part of the time left."""
        now = self._clock()
        share = (self._end - now) / max(self._left, 1)
        self._point_end = now + share
        self._left -= 1

    def allows(self, last_run_s: float) -> bool:
        """Whether one more run like the last still ends within the point's share (or
        overruns it by under half a run, which the later points' shares absorb), and
        within the whole budget."""
        end = min(self._point_end + last_run_s / 2, self._end)
        return self._clock() + last_run_s <= end

    @property
    def spent(self) -> bool:
        """Whether the whole budget is used up."""
        return self._clock() >= self._end
