"""rate_limit= on the asyncio backend: each task awaits its attempt's token.

Checked on the trace, with no timing assertions: every attempt starts at or after
the not-before time the pool reserved for it, the waits are in ``throttle_s`` (row by
row), and on a fake clock the starts are the bucket's schedule exactly.
"""

from __future__ import annotations

import asyncio
import math
import threading

import numpy as np
import pytest

import qlab
from qlab.backends.aio.backend import AsyncioBackend
from qlab.backends.aio.parts import wait_turn
from qlab.core.context import WorkerState
from qlab.engine.ratelimit import PacedBatch, RateLimit
from qlab.testing import FakeClock
from tests import test_ratelimit

pytestmark = pytest.mark.timeout(60)

reserved = test_ratelimit.reserved  # the fixture: every token the pool reserves


async def anoop(x):
    await asyncio.sleep(0)
    return x


class AsyncFlaky:
    """Fails the first attempt of every third job with OSError (a retry takes a token too)."""

    async def __call__(self, x):
        await asyncio.sleep(0)
        if x % 3 == 0 and qlab.current().attempt == 1:
            raise OSError("flaky")
        return x


@pytest.mark.parametrize(
    "backend", ["asyncio", AsyncioBackend(concurrency=8)], ids=["lanes", "concurrency"]
)
def test_each_attempt_starts_at_or_after_its_token(backend, reserved: dict) -> None:
    limit = RateLimit(100, burst=2)
    with qlab.Pool(AsyncFlaky(), workers=2, backend=backend, rate_limit=limit, retry=2) as pool:
        assert sorted(pool.map(range(30))) == list(range(30))
    run, origin = pool.trace(), pool.parts.trace.origin
    att = run.attempts
    assert len(reserved) == len(att) == 40  # every attempt, retries too, took a token
    nb = np.array([reserved[(j, a)] for j, a in zip(att.job_id, att.attempt, strict=True)])
    assert (att.start_s.to_numpy() + origin >= nb).all()
    throttle = att.throttle_s.to_numpy()
    assert (throttle >= 0).all() and (throttle > 0).any()
    # the first `burst` tokens are the reservation time itself: nothing to wait for
    first = np.argsort(nb, kind="stable")[: limit.burst]
    assert (throttle[first] == 0).all()
    assert run.meta["rate_limit"] == {"rate": 100.0, "burst": 2}
    assert run.summary()["ok"] == 30


def test_on_a_fake_clock_the_starts_are_the_schedule() -> None:
    run = qlab.run(anoop, range(40), workers=1, backend="asyncio",
                   rate_limit=RateLimit(10, burst=3), clock=FakeClock(0.0))  # fmt: skip
    att = run.attempts.sort_values("start_s")
    # 3 at once, then one every 0.1 s; each later row waited exactly its 0.1 s
    assert np.allclose(att.start_s, np.r_[0.0, 0.0, np.arange(38) * 0.1])
    assert np.allclose(att.throttle_s.iloc[:3], 0.0)
    assert np.allclose(att.throttle_s.iloc[3:], 0.1)
    starts = att.start_s.to_numpy()
    in_window = np.searchsorted(starts, starts + 1.0 - 1e-9, side="left") - np.arange(len(starts))
    assert in_window.max() <= 10 + 3


def test_no_rate_limit_no_throttle() -> None:
    run = qlab.run(anoop, range(10), workers=2, backend="asyncio")
    assert (run.attempts.throttle_s == 0).all()


def _state(now: float) -> WorkerState:
    return WorkerState(0, None, None, threading.Event(), lambda: now)


def test_wait_turn_leaves_at_once_when_the_pool_stops() -> None:
    far = PacedBatch(range(1), 1, ["a"], [3600.0])  # a token an hour away
    stopping = _state(0.0)
    stopping.stop = True
    assert asyncio.run(wait_turn(far, 0, stopping)) == 0.0
    cancelled = _state(0.0)
    cancelled.cancel_event.set()
    assert asyncio.run(wait_turn(far, 0, cancelled)) == 0.0


def test_wait_turn_jumps_a_fake_clock() -> None:
    clock = FakeClock(5.0)
    batch = PacedBatch(range(2), 1, ["a", "b"], [5.0, 7.5], clock)
    state = WorkerState(0, None, None, threading.Event(), clock.now)
    assert asyncio.run(wait_turn(batch, 0, state)) == 0.0
    assert math.isclose(asyncio.run(wait_turn(batch, 1, state)), 2.5)
    assert clock.now() == 7.5


def test_wait_turn_sleeps_until_the_token_on_the_runs_clock() -> None:
    # the run's clock is a counter that moves only when the task sleeps: the wait
    # ends when it reads the token's time, however the event loop's clock moves
    ticks = [0.0]

    def now() -> float:
        return ticks[0]

    async def main() -> float:
        async def tick() -> None:
            while True:
                await asyncio.sleep(0)
                ticks[0] += 0.001

        ticker = asyncio.ensure_future(tick())
        try:
            state = WorkerState(0, None, None, threading.Event(), now)
            return await wait_turn(PacedBatch(range(1), 1, ["a"], [0.005]), 0, state)
        finally:
            ticker.cancel()

    waited = asyncio.run(main())
    assert waited >= 0.005 and ticks[0] >= 0.005
