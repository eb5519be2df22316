"""Queueing theory to hold measurements against: M/M/c (Erlang C) and Little's law.

An open-loop run with Poisson arrivals (``arrivals=qlab.Poisson(rate=...)``) on ``c``
workers whose service times are exponential is an M/M/c queue. :func:`mmc` predicts
its utilisation, the chance that a job waits (Erlang's C formula), the mean wait and
latency, and latency percentiles. :func:`littles_law` checks L = λW on a run's trace:
the time-averaged number of jobs in the system against the arrival rate times the
mean latency, both measured.

Example:
    >>> q = mmc(rate=8, service_s=0.1, servers=1)       # M/M/1 at 80 % utilisation
    >>> round(q.utilisation, 3), round(q.latency_mean_s, 3), round(q.in_system_mean, 3)
    (0.8, 0.5, 4.0)
    >>> round(erlang_c(servers=2, offered=1.0), 4)      # 2 servers, 1 Erlang offered
    0.3333
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["MMc", "erlang_c", "littles_law", "mmc"]


def erlang_c(servers: int, offered: float) -> float:
    """Erlang's C formula: the probability that an arriving job waits, in an M/M/c
    queue with ``servers`` servers and ``offered`` = λ/μ Erlangs of load (< servers).

    Computed through Erlang B's recursion, ``B(k) = a·B(k-1) / (k + a·B(k-1))``, which
    stays finite for hundreds of servers, then ``C = c·B / (c - a·(1 - B))``.

    Raises:
        ValueError: servers < 1, offered < 0, or offered >= servers (unstable).
    """
    if not isinstance(servers, int) or servers < 1:
        raise ValueError(f"servers must be an int >= 1, got {servers!r}")
    if not offered >= 0:
        raise ValueError(f"offered must be >= 0, got {offered!r}")
    if offered >= servers:
        raise ValueError(f"offered load {offered} >= {servers} servers: the queue grows forever")
    b = 1.0
    for k in range(1, servers + 1):
        b = offered * b / (k + offered * b)
    return servers * b / (servers - offered * (1 - b))


@dataclass(frozen=True)
class MMc:
    """The steady state of an M/M/c queue (times in seconds)."""

    rate: float  # arrivals per second (λ)
    service_s: float  # mean service time (1/μ)
    servers: int  # c
    utilisation: float  # ρ = λ / (c μ)
    p_wait: float  # Erlang C: the chance a job waits
    wait_mean_s: float  # mean time in the queue (Wq)
    latency_mean_s: float  # mean time in the system (W = Wq + 1/μ)
    queue_mean: float  # mean jobs waiting (Lq = λ Wq)
    in_system_mean: float  # mean jobs in the system (L = λ W)

    def latency_sf(self, t: float) -> float:
        """P(latency > t): a wait (0 with probability 1 - p_wait, else exponential of
        rate cμ - λ) plus an exponential service of rate μ."""
        mu = 1 / self.service_s
        theta = self.servers * mu - self.rate
        if abs(theta - mu) < 1e-12 * mu:
            both = (1 + mu * t) * math.exp(-mu * t)
        else:
            both = (theta * math.exp(-mu * t) - mu * math.exp(-theta * t)) / (theta - mu)
        return (1 - self.p_wait) * math.exp(-mu * t) + self.p_wait * both

    def latency_quantile(self, q: float) -> float:
        """The ``q`` quantile of latency (0 < q < 1), by bisection on :meth:`latency_sf`.

        Example:
            >>> round(mmc(rate=5, service_s=0.1, servers=1).latency_quantile(0.5), 4)
            0.1386
        """
        if not 0 < q < 1:
            raise ValueError(f"q must be in (0, 1), got {q!r}")
        lo, hi = 0.0, self.latency_mean_s
        while self.latency_sf(hi) > 1 - q:
            hi *= 2
        for _ in range(100):
            mid = (lo + hi) / 2
            if self.latency_sf(mid) > 1 - q:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2


def mmc(rate: float, service_s: float, servers: int) -> MMc:
    """The M/M/c prediction for ``rate`` Poisson arrivals per second, exponential
    service of mean ``service_s`` and ``servers`` workers.

    Raises:
        ValueError: a rate or service time <= 0, or a load the servers cannot carry.
    """
    if not rate > 0 or not service_s > 0:
        raise ValueError(f"rate and service_s must be > 0, got {rate!r} and {service_s!r}")
    a = rate * service_s
    pw = erlang_c(servers, a)
    wq = pw * service_s / (servers - a)  # = C / (c μ - λ)
    w = wq + service_s
    return MMc(rate, service_s, servers, a / servers, pw, wq, w, rate * wq, rate * w)


def littles_law(run: Any, start: float | None = None, end: float | None = None) -> dict:
    """Check L = λW on ``run``'s trace, over a window of time (seconds from the run's
    start; by default from the first arrival to the last).

    L is the time average of the number of jobs in the system (submitted, not yet
    finished) over the window, computed exactly from each job's interval; λ is the
    jobs that arrived in the window per second; W is their mean latency. Jobs that
    arrived in the window but end after it make W·λ a little larger than L: the
    closer ``rel_error`` is to 0, the longer the window is against a job's latency.

    Returns:
        dict with L, lam, W, lam_W, rel_error ((λW - L) / L), jobs and window_s.

    Example:
        >>> import qlab
        >>> run = qlab.run(qlab.workloads.sleep(ms=1), range(50), workers=2,
        ...                arrivals=qlab.Periodic(rate=500))
        >>> check = littles_law(run)
        >>> abs(check["rel_error"]) < 0.5, check["jobs"]
        (True, 50)
    """
    import numpy as np

    jobs = run.jobs
    sub = jobs["submitted_s"].to_numpy(dtype=float)
    fin = jobs["end_s"].to_numpy(dtype=float)
    arrived = np.isfinite(sub)
    sub, fin = sub[arrived], fin[arrived]
    fin = np.where(np.isfinite(fin), fin, run.wall_s)  # still there at the end
    t0 = float(sub.min()) if start is None else float(start)
    t1 = float(sub.max()) if end is None else float(end)
    width = t1 - t0
    if not width > 0:
        raise ValueError(f"the window must be longer than 0 s, got [{t0}, {t1}]")
    overlap = np.clip(np.minimum(fin, t1) - np.maximum(sub, t0), 0, None)
    big_l = float(overlap.sum() / width)
    inside = (sub >= t0) & (sub <= t1)
    lam = float(inside.sum() / width)
    w = float((fin[inside] - sub[inside]).mean()) if inside.any() else math.nan
    return {
        "L": big_l,
        "lam": lam,
        "W": w,
        "lam_W": lam * w,
        "rel_error": (lam * w - big_l) / big_l if big_l > 0 else math.nan,
        "jobs": int(inside.sum()),
        "window_s": width,
    }
