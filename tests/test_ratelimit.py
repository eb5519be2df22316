"""rate_limit=: a token bucket shared by a pool's workers, checked on the trace.

No timing assertions: the limiter's schedule is exact on the run's clock, so the
tests compare each attempt's start with the time reserved for it, and count starts
per window on a fake clock.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import qlab
from qlab.core.batches import Batch
from qlab.engine.ratelimit import Limiter, PacedBatch, RateLimit
from qlab.testing import FakeClock

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def reserved(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Every token the pool reserves: (job_id, attempt) -> not-before time."""
    times: dict = {}
    pace = PacedBatch.pace.__func__

    def recording(cls, batch, limiter, clock):
        paced = pace(cls, batch, limiter, clock)
        for (job_id, attempt, _), t in zip(paced, paced.not_before, strict=True):
            times[(job_id, attempt)] = t
        return paced

    monkeypatch.setattr(PacedBatch, "pace", classmethod(recording))
    return times


@pytest.mark.parametrize("backend", ["thread", "process", "inline"])
def test_each_attempt_starts_at_or_after_its_token(backend: str, reserved: dict) -> None:
    limit = RateLimit(400, burst=4)
    flaky = qlab.workloads.flaky(qlab.workloads.noop(), transient=0.2)
    with qlab.Pool(flaky, workers=3, backend=backend, rate_limit=limit, retry=2) as pool:
        list(pool.map(range(40)))
    run, origin = pool.trace(), pool.parts.trace.origin
    att = run.attempts
    assert len(reserved) == len(att) > 40  # every attempt, retries too, took a token
    nb = np.array([reserved[(j, a)] for j, a in zip(att.job_id, att.attempt, strict=True)])
    assert (att.start_s.to_numpy() + origin >= nb - 1e-9).all()
    # the bucket: tokens k < i are at least (i - k - burst + 1) / rate apart, so a
    # window of w seconds holds at most burst + w * rate of them
    times = np.sort(np.array(list(reserved.values())))
    assert _bucket_holds(times, limit.rate, limit.burst)
    assert (att.throttle_s >= 0).all() and (att.throttle_s > 0).any()
    assert run.meta["rate_limit"] == {"rate": 400.0, "burst": 4}


@pytest.mark.parametrize(("backend", "workers"), [("inline", 3), ("thread", 1)])
def test_no_window_of_a_second_holds_more_than_rate_plus_burst(backend: str, workers: int) -> None:
    run = qlab.run(qlab.workloads.noop(), range(60), workers=workers, backend=backend,
                   rate_limit=RateLimit(10, burst=3), clock=FakeClock(0.0))  # fmt: skip
    starts = np.sort(run.attempts.start_s.to_numpy())
    in_window = np.searchsorted(starts, starts + 1.0 - 1e-9, side="left") - np.arange(len(starts))
    assert in_window.max() <= 10 + 3
    # on the fake clock the starts are the schedule itself: 3 at once, then 0.1 s apart
    expected = np.r_[0.0, 0.0, np.arange(58) * 0.1]
    assert np.allclose(starts, expected)
    assert np.allclose(run.attempts.sort_values("start_s").throttle_s.iloc[3:], 0.1)


def _bucket_holds(times: np.ndarray, rate: float, burst: int) -> bool:
    """For all k < i: times[i] - times[k] >= (i - k - burst + 1) / rate."""
    u = times - np.arange(len(times)) / rate
    later_min = np.minimum.accumulate(u[::-1])[::-1][1:]  # min of u[i] for i > k
    return bool((later_min - u[:-1] >= -(burst - 1) / rate - 1e-9).all())


def test_the_bucket_check_catches_a_burst_too_many() -> None:
    ok = np.r_[0.0, 0.0, 0.0, 0.1, 0.2]
    assert _bucket_holds(ok, 10, 3)
    assert not _bucket_holds(np.r_[0.0, 0.0, 0.0, 0.0, 0.1], 10, 3)


def test_300_jobs_at_100_per_second_span_three_seconds() -> None:
    run = qlab.run(qlab.workloads.noop(), range(300), workers=8, rate_limit=100)
    starts = run.attempts.start_s
    assert starts.max() - starts.min() >= 2.99 - 1e-9  # the schedule: 299 gaps of 10 ms
    assert run.wall_s >= 2.99 - 1e-9
    assert run.summary()["ok"] == 300


def test_without_a_limit_nothing_waits() -> None:
    run = qlab.run(qlab.workloads.noop(), range(200), workers=2)
    assert (run.attempts.throttle_s == 0).all()
    assert "rate_limit" not in run.meta


def test_limiter_reserves_a_gcra_schedule() -> None:
    lim = Limiter(RateLimit(4, burst=2))
    assert lim.reserve(3, now=10.0) == [10.0, 10.0, 10.25]
    assert lim.reserve(1, now=20.0) == [20.0]  # idle: the bucket filled up again
    assert lim.reserve(2, now=20.0) == [20.0, 20.25]
    assert lim.reserved == 6


def test_paced_batch_pickles_and_slices_to_plain_batches() -> None:
    b = PacedBatch(range(3), 1, ["a", "b", "c"], [1.0, 2.0, 3.0])
    back = pickle.loads(pickle.dumps(b))
    assert isinstance(back, PacedBatch) and back.not_before == [1.0, 2.0, 3.0]
    assert list(back) == list(b)
    assert type(b[1:]) is Batch


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (0, ValueError, "rate_limit: rate must be a number > 0, got 0"),
        (-5, ValueError, "rate must be a number > 0"),
        (float("inf"), ValueError, "rate must be a number > 0"),
        ("100", TypeError, "rate_limit must be a number"),
        (True, TypeError, "rate_limit must be a number"),
    ],
)
def test_bad_rate_limit_fails_before_any_job(value, error, match) -> None:
    ran = []
    with pytest.raises(error, match=match):
        qlab.run(ran.append, range(3), rate_limit=value)
    assert ran == []


def test_bad_burst_names_it() -> None:
    with pytest.raises(ValueError, match="rate_limit: burst must be an int >= 1, got 0"):
        RateLimit(10, burst=0)


class StopAfter(qlab.Hook):
    """Sets ``stop`` once ``n`` jobs are ok (from the coordinator's progress ticks)."""

    def __init__(self, stop, n: int) -> None:
        self.stop, self.n = stop, n

    def on_progress(self, counts: dict) -> None:
        if counts["ok"] >= self.n:
            self.stop.set()


@pytest.mark.parametrize("backend", ["thread", "process", "inline"])
def test_a_stop_ends_a_rate_limited_run_early(backend: str) -> None:
    import threading

    stop = threading.Event()
    # 100 jobs at 10/s would take 10 s; the stop comes after the first 2
    run = qlab.run(qlab.workloads.noop(), range(100), workers=4, backend=backend,
                   rate_limit=10, stop=stop, hooks=[StopAfter(stop, 2)])  # fmt: skip
    s = run.summary()
    assert run.meta["interrupted"] == "stopped"
    assert s["ok"] >= 2 and s["cancelled"] > 50 and s["ok"] + s["cancelled"] == 100
