"""The Dask backend on real Dask processes: what the contract suite cannot show.

The session fixture ``dask_cluster`` (tests/conftest.py, tests/dask_cluster.py) is a
real ``dask scheduler`` and two ``dask worker`` processes (each under a nanny, one
thread) on 127.0.0.1 with free ports, started through the CLI that distributed
installs and stopped by their PIDs at the end of the session; the contract suite
(tests/test_contract.py) runs on it too. Two tests run ``backend="dask"``, where qlab
starts and closes a LocalCluster of its own.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pandas as pd
import pytest

import qlab
from qlab import workloads
from qlab.trace.hosts import cpu_count, local_host, placement
from tests.dask_cluster import DaskCluster
from tests.helpers import SocketGate
from tests.test_contract import FailFirst
from tests.test_process import run_where_job_7_dies_once

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.timeout(120)

OUTCOME = ["job_id", "status", "attempts", "error_type"]


@pytest.fixture
def cluster(dask_cluster: DaskCluster) -> DaskCluster:
    """The session's cluster (conftest.py; conftest's leak check spares its processes)."""
    return dask_cluster


def on(cluster: DaskCluster, **kwargs) -> qlab.backends.Dask:
    return qlab.backends.Dask(address=cluster.address, **kwargs)


class Blocks:
    """Job 5's first attempt writes its pid and blocks on the gate (ignoring cancel)."""

    def __init__(self, gate: SocketGate, pid_file: str) -> None:
        self.gate, self.pid_file = gate, pid_file

    def __call__(self, payload):
        if payload == 5 and qlab.current().attempt == 1:
            Path(self.pid_file).write_text(str(os.getpid()))
            self.gate(payload)
        return payload


def test_a_lambda_runs_on_a_local_cluster_that_qlab_owns():
    run = qlab.run(lambda x: x * 2, range(1000), workers=2, backend="dask", keep_results=True)
    assert run.jobs.result.tolist() == [x * 2 for x in range(1000)]
    meta = run.meta
    assert meta["backend"] == "dask" and meta["dask_owned"] is True
    assert meta["dask_scheduler"].startswith("tcp://127.0.0.1:")
    assert meta["dask_dashboard"] is None or "127.0.0.1" in meta["dask_dashboard"]
    assert meta["clock_offsets"] == dict.fromkeys(meta["clock_offsets"], 0.0)  # one machine
    assert sorted(meta["hosts"]) == [0, 1] and len(meta["pids"]) == 2
    here = local_host()  # a LocalCluster: both workers on this machine, at their addresses
    assert meta["worker_hosts"] == {w: [[0.0, here, a[0]]] for w, a in meta["dask_workers"].items()}
    assert meta["host_cpus"] == {here: cpu_count()}
    assert placement(meta) == {"hosts": 1, "cores": min(2, cpu_count())}
    assert set(run.attempts.host) == set(run.jobs.host) == {here}
    assert run.jobs.first_start_s.ge(run.jobs.submitted_s).all()


def test_a_warm_cluster_is_shared_and_rescaled_between_runs():
    from qlab.backends.dask.backend import warm_cluster

    with warm_cluster():
        runs = [qlab.run(abs, range(20), workers=w, backend="dask") for w in (1, 2, 1)]
    assert [len(r.meta["dask_workers"]) for r in runs] == [1, 2, 1]
    assert len({r.meta["dask_scheduler"] for r in runs}) == 1  # one cluster for all three
    assert all(r.summary()["ok"] == 20 for r in runs)


def test_regression_jobs_slower_than_the_poll_interval_come_back(cluster):
    """result(timeout=0.1) in a loop restarted the fetch of a finished task at every
    timeout; on a busy machine the fetch never completed and 100 ms jobs hung."""
    run = qlab.run(workloads.sleep(ms=150), range(6), workers=2, backend=on(cluster))
    assert run.summary()["ok"] == 6


def test_retries_then_success_and_permanent_failure(cluster):
    retry = qlab.Retry(max_retries=3, backoff=None, permanent=(ValueError,))
    run = qlab.run(FailFirst(2), range(5), workers=2, backend=on(cluster), retry=retry,
                   keep_results=True)  # fmt: skip
    assert run.jobs.status.eq("ok").all() and run.jobs.attempts.tolist() == [3] * 5
    assert run.jobs.result.tolist() == list(range(5))
    counts = run.attempts.outcome.value_counts()
    assert counts[counts > 0].to_dict() == {"retry": 10, "ok": 5}
    run = qlab.run(FailFirst(9, ValueError), range(3), workers=2, backend=on(cluster), retry=retry)
    assert run.jobs.attempts.tolist() == [1, 1, 1] and run.jobs.status.eq("failed").all()
    assert run.failed.error_type.eq("ValueError").all()


def test_same_seed_same_outcomes_as_the_thread_backend(cluster):
    handler = workloads.flaky(workloads.noop(), transient=0.3, permanent=0.05)
    retry = qlab.Retry(max_retries=2, backoff=qlab.Exponential(0.001, cap=0.004, jitter=True))
    runs = [qlab.run(handler, range(300), workers=2, backend=b, retry=retry, seed=3)
            for b in ("thread", on(cluster, clocks="dask"))]  # fmt: skip
    pd.testing.assert_frame_equal(runs[0].jobs[OUTCOME], runs[1].jobs[OUTCOME])
    a, b = (r.attempts.set_index(["job_id", "attempt"]).backoff_s for r in runs)
    pd.testing.assert_series_equal(a, b)
    assert {"ok", "failed"} <= set(runs[1].jobs.status)
    offsets = runs[1].meta["clock_offsets"]  # clocks="dask": Dask's delays applied
    assert len(offsets) == 2 and all(abs(v) < 60 for v in offsets.values())
    assert runs[1].meta["dask_owned"] is False


def test_os_exit_on_job_7_costs_it_one_attempt(cluster):
    run = run_where_job_7_dies_once(on(cluster))
    first = run.attempts.query("job_id == 7 and attempt == 1").iloc[0]
    assert first.outcome == "crashed" and "died" in first.error
    assert first.error_type == "WorkerCrashed"
    assert sum(len(p) for p in run.meta["dask_workers"].values()) == 3  # one replacement
    # regression: the nanny restarts the worker at its address (the session cluster's
    # workers keep their ports), and the slot takes it (it took it for the dead one,
    # waited a minute, then shared the other slot's worker); since when is in meta
    (moved,) = [v for v in run.meta["worker_hosts"].values() if len(v) == 2]
    assert moved[0][2] == moved[1][2] and moved[1][0] > 0


def test_sigkill_of_a_dask_worker_process_charges_only_the_running_job(cluster, tmp_path):
    gate, pid_file = SocketGate(), tmp_path / "pid"
    try:
        with qlab.Pool(Blocks(gate, str(pid_file)), workers=2, backend=on(cluster),
                       retry=qlab.Retry(3, backoff=None), batch_size=4) as pool:  # fmt: skip
            futures = [pool.submit(i) for i in range(20)]
            assert gate.started.wait(60)
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        run = pool.trace()
    finally:
        gate.close()
    assert [f.result() for f in futures] == list(range(20))
    jobs = run.jobs.set_index("job_id")
    assert jobs.status.eq("ok").all()  # every job has exactly one final status
    assert jobs.attempts[5] == 2 and jobs.attempts.drop(5).eq(1).all()
    five = run.attempts.query("job_id == 5")
    assert five.outcome.tolist() == ["crashed", "ok"], five[["outcome", "error"]].to_dict("records")


def test_timeout_kills_the_stuck_worker_and_retries(cluster):
    gate = SocketGate()
    try:
        run = qlab.run(Blocks(gate, os.devnull), range(8), workers=2, backend=on(cluster),
                       timeout=1.0, retry=qlab.Retry(3, backoff=None),
                       keep_results=True)  # fmt: skip
    finally:
        gate.close()
    jobs = run.jobs.set_index("job_id")
    assert jobs.status.eq("ok").all() and jobs.result.tolist() == list(range(8))
    first = run.attempts.query("job_id == 5").iloc[0]
    assert first.outcome == "timeout" and first.error_type == "TimeoutError"
    assert "timeout=1.0" in first.error and "Dask worker process was killed" in first.error


def test_a_stop_cancels_and_leaves_the_users_cluster_running(cluster):
    gate, stop = SocketGate(), threading.Event()

    def stop_while_job_5_runs():
        if gate.started.wait(60):
            stop.set()
            gate.release()

    helper = threading.Thread(target=stop_while_job_5_runs)
    helper.start()
    client = cluster.client
    try:
        run = qlab.run(Blocks(gate, os.devnull), range(200), workers=2, batch_size=4,
                       backend=qlab.backends.Dask(client=client), stop=stop)  # fmt: skip
    finally:
        gate.close()
        helper.join(60)
    assert run.meta["interrupted"]
    jobs = run.jobs.set_index("job_id")
    assert set(jobs.status) == {"ok", "cancelled"} and jobs.status[5] == "ok"
    assert cluster.up()  # the user's cluster: both workers, and a task runs


def test_bad_input_fails_fast_naming_the_parameter(cluster):
    with pytest.raises(ValueError, match="address and client"):
        qlab.backends.Dask(address=cluster.address, client=cluster.client)
    with pytest.raises(TypeError, match="address"):
        qlab.backends.Dask(address=8786)
    with pytest.raises(ValueError, match="clocks"):
        qlab.backends.Dask(clocks="exact")
    ran = []
    with pytest.raises(ValueError, match=r"workers: the Dask cluster at .* has 2 worker"):
        qlab.run(ran.append, range(3), workers=3, backend=on(cluster))
    assert not ran


def test_a_batch_that_dask_moves_to_another_worker_process_refuses_to_run(cluster, tmp_path):
    """Regression: Dask reschedules a dead worker's tasks, onto a worker its nanny
    restarted at the same address too, so a batch whose jobs qlab had already sent back
    to the queue ran again there (it blocked that worker, and its jobs ran twice). A
    batch carries the id of the worker process it was sent to, and no other runs it."""
    from qlab.backends.dask import remote as dask_remote

    ids = cluster.client.run(dask_remote.worker_id)
    assert len(set(ids.values())) == 2 and all(i for i in ids.values())  # one id each
    (address, wid), (other, _) = sorted(ids.items())
    args = ("no-pool", b"", 0, str(tmp_path / "progress"), 1, b"")

    def send(to: str):
        return cluster.client.submit(dask_remote.run_batch_remote, *args, wid, workers=[to],
                                     pure=False).result(timeout=60)  # fmt: skip

    with pytest.raises(dask_remote.NotThisWorker, match=f"sent to worker {wid}"):
        send(other)
    with pytest.raises(EOFError):  # its own worker passes the check (then finds no spec)
        send(address)


@pytest.fixture
def elsewhere(monkeypatch):
    """The parent believes it runs on another machine than the workers: every worker
    takes the paths of a remote one (progress read and flags set through client.run,
    liveness from the scheduler, a kill through client.run, clocks from Dask's delays)."""
    from qlab.backends.dask import remote as dask_remote

    monkeypatch.setattr(dask_remote, "host_id", lambda: "another-machine/boot")


def test_workers_on_another_machine_recover_from_a_crash_and_a_timeout(cluster, elsewhere):
    """The paths of remote workers, on this machine's cluster. Regression: the kill of
    a remote worker (``client.run(hard_exit, wait=False)``) raised inside Dask, which
    runs only coroutines without waiting, so a stuck remote attempt was never stopped."""
    run = run_where_job_7_dies_once(on(cluster))
    assert run.meta["clock_offsets"] and all(
        abs(v) < 60 for v in run.meta["clock_offsets"].values()
    )
    gate = SocketGate()
    try:
        run = qlab.run(Blocks(gate, os.devnull), range(8), workers=2, backend=on(cluster),
                       timeout=1.0, retry=qlab.Retry(3, backoff=None))  # fmt: skip
    finally:
        gate.close()
    assert run.jobs.status.eq("ok").all()
    assert run.attempts.query("job_id == 5").outcome.tolist()[0] == "timeout"
