"""Retry policies: small, frozen, composable values.

A :class:`Retry` says how many times a failing job is tried again, which errors are
permanent, and how long to wait before each retry. The wait is a :class:`Backoff`, a
pure function of the attempt number and a random source::

    >>> from qlab import Retry, Exponential, Constant
    >>> Exponential(base=0.01, cap=1.0).delay(3)
    0.04
    >>> (Constant(0.1) + Exponential(base=0.01)).delay(1)
    0.11
    >>> Retry(max_retries=3).attempts_allowed
    4

Policies hold no per-call state (the long-standing bug of keeping counters on a shared
policy object is avoided by construction): the engine passes in the attempt number
and a ``random.Random`` seeded from (run seed, job id, attempt), so a seeded run has
the same schedule every time.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "Backoff",
    "Constant",
    "Exponential",
    "Permanent",
    "Retry",
    "Uniform",
    "jitter_rng",
]


class Permanent(Exception):
    """Raise (or raise from) this in a handler to fail the job at once, without retries.

    Example:
        >>> def handler(x):
        ...     if x < 0:
        ...         raise Permanent(f"negative payload {x}")
    """


def jitter_rng(seed: int | None, job_id: int, attempt: int, salt: str = "backoff") -> random.Random:
    """The random source for one (seed, job, attempt): the same triple, the same draws.

    ``salt`` keeps independent uses (backoff jitter, a flaky workload) uncorrelated.
    """
    key = f"{salt}:{seed}:{job_id}:{attempt}".encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "little"))


class Backoff:
    """Base of backoff strategies: ``delay(attempt, rng)`` in seconds.

    ``attempt`` is the number of the attempt that just failed (1-based). Strategies
    add up with ``+``: ``Constant(0.1) + Uniform(0, 0.05)``.
    Example:
        >>> import random
        >>> from qlab import Constant, Uniform
        >>> backoff = Constant(0.1) + Uniform(0, 0.05)
        >>> 0.1 <= backoff.delay(1, random.Random(0)) <= 0.15
        True
    """

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        raise NotImplementedError

    def __add__(self, other: Backoff) -> Backoff:
        if not isinstance(other, Backoff):
            return NotImplemented
        return Sum((self, other))

    def schedule(
        self,
        retries: int,
        rng: random.Random | None = None,
        *,
        seed: int | None = 0,
        job_id: int = 0,
    ) -> list[float]:
        """The delays before retries 1..``retries`` (handy to see a policy's shape).

        Without ``rng``, jitter is drawn as the engine draws it for job ``job_id`` of
        a run seeded with ``seed``, so the schedule is the one that job gets.

        Example:
            >>> Exponential(base=1, factor=2, cap=5).schedule(4)
            [1.0, 2.0, 4.0, 5.0]
            >>> b = Exponential(base=1, jitter=True)
            >>> b.schedule(3, job_id=7) == b.schedule(3, job_id=7) != b.schedule(3, job_id=8)
            True
        """
        if rng is not None:
            return [self.delay(a, rng) for a in range(1, retries + 1)]
        return [self.delay(a, jitter_rng(seed, job_id, a)) for a in range(1, retries + 1)]


@dataclass(frozen=True)
class Constant(Backoff):
    """The same delay before every retry: ``Constant(0)`` retries at once.

    Example:
        >>> Constant(0.5).delay(3, None)
        0.5
    """

    seconds: float = 0.0

    def __post_init__(self) -> None:
        _check_nonneg("seconds", self.seconds)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        return float(self.seconds)


@dataclass(frozen=True)
class Uniform(Backoff):
    """A random delay drawn uniformly from [low, high] (needs the rng).

    Example:
        >>> import random
        >>> 0.1 <= Uniform(0.1, 0.2).delay(1, random.Random(0)) <= 0.2
        True
    """

    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        _check_nonneg("low", self.low)
        if self.high < self.low:
            raise ValueError(f"high must be >= low, got low={self.low!r}, high={self.high!r}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        return (rng or random).uniform(self.low, self.high)


@dataclass(frozen=True)
class Exponential(Backoff):
    """``base * factor**(attempt-1)``, capped at ``cap``.

    With ``jitter=True`` the delay is "full jitter": uniform in [0, capped delay], which
    spreads retries of jobs that failed together (AWS Architecture Blog, 2015).

    Example:
        >>> Exponential(base=0.01, factor=2, cap=1.0).schedule(3)
        [0.01, 0.02, 0.04]
    """

    base: float = 0.01
    factor: float = 2.0
    cap: float | None = 1.0
    jitter: bool = False

    def __post_init__(self) -> None:
        _check_nonneg("base", self.base)
        if self.factor < 1:
            raise ValueError(f"factor must be >= 1, got {self.factor!r}")
        if self.cap is not None:
            _check_nonneg("cap", self.cap)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        d = self.base * self.factor ** max(attempt - 1, 0)
        if self.cap is not None:
            d = min(d, self.cap)
        if self.jitter:
            d = (rng or random).uniform(0.0, d)
        return float(d)


@dataclass(frozen=True)
class Sum(Backoff):
    """The sum of several strategies' delays (made by ``a + b``)."""

    parts: tuple[Backoff, ...]

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        return float(sum(p.delay(attempt, rng) for p in self.parts))

    def __add__(self, other: Backoff) -> Backoff:
        if not isinstance(other, Backoff):
            return NotImplemented
        return Sum((*self.parts, other))


def _check_nonneg(name: str, value: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")


@dataclass(frozen=True)
class Retry:
    """How failing jobs are retried.

    Args:
        max_retries: retries after the first attempt; ``max_retries=3`` allows up to 4
            attempts, as in the Go original.
        backoff: delay before each retry; ``None`` retries at once. The engine schedules
            the delay: a waiting retry never holds a worker.
        permanent: exception types that fail a job at once (as does ``qlab.Permanent``,
            raised or raised from), or a predicate ``exc -> bool``.

    Example:
        >>> policy = Retry(max_retries=2, backoff=Exponential(base=0.1), permanent=(KeyError,))
        >>> policy.is_permanent(KeyError("k")), policy.is_permanent(OSError())
        (True, False)
    """

    max_retries: int = 3
    backoff: Backoff | None = field(default_factory=lambda: Exponential(0.01, 2.0, 1.0, True))
    permanent: tuple[type[BaseException], ...] | Callable[[BaseException], bool] = ()

    def __post_init__(self) -> None:
        mr = self.max_retries
        if not isinstance(mr, int) or isinstance(mr, bool) or mr < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {mr!r}")
        if self.backoff is not None and not isinstance(self.backoff, Backoff):
            raise TypeError(f"backoff must be a qlab Backoff or None, got {self.backoff!r}")
        perm = self.permanent
        if isinstance(perm, type):
            perm = (perm,)
            object.__setattr__(self, "permanent", perm)
        if callable(perm) and not isinstance(perm, tuple):
            return  # a predicate: exc -> bool
        if not isinstance(perm, tuple) or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in perm
        ):
            raise TypeError(
                f"permanent must be a tuple of exception types or a predicate, got {perm!r}"
            )

    @property
    def attempts_allowed(self) -> int:
        """1 + max_retries."""
        return self.max_retries + 1

    def is_permanent(self, exc: BaseException) -> bool:
        """True if ``exc`` fails its job at once: it is, or was raised from (its
        ``__cause__`` chain holds), a :class:`Permanent`; or ``permanent=`` says so.

        Example:
            >>> try:
            ...     try:
            ...         raise Permanent("bad input")
            ...     except Permanent as cause:
            ...         raise KeyError("k") from cause
            ... except KeyError as exc:
            ...     Retry().is_permanent(exc)
            True
            >>> Retry(permanent=lambda e: "quota" in str(e)).is_permanent(OSError("quota"))
            True
        """
        seen: BaseException | None = exc
        for _ in range(32):  # a cause chain is short; a cycle must not hang
            if seen is None:
                break
            if isinstance(seen, Permanent):
                return True
            seen = seen.__cause__
        perm = self.permanent
        if isinstance(perm, tuple):
            return bool(perm) and isinstance(exc, perm)
        return bool(perm(exc))

    def delay(self, seed: int | None, job_id: int, attempt: int) -> float:
        """Seconds to wait after ``attempt`` of ``job_id`` failed (seeded jitter)."""
        if self.backoff is None:
            return 0.0
        return self.backoff.delay(attempt, jitter_rng(seed, job_id, attempt))


NO_RETRY = Retry(max_retries=0, backoff=None)
