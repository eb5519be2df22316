"""Open-loop arrivals, the load sweep, M/M/c and Little's law.

The schedules are exact for a seed; a job's submitted_s is its intended arrival
time. No timing assertions: where a real clock is used, only bounds that the
schedule itself implies are checked.
"""

from __future__ import annotations

import math
import random
import types

import numpy as np
import pandas as pd
import pytest

import qlab
from qlab.engine.arrivals import Constant, Periodic, Poisson
from qlab.lab.load import knee, sweep_load
from qlab.lab.queueing import erlang_c, littles_law, mmc
from qlab.testing import FakeClock

pytestmark = pytest.mark.timeout(60)


def test_poisson_schedule_is_exact_for_a_seed() -> None:
    rng = random.Random(42)
    expected, t = [], 0.0
    for _ in range(1000):
        expected.append(t)
        t += rng.expovariate(500.0)
    assert Poisson(rate=500, seed=42).schedule(1000) == expected
    assert Poisson(rate=500).schedule(5, seed=42) == expected[:5]  # the run's seed
    assert Poisson(rate=500, seed=1).schedule(5) != expected[:5]
    gaps = np.diff(Poisson(rate=500, seed=3).schedule(20_000))
    assert gaps.mean() == pytest.approx(1 / 500, rel=0.05)  # a Poisson process of rate 500


def test_periodic_schedule() -> None:
    assert Periodic(rate=4).schedule(4) == [0.0, 0.25, 0.5, 0.75]
    assert Constant is Periodic  # the name, in qlab.arrivals


def test_submitted_s_is_the_intended_arrival_time_on_a_fake_clock() -> None:
    run = qlab.run(abs, range(20), workers=2, backend="inline",
                   arrivals=Poisson(rate=100, seed=7), clock=FakeClock(0.0))  # fmt: skip
    assert np.allclose(run.jobs.submitted_s, Poisson(rate=100, seed=7).schedule(20))
    assert run.meta["arrivals"] == "Poisson(rate=100.0, seed=7)"


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_arrivals_keep_their_schedule_when_the_pool_falls_behind(backend: str) -> None:
    # 1 worker, 2 ms jobs, 2000 arrivals/s: the pool falls behind at once; each job is
    # still stamped with its intended time, so its latency includes the time it was due
    run = qlab.run(qlab.workloads.sleep(ms=2), range(60), workers=1, backend=backend,
                   arrivals=Periodic(rate=2000))  # fmt: skip
    jobs = run.jobs
    assert np.allclose(np.diff(jobs.submitted_s), 1 / 2000, atol=1e-9)
    assert (jobs.latency_s == jobs.end_s - jobs.submitted_s).all()
    # 60 jobs of >= 2 ms each take >= 120 ms; the last was due 29.5 ms after the first
    assert jobs.latency_s.iloc[-1] >= 0.120 - 0.0295 - 1e-9
    assert run.summary()["ok"] == 60


def test_bad_arrivals_fail_before_any_job() -> None:
    ran: list = []
    with pytest.raises(TypeError, match=r"arrivals must be qlab\.Poisson"):
        qlab.run(ran.append, range(3), arrivals=500)
    with pytest.raises(TypeError, match=r"qlab\.Constant is a backoff strategy"):
        qlab.run(ran.append, range(3), arrivals=qlab.Constant(0.1))
    with pytest.raises(ValueError, match="arrivals: Poisson rate must be a number > 0, got 0"):
        Poisson(rate=0)
    with pytest.raises(ValueError, match="arrivals: Periodic rate"):
        Periodic(rate=float("nan"))
    assert ran == []


def test_erlang_c_and_mmc_match_the_closed_forms() -> None:
    assert erlang_c(1, 0.7) == pytest.approx(0.7)  # M/M/1: a job waits with probability rho
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    q = mmc(rate=8, service_s=0.1, servers=1)
    assert q.latency_mean_s == pytest.approx(1 / (10 - 8))
    for p in (0.5, 0.95, 0.99):  # M/M/1 latency is exponential of rate mu - lambda
        assert q.latency_quantile(p) == pytest.approx(-math.log(1 - p) / 2, rel=1e-6)
    c = mmc(rate=30, service_s=0.1, servers=4)
    assert c.in_system_mean == pytest.approx(c.rate * c.latency_mean_s)  # L = lambda W
    assert c.queue_mean == pytest.approx(c.p_wait * 3 / (4 - 3))
    with pytest.raises(ValueError, match="the queue grows forever"):
        mmc(rate=50, service_s=0.1, servers=4)


def test_littles_law_on_a_constructed_trace() -> None:
    # jobs arrive every second and stay 2 s: L = 2 in steady state, lambda = 1, W = 2
    sub = np.arange(10.0)
    jobs = pd.DataFrame({"submitted_s": sub, "end_s": sub + 2.0})
    fake = types.SimpleNamespace(jobs=jobs, wall_s=11.0)
    check = littles_law(fake, start=2.0, end=8.0)
    assert check["L"] == pytest.approx(2.0)
    assert check["lam"] == pytest.approx(7 / 6)  # 7 arrivals in [2, 8]
    assert check["W"] == pytest.approx(2.0)


def test_littles_law_holds_on_a_real_trace() -> None:
    run = qlab.run(qlab.workloads.sleep(ms=1), range(300), workers=4,
                   arrivals=Poisson(rate=1000, seed=0))  # fmt: skip
    check = littles_law(run)
    assert check["jobs"] == 300
    # jobs that straddle the window's end are the only difference: a few of 300
    assert abs(check["rel_error"]) < 0.2


def test_knee() -> None:
    assert knee([1, 2, 3, 4, 5], [1.0, 1.1, 1.3, 2.0, 6.0]) == 4.0
    assert knee([1, 2], [1.0, 2.0]) is None
    assert knee([1, 2, 3], [1.0, 1.0, 1.0]) is None


def test_sweep_load_is_tidy_and_plots(tmp_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    ls = sweep_load(qlab.workloads.sleep(ms=1), load=[400, 100, 200], workers=2, jobs=30,
                    repeats=2)  # fmt: skip
    df = ls.df
    assert df["load"].tolist() == [100.0, 100.0, 200.0, 200.0, 400.0, 400.0]
    assert df["repeat"].tolist() == [0, 1] * 3 and (df["ok"] == 30).all()
    assert {"latency_p99_s", "achieved", "littles_L", "littles_lam_W"} <= set(df.columns)
    assert len(ls.points) == 3 and len(ls.runs) == 6
    pred = ls.predict(service_s=0.001)
    assert np.allclose(pred["utilisation"], [0.05, 0.1, 0.2])
    ax = ls.plot(predict=True)
    ax.figure.savefig(tmp_path / "load.png")
    assert ax.get_xlabel() == "offered load (jobs/s)"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"load": []}, ValueError, "load must name at least one"),
        ({"load": [100, 0]}, ValueError, "load must hold numbers > 0"),
        ({"load": "100"}, TypeError, "load must be a list"),
        ({"load": [100], "arrivals": "bursty"}, ValueError, "arrivals must be 'poisson'"),
        ({"load": [100], "workers": 0}, ValueError, "workers must be an int >= 1"),
    ],
)
def test_sweep_load_checks_its_input(kwargs, error, match) -> None:
    ran: list = []
    with pytest.raises(error, match=match):
        sweep_load(ran.append, **kwargs)
    assert ran == []


def test_sweep_with_load_is_an_open_loop_sweep():
    ls = qlab.sweep(qlab.workloads.noop(), workers=2, load=[200, 400], jobs=40)
    assert sorted(ls.df["load"].unique().tolist()) == [200, 400]
    with pytest.raises(ValueError, match="workers must be one int"):
        qlab.sweep(load=[100], workers=[1, 2])
