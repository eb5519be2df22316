"""A Dask scheduler that dies mid-run (issue 27, defect 3): not the jobs' fault.

Before the fix every remaining job was dead-lettered: each attempt crashed with
ClosedClientError until its retries ran out, and a durable queue kept them failed for
good. Now no attempt is charged, the pool stops with the jobs not run still pending,
the run raises an error that says so, and ``qlab.resume`` finishes them.

The test owns its cluster (a scheduler and two workers, tests/dask_cluster.py, not the
session's) and kills the scheduler by its PID.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest

import qlab
from tests.helpers import OkAfter

pytest.importorskip("distributed")
pytestmark = pytest.mark.timeout(180)

JOBS = 300


def test_a_dead_scheduler_charges_no_attempt_and_leaves_the_rest_resumable(tmp_path):
    from qlab.backends import Dask
    from tests.dask_cluster import DaskCluster

    (tmp_path / "dask").mkdir()
    cluster = DaskCluster(tmp_path / "dask", n=2)
    url = f"sqlite:///{tmp_path / 'q.db'}"
    handler = qlab.workloads.sleep(ms=20)
    hook = OkAfter(20)

    def kill_the_scheduler() -> None:
        if hook.seen.wait(120):
            os.kill(cluster.procs[0].pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_the_scheduler)
    error: Exception | None = None
    try:
        killer.start()
        backend = Dask(address=cluster.address)  # reconnect_timeout: 10 s by default
        try:
            run = qlab.run(handler, range(JOBS), workers=2, backend=backend, queue=url,
                           hooks=[hook], retry=3)  # fmt: skip
        except Exception as exc:
            error, run = exc, exc.qlab_run
    finally:
        hook.seen.set()
        killer.join()
        cluster.stop()
    assert set(run.attempts.outcome) == {"ok"}  # no crashed or failed attempt: none charged
    assert (run.jobs.status == "failed").sum() == 0
    assert 20 <= (run.jobs.status == "ok").sum() < JOBS
    assert isinstance(error, qlab.BackendLost)
    assert "scheduler" in str(error) and "is gone" in str(error) and "pending" in str(error)
    # the jobs not run are still pending in the store: a resume runs each once
    after = qlab.resume(url, handler, workers=2, retry=3)
    assert (after.jobs.status == "ok").sum() == JOBS and after.meta["lost"] == 0
    assert after.attempts.groupby("job_id").size().max() == 1  # ok exactly once each
