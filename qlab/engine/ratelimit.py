"""Rate limits: a token bucket shared by every worker of a pool, on every backend.

``rate_limit=100`` (or ``qlab.RateLimit(100, burst=10)``) caps how many attempts
start per second across the whole pool. There is no round trip per attempt: when a
driver takes a batch of k jobs, the pool's :class:`Limiter` (in the parent, under its
own lock, on the run's clock) reserves k tokens and gives back k not-before times.
The batch carries them to its worker as a :class:`PacedBatch` (a thread, a worker
process or the caller's thread alike), and the batch loop waits until each attempt's
time before starting it, recording the wait as the attempt's ``throttle_s`` (not as
service time)::

    driver: take batch of k --> Limiter.reserve(k): k not-before times (GCRA)
        --> PacedBatch(ids, attempts, payloads, not_before) --> worker
    worker (loop.execute): wait until not_before[i]; start attempt i; throttle_s

The bucket is the generic cell rate algorithm: token j may be used at
``max(now, tat - (burst - 1) / rate)``, and the theoretical arrival time ``tat`` then
moves on by ``1 / rate``. So ``burst`` attempts may start at once, and after that
exactly one every ``1 / rate`` seconds: over any window of ``w`` seconds at most
``burst + rate * w`` attempts start. Tokens reserved for jobs that then do not run
(the pool stops, a worker process dies) are not given back: the rate errs low.

On a queue shared by many pools (Redis) the bucket is the queue's: :func:`make_limiter`
gives a :class:`SharedLimiter`, whose ``reserve`` runs the same algorithm in the store
(a Lua script on the Redis server's clock, ``tat`` kept under the queue's name), one
round trip per batch, so every consumer of the queue draws from one bucket. The
not-before times come back as offsets from the server's clock and are put on the run's
clock at the reply (off by at most the round trip, late rather than early).

Example:
    >>> lim = Limiter(RateLimit(4, burst=2))
    >>> lim.reserve(4, now=100.0)
    [100.0, 100.0, 100.25, 100.5]
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Any

from qlab.core.batches import Batch

__all__ = ["Limiter", "PacedBatch", "RateLimit", "SharedLimiter", "check_rate_limit",
           "make_limiter"]  # fmt: skip

log = logging.getLogger("qlab")

_SLICE_S = 0.02  # a waiting worker looks at the pool's stop flag this often


@dataclass(frozen=True)
class RateLimit:
    """At most ``rate`` attempt starts per second across a pool, ``burst`` at once.

    Args:
        rate: attempts per second (> 0).
        burst: attempts that may start at once after an idle spell (>= 1).

    Example:
        >>> RateLimit(100, burst=10)
        RateLimit(rate=100.0, burst=10)
        >>> RateLimit(0)
        Traceback (most recent call last):
        ...
        ValueError: rate_limit: rate must be a number > 0, got 0
    """

    rate: float
    burst: int = 1

    def __post_init__(self) -> None:
        r = self.rate
        if not isinstance(r, int | float) or isinstance(r, bool) or not math.isfinite(r) or r <= 0:
            raise ValueError(f"rate_limit: rate must be a number > 0, got {r!r}")
        b = self.burst
        if not isinstance(b, int) or isinstance(b, bool) or b < 1:
            raise ValueError(f"rate_limit: burst must be an int >= 1, got {b!r}")
        object.__setattr__(self, "rate", float(r))

    @property
    def batch_cap(self) -> int:
        """Jobs a worker takes at once under this limit: about 50 ms of tokens (or the
        burst), so that a batch never holds tokens far into the future."""
        return max(1, self.burst, int(self.rate * 0.05))


def check_rate_limit(value: Any) -> RateLimit | None:
    """What ``rate_limit=`` takes: None, a number (attempts per second) or a RateLimit.

    Example:
        >>> check_rate_limit(50), check_rate_limit(None)
        (RateLimit(rate=50.0, burst=1), None)
    """
    if value is None or isinstance(value, RateLimit):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return RateLimit(value)
    raise TypeError(f"rate_limit must be a number, a qlab.RateLimit or None, got {value!r}")


class Limiter:
    """The token bucket of one pool, kept in the parent on the run's clock.

    Args:
        limit: the rate and burst.
        now: the run's clock (``clock.now``); ``reserve`` reads it unless given ``now``.
    """

    def __init__(self, limit: RateLimit, now: Any = None) -> None:
        self.limit = limit
        self._now = now
        self._lock = threading.Lock()
        self._step = 1.0 / limit.rate
        self._tolerance = (limit.burst - 1) * self._step
        self._tat = -math.inf  # when the bucket is full again (theoretical arrival time)
        self.reserved = 0  # tokens handed out in all

    def reserve(self, k: int, now: float | None = None) -> list[float]:
        """Reserve ``k`` tokens; the time from which each may be used, in order."""
        with self._lock:
            t = self._now() if now is None else now
            tat, step, tol = self._tat, self._step, self._tolerance
            times = []
            for _ in range(k):
                at = max(t, tat - tol)
                times.append(at)
                tat = max(tat, at) + step
            self._tat = tat
            self.reserved += k
            return times


class SharedLimiter(Limiter):
    """The token bucket of a queue shared by several pools, kept in its store.

    Args:
        limit: the rate and burst (every pool on the queue should use the same).
        now: the run's clock.
        reserve: ``reserve(k, step, tolerance)``: the store's GCRA, returning each
            token's time as seconds from the store's now (see :func:`make_limiter`).

    If the store fails, the pool goes on with a bucket of its own (logged once).

    Example:
        >>> lim = SharedLimiter(RateLimit(2), lambda: 10.0, lambda k, s, t: [0.0, 0.5][:k])
        >>> lim.reserve(2)
        [10.0, 10.5]
    """

    def __init__(self, limit: RateLimit, now: Any, reserve: Any) -> None:
        super().__init__(limit, now)
        self._shared = reserve

    def reserve(self, k: int, now: float | None = None) -> list[float]:
        if self._shared is not None:
            try:
                offsets = self._shared(k, self._step, self._tolerance)
            except Exception:
                log.exception("shared rate limit failed: this pool keeps its own bucket")
                self._shared = None
            else:
                t = self._now()  # at the reply: a token is late by the round trip, not early
                self.reserved += k
                return [t + o for o in offsets]
        return super().reserve(k, now)


def make_limiter(limit: RateLimit | None, clock: Any, queue: Any) -> Limiter | None:
    """The pool's bucket: the queue's shared one if it keeps one (a Redis queue, on a
    real clock), else the pool's own.

    Example:
        >>> from qlab.core.clock import REAL_CLOCK
        >>> type(make_limiter(RateLimit(5), REAL_CLOCK, object())).__name__
        'Limiter'
    """
    if limit is None:
        return None
    reserve = getattr(queue, "reserve_tokens", None)
    if reserve is not None and not getattr(clock, "autojump", False):
        return SharedLimiter(limit, clock.now, reserve)
    return Limiter(limit, clock.now)


class PacedBatch(Batch):
    """A batch whose attempts may not start before their times (``not_before``, on the
    run's clock). Slices and joins of it are plain batches: jobs that go back to the
    queue take new tokens when they are taken again.

    Example:
        >>> b = PacedBatch(range(2), 1, ["a", "b"], [5.0, 5.5])
        >>> b.not_before, type(b[1:]).__name__
        ([5.0, 5.5], 'Batch')
    """

    __slots__ = ("clock", "not_before")

    def __init__(
        self, ids: Any, attempts: Any, payloads: Any, not_before: list[float], clock: Any = None
    ) -> None:
        super().__init__(ids, attempts, payloads)
        self.not_before = not_before
        self.clock = clock  # a fake clock (threads only) is jumped instead of waited on

    @classmethod
    def pace(cls, batch: Batch, limiter: Limiter, clock: Any) -> PacedBatch:
        """``batch`` with a token reserved for each of its jobs."""
        fake = clock if getattr(clock, "autojump", False) else None
        times = limiter.reserve(len(batch), clock.now())
        paced = cls(batch.ids, batch.attempts, batch.payloads, times, fake)
        paced.kind = batch.kind
        return paced

    def __reduce__(self) -> Any:
        return (PacedBatch, (self.ids, self.attempts, self.payloads, self.not_before))

    def wait_turn(self, i: int, state: Any) -> float:
        """Wait until attempt ``i`` may start (the batch loop calls this); the seconds
        waited. A worker whose pool stops leaves the wait early (``state.stop``, or
        its cancel flag)."""
        now = state.now()
        until = self.not_before[i]
        if now >= until:
            return 0.0
        if self.clock is not None:  # a fake clock: jump to the token's time
            with _JUMP_LOCK:
                ahead = until - self.clock.now()
                if ahead > 0:
                    self.clock.advance(ahead)
            return until - now
        event = state.cancel_event
        while True:
            left = until - state.now()
            if left <= 0 or state.stop or event.is_set():
                break
            event.wait(min(left, _SLICE_S))
        return max(state.now() - now, 0.0)


_JUMP_LOCK = threading.Lock()  # workers jump a fake clock one at a time
