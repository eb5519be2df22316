"""What only the process backend has to show: pickling, crashes, warm workers."""

from __future__ import annotations

import os
import signal
import threading

import pandas as pd
import pytest

import qlab
from qlab import workloads
from qlab.backends.process import RemoteTraceback, warm_workers

OUTCOME = ["job_id", "status", "attempts", "error_type"]


def test_a_lambda_runs_and_its_results_come_back():
    run = qlab.run(lambda x: x * 2, range(1000), workers=2, backend="process", keep_results=True)
    assert run.jobs.result.tolist() == [x * 2 for x in range(1000)]
    assert sorted(run.attempts.worker.unique()) == [0, 1]
    pids = run.meta["pids"]
    assert sorted(pids) == [0, 1] and all(len(p) == 1 for p in pids.values())
    assert os.getpid() not in {p[0] for p in pids.values()}
    assert run.meta["startup_s"] > 0


class DiesOnce:
    """Job 7's first attempt kills its own worker process."""

    def __init__(self, how: str) -> None:
        self.how = how

    def __call__(self, payload):
        if payload == 7 and qlab.current().attempt == 1:
            if self.how == "exit":
                os._exit(1)
            os.kill(os.getpid(), signal.SIGKILL)
        return payload


@pytest.mark.parametrize("how", ["exit", "SIGKILL"])
def test_a_worker_that_dies_costs_its_job_one_attempt(how):
    run = qlab.run(DiesOnce(how), range(40), workers=2, backend="process", keep_results=True,
                   retry=qlab.Retry(3, backoff=None), batch_size=8)  # fmt: skip
    jobs = run.jobs.set_index("job_id")
    assert jobs.status.eq("ok").all() and jobs.result.tolist() == list(range(40))
    assert jobs.attempts[7] == 2 and jobs.attempts.drop(7).eq(1).all()
    first = run.attempts.query("job_id == 7 and attempt == 1").iloc[0]
    assert first.outcome == "crashed" and "died" in first.error
    assert sum(len(p) for p in run.meta["pids"].values()) == 3  # the dead one was replaced


def test_same_seed_same_outcomes_on_thread_and_process():
    handler = workloads.flaky(workloads.sha256(rounds=5), transient=0.3, permanent=0.05)
    retry = qlab.Retry(max_retries=2, backoff=None)
    thread, process = (
        qlab.run(handler, range(400), workers=2, backend=b, retry=retry, seed=5).jobs[OUTCOME]
        for b in ("thread", "process")
    )
    pd.testing.assert_frame_equal(thread, process)
    assert set(thread.status) == {"ok", "failed"}


def test_a_handler_that_cannot_be_pickled_fails_fast():
    lock = threading.Lock()
    with pytest.raises(TypeError, match=r"handler cannot be pickled.*lock"):
        qlab.run(lambda x: lock, range(3), workers=1, backend="process")


def test_a_payload_that_cannot_be_pickled_fails_its_job():
    payloads = [1, threading.Lock(), 3]
    run = qlab.run(repr, payloads, workers=1, backend="process", retry=qlab.Retry(3, None))
    jobs = run.jobs
    assert jobs.status.tolist() == ["ok", "failed", "ok"]
    assert jobs.attempts.tolist() == [1, 1, 1]
    assert "payload of job 1 cannot be pickled" in jobs.error[1]


class Boom(Exception):
    pass


def explode(payload):
    raise Boom(f"bad payload {payload}")


def test_errors_keep_the_remote_traceback_as_cause():
    with qlab.Pool(explode, workers=1, backend="process", retry=0) as pool:
        fut = pool.submit(5)
        with pytest.raises(Boom, match="bad payload 5") as info:
            fut.result(timeout=30)
    assert isinstance(info.value.__cause__, RemoteTraceback)
    assert "in explode" in str(info.value.__cause__)


def test_warm_workers_pay_start_up_once():
    with warm_workers():
        first = qlab.run(abs, range(10), workers=2, backend="process")
        second = qlab.run(abs, range(10), workers=2, backend="process")
    assert first.meta["warm_workers"] == 0 and second.meta["warm_workers"] == 2
    assert second.meta["pids"] == first.meta["pids"]
    assert second.meta["startup_s"] < first.meta["startup_s"] / 10
