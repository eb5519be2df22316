"""The synthetic workloads: each teaches one shape of scaling, on any machine.

Each is a small frozen dataclass whose instances are callables taking one payload, so
they travel to worker processes and print readably in a run's meta. Bad parameters
fail at construction, naming the parameter::

    >>> from qlab.workloads import synthetic
    >>> synthetic.sleep(ms=2)
    sleep(ms=2)
    >>> synthetic.sleep(ms=-5)
    Traceback (most recent call last):
    ...
    ValueError: sleep: ms must be >= 0, got -5
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qlab.core.context import cancellable_sleep, current_or_none
from qlab.core.retry import Permanent, jitter_rng
from qlab.workloads.checks import number, probability

__all__ = ["TransientError", "contended", "cpu", "flaky", "noop", "seed", "sha256", "sleep"]


class TransientError(Exception):
    """The retryable error raised by ``flaky`` and ``seed``."""


def _burn(seconds: float) -> None:
    """Spin in pure Python until this thread has used ``seconds`` of CPU time."""
    clock = time.thread_time
    end = clock() + seconds
    x = 0
    while clock() < end:
        for i in range(200):  # reading the CPU clock is a system call: read it rarely
            x += i * i


@dataclass(frozen=True)
class noop:
    """Does nothing and returns the payload."""

    def __call__(self, payload: Any) -> Any:
        return payload


@dataclass(frozen=True)
class sleep:
    """Waits ``ms`` milliseconds, like a job that waits on I/O."""

    ms: float = 1.0

    def __post_init__(self) -> None:
        number("sleep", "ms", self.ms, low=0)

    def __call__(self, payload: Any) -> Any:
        cancellable_sleep(self.ms / 1000)
        return payload


@dataclass(frozen=True)
class cpu:
    """Uses ``ms`` milliseconds of CPU in pure Python, holding the GIL."""

    ms: float = 1.0

    def __post_init__(self) -> None:
        number("cpu", "ms", self.ms, low=0)

    def __call__(self, payload: Any) -> Any:
        _burn(self.ms / 1000)
        return payload


def _chain(data: bytes, rounds: int) -> bytes:
    for _ in range(rounds):
        data = hashlib.sha256(data).digest()
    return data


@dataclass(frozen=True)
class sha256:
    """``rounds`` chained SHA-256 digests of ``str(payload)``; returns the hex digest."""

    rounds: int = 1000

    def __post_init__(self) -> None:
        number("sha256", "rounds", self.rounds, low=0, integer=True)

    def __call__(self, payload: Any) -> str:
        return _chain(str(payload).encode(), self.rounds).hex()


_LOCK = threading.Lock()


@dataclass(frozen=True)
class contended:
    """Waits ``ms`` in all, the ``hold`` fraction of it inside one lock shared by every
    thread of the process: the serial fraction that the USL calls sigma."""

    ms: float = 1.0
    hold: float = 0.2

    def __post_init__(self) -> None:
        number("contended", "ms", self.ms, low=0)
        probability("contended", "hold", self.hold)

    def __call__(self, payload: Any) -> Any:
        cancellable_sleep(self.ms * (1 - self.hold) / 1000)
        with _LOCK:
            cancellable_sleep(self.ms * self.hold / 1000)
        return payload


def _unit(seed: int | None, job_id: int, attempt: int, salt: str) -> float:
    return jitter_rng(seed, job_id, attempt, salt).random()


@dataclass(frozen=True)
class flaky:
    """Runs ``inner``, failing by a hash of (seed, job id, attempt).

    A job fails permanently with probability ``permanent`` (decided once per job);
    otherwise each attempt fails with a retryable :class:`TransientError` with
    probability ``transient``. Outside a pool the payload stands for the job id.
    """

    inner: Callable[[Any], Any] = noop()
    transient: float = 0.1
    permanent: float = 0.0

    def __post_init__(self) -> None:
        if not callable(self.inner):
            raise TypeError(f"flaky: inner must be callable, got {self.inner!r}")
        probability("flaky", "transient", self.transient)
        probability("flaky", "permanent", self.permanent)

    # a wrapped workload that owns a server or files is opened and closed through this one
    def __qlab_open__(self) -> None:
        """Open the inner workload's resources (if it has any)."""
        opener = getattr(self.inner, "__qlab_open__", None)
        if opener is not None:
            opener()

    def __qlab_close__(self) -> None:
        """Close the inner workload's resources (if it has any)."""
        closer = getattr(self.inner, "__qlab_close__", None)
        if closer is not None:
            closer()

    def __call__(self, payload: Any) -> Any:
        ctx = current_or_none()
        seed_, job_id, attempt = (ctx.seed, ctx.job_id, ctx.attempt) if ctx else (0, payload, 1)
        if self.permanent and _unit(seed_, job_id, 0, "permanent") < self.permanent:
            raise Permanent(f"job {job_id} fails permanently")
        if self.transient and _unit(seed_, job_id, attempt, "transient") < self.transient:
            raise TransientError(f"job {job_id} attempt {attempt}: transient failure")
        return self.inner(payload)


@dataclass(frozen=True)
class seed:
    """The Go original's processor: 1000 chained SHA-256 digests over ``job-<i>``, then
    a retryable failure when ``len(payload) % 3 == 0``. An int payload ``i`` stands for
    the string ``job-<i>``. With 4 attempts, 100 jobs give 10 ok / 90 failed."""

    rounds: int = 1000

    def __post_init__(self) -> None:
        number("seed", "rounds", self.rounds, low=0, integer=True)

    def __call__(self, payload: Any) -> str:
        text = f"job-{payload}" if isinstance(payload, int) else str(payload)
        digest = _chain(text.encode(), self.rounds)
        if len(text) % 3 == 0:
            raise TransientError(f"processing {text} failed")
        return digest.hex()
