"""Open-loop arrivals: payloads released on a schedule, independent of the pool.

A closed-loop run (the default) submits as fast as the pool takes jobs: it measures
capacity. ``qlab.run(..., arrivals=qlab.Poisson(rate=500))`` instead releases payload
k at a scheduled time, whether or not the pool keeps up, like users arriving at a
service. Each job's ``submitted_s`` is its *intended* arrival time, so when the pool
falls behind, the time a job spent waiting to be released counts in its latency: no
coordinated omission (the feeder being held up never hides a slow response).

Two schedules: :class:`Poisson` and :class:`Periodic` (also ``qlab.arrivals.Constant``;
the top-level ``qlab.Constant`` is the backoff strategy, so constant arrivals are
``qlab.Periodic`` there).

The schedule is a list of offsets from the first arrival (which is at 0), drawn from
``random.Random(seed)``: the same seed gives the same schedule, exactly.

Example:
    >>> import itertools
    >>> list(itertools.islice(Periodic(rate=4).offsets(), 3))
    [0.0, 0.25, 0.5]
    >>> a = list(itertools.islice(Poisson(rate=100, seed=1).offsets(), 3))
    >>> a == list(itertools.islice(Poisson(rate=100, seed=1).offsets(), 3)), a[0]
    (True, 0.0)
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["Arrivals", "Constant", "Periodic", "Poisson", "check_arrivals"]


def _check_rate(kind: str, rate: Any) -> float:
    ok = isinstance(rate, int | float) and not isinstance(rate, bool) and math.isfinite(rate)
    if not ok or rate <= 0:
        raise ValueError(f"arrivals: {kind} rate must be a number > 0, got {rate!r}")
    return float(rate)


class Arrivals:
    """A schedule of arrival offsets (seconds from the first arrival)."""

    rate: float

    def offsets(self, seed: int | None = None) -> Iterator[float]:
        """The arrival offsets, one per payload, starting at 0.0 (endless)."""
        raise NotImplementedError

    def schedule(self, n: int, seed: int | None = None) -> list[float]:
        """The first ``n`` offsets, as a list."""
        it = self.offsets(seed)
        return [next(it) for _ in range(n)]


@dataclass(frozen=True)
class Periodic(Arrivals):
    """One arrival every ``1 / rate`` seconds: offset k is ``k / rate``.

    Example:
        >>> Periodic(rate=10).schedule(3)
        [0.0, 0.1, 0.2]
    """

    rate: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", _check_rate("Periodic", self.rate))

    def offsets(self, seed: int | None = None) -> Iterator[float]:
        k = 0
        while True:
            yield k / self.rate
            k += 1


@dataclass(frozen=True)
class Poisson(Arrivals):
    """A Poisson process of ``rate`` arrivals per second: independent exponential gaps
    of mean ``1 / rate``, drawn from ``random.Random(seed)`` (the run's seed if
    ``seed`` is None).

    Example:
        >>> rng = random.Random(7)
        >>> gaps = [rng.expovariate(50.0) for _ in range(2)]
        >>> Poisson(rate=50, seed=7).schedule(3) == [0.0, gaps[0], gaps[0] + gaps[1]]
        True
    """

    rate: float
    seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", _check_rate("Poisson", self.rate))
        s = self.seed
        if s is not None and (not isinstance(s, int) or isinstance(s, bool)):
            raise ValueError(f"arrivals: Poisson seed must be an int or None, got {s!r}")

    def offsets(self, seed: int | None = None) -> Iterator[float]:
        rng = random.Random(self.seed if self.seed is not None else seed)
        rate, t = self.rate, 0.0
        while True:
            yield t
            t += rng.expovariate(rate)


Constant = Periodic  # the name, under qlab.arrivals (qlab.Constant is a backoff)


def check_arrivals(value: Any) -> Arrivals | None:
    """What ``arrivals=`` takes: None (closed loop) or an Arrivals schedule.

    Example:
        >>> check_arrivals(500)
        Traceback (most recent call last):
        ...
        TypeError: arrivals must be qlab.Poisson(rate=...), qlab.Periodic(rate=...) or None, got 500
    """
    if value is None or isinstance(value, Arrivals):
        return value
    hint = ""
    if type(value).__name__ == "Constant":
        hint = " (qlab.Constant is a backoff strategy; constant arrivals are qlab.Periodic)"
    raise TypeError(
        "arrivals must be qlab.Poisson(rate=...), qlab.Periodic(rate=...) or None, "
        f"got {value!r}{hint}"
    )
