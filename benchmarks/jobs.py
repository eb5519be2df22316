"""Job functions for the peers of the benchmark (module-level, hence picklable).

Every peer runs the same jobs with the same retry rule as qlab and the Go
original: a job is tried at most ``1 + MAX_RETRIES`` times, in the worker that
took it, and fails permanently after that. Payloads are the integers
``0 .. n-1``; the seed job turns ``i`` into the Go original's payload
``"job-<i>"``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from functools import partial

MAX_RETRIES = 3
"""Retries after the first attempt: 4 attempts in all, as in the Go original."""

SEED_DIGESTS = 1000
"""Chained SHA-256 digests per attempt of the seed job."""

SLEEP_S = 0.001
"""Duration of one sleep job (an I/O-like wait that releases the GIL)."""


class RetryableError(Exception):
    """A failure that is worth another attempt."""


def noop_job(i: int) -> None:
    """Do nothing; never fail."""


def sleep_job(i: int) -> None:
    """Sleep :data:`SLEEP_S` seconds; never fail."""
    time.sleep(SLEEP_S)


def seed_digest(payload: str) -> str:
    """Hex of :data:`SEED_DIGESTS` chained SHA-256 digests, starting from ``payload``."""
    digest = payload.encode()
    for _ in range(SEED_DIGESTS):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


def seed_job(i: int) -> str:
    """The Go original's processor: hash ``"job-<i>"``, then fail if ``len(payload) % 3 == 0``.

    The failure is retryable, but deterministic, so such a job uses all its
    attempts and fails permanently: 100 jobs give 10 ok / 90 failed, 1000 give
    910 / 90 and 2000 give 1910 / 90.
    """
    payload = f"job-{i}"
    digest = seed_digest(payload)
    if len(payload) % 3 == 0:
        raise RetryableError(f"job {i}: len(payload) % 3 == 0")
    return digest


def expected_outcome(job: Callable[[int], object], n_jobs: int) -> tuple[int, int]:
    """(ok, failed) that ``n_jobs`` jobs of ``job`` must give, used to check every peer."""
    if job is seed_job:
        failed = sum(1 for i in range(n_jobs) if len(f"job-{i}") % 3 == 0)
        return n_jobs - failed, failed
    return n_jobs, 0


def attempt_with_retries(job: Callable[[int], object], payload: int) -> bool:
    """Run ``job(payload)`` up to ``1 + MAX_RETRIES`` times; True if an attempt succeeded."""
    for _ in range(1 + MAX_RETRIES):
        try:
            job(payload)
        except Exception:  # any exception is retryable, as in qlab
            continue
        return True
    return False


def retrying(job: Callable[[int], object]) -> Callable[[int], bool]:
    """``job`` wrapped by :func:`attempt_with_retries`; a picklable ``partial``."""
    return partial(attempt_with_retries, job)
