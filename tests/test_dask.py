"""The Dask backend against the engine's contract, on real Dask processes.

A module fixture starts a real ``dask scheduler`` and two ``dask worker`` processes
(each under a nanny, one thread) on 127.0.0.1 with free ports, through the CLI that
distributed installs, waits until both workers are registered, and stops them by
their PIDs at the end, even when a test fails. One test runs ``backend="dask"``,
where qlab starts and closes a LocalCluster of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

import qlab
from qlab import workloads
from tests.helpers import SocketGate

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.timeout(120)

OUTCOME = ["job_id", "status", "attempts", "error_type"]
DASK = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
WORKER = [sys.executable, "-m", "distributed.cli.dask_worker"]


class DaskCluster:
    """A scheduler and workers started through distributed's CLI, stopped by PID."""

    def __init__(self, tmp: Path, n: int = 2) -> None:
        self.procs: list[subprocess.Popen] = []
        self.descendants: set[int] = set()
        file = tmp / "scheduler.json"
        self._start([*DASK, "--host", "127.0.0.1", "--port", "0", "--dashboard-address",
                     "127.0.0.1:0", "--scheduler-file", str(file)])  # fmt: skip
        deadline = time.monotonic() + 60
        while not file.exists() or not file.read_text().strip():
            if time.monotonic() > deadline or self.procs[0].poll() is not None:
                raise RuntimeError("the dask scheduler did not start")
            threading.Event().wait(0.05)  # polling a file the scheduler writes
        self.address = json.loads(file.read_text())["address"]
        for i in range(n):
            self._start([*WORKER, self.address, "--host", "127.0.0.1", "--nthreads", "1",
                         "--nworkers", "1", "--no-dashboard", "--name", f"w{i}"])  # fmt: skip
        self.client = distributed.Client(self.address, set_as_default=False, timeout=60)
        self.wait_for_workers(n)

    def _start(self, args: list[str]) -> None:
        log = subprocess.DEVNULL
        self.procs.append(subprocess.Popen(args, stdout=log, stderr=log))

    def wait_for_workers(self, n: int = 2) -> None:
        self.client.wait_for_workers(n, timeout=60)
        self.pids()

    def pids(self) -> set[int]:
        """Every process of the cluster now (the nannies' workers change when killed)."""
        for p in self.procs:
            with contextlib.suppress(psutil.Error):
                self.descendants |= {c.pid for c in psutil.Process(p.pid).children(True)}
        return {p.pid for p in self.procs} | self.descendants

    def stop(self) -> None:
        """Kill every process of the cluster by PID (nothing in it needs a clean exit)."""
        with contextlib.suppress(Exception):
            self.client.close(timeout=10)
        self.pids()
        left = []
        for pid in [p.pid for p in self.procs] + sorted(self.descendants):
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                proc.kill()
                left.append(proc)
        for p in self.procs:
            p.wait(20)
        _, alive = psutil.wait_procs(left, timeout=20)
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"dask processes left alive: {alive}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = DaskCluster(tmp_path_factory.mktemp("dask"))
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(autouse=True)
def no_leaks(request):
    """Like conftest's: no qlab thread and no child process outlive a test, except the
    module cluster's own processes (its nannies restart the workers tests kill)."""
    c = request.getfixturevalue("cluster") if "cluster" in request.fixturenames else None
    ours = c.pids() if c else set()
    before = {p.pid for p in psutil.Process().children(recursive=True)} | ours
    yield
    if c is not None:
        c.wait_for_workers(2)  # the next test gets two workers again
    deadline = time.monotonic() + 10
    while True:
        ours = c.pids() if c else set()
        threads = [t for t in threading.enumerate() if t.name.startswith("qlab-") and t.is_alive()]
        children = [p for p in psutil.Process().children(recursive=True)
                    if p.pid not in before | ours and p.is_running()
                    and p.status() != psutil.STATUS_ZOMBIE]  # fmt: skip
        if (not threads and not children) or time.monotonic() > deadline:
            break
        threading.Event().wait(0.05)
    assert not threads, f"qlab threads left alive: {threads}"
    assert not children, f"child processes left alive: {children}"


def on(cluster: DaskCluster, **kwargs) -> qlab.backends.Dask:
    return qlab.backends.Dask(address=cluster.address, **kwargs)


class FailFirst:
    def __init__(self, n: int, exc: type[Exception] = KeyError) -> None:
        self.n, self.exc = n, exc

    def __call__(self, payload):
        if qlab.current().attempt <= self.n:
            raise self.exc(f"attempt {qlab.current().attempt}")
        return payload


class DiesOnce:
    """Job 7's first attempt ends its own Dask worker process."""

    def __call__(self, payload):
        if payload == 7 and qlab.current().attempt == 1:
            os._exit(1)
        return payload


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
    assert run.jobs.first_start_s.ge(run.jobs.submitted_s).all()


def test_a_warm_cluster_is_shared_and_rescaled_between_runs():
    from qlab.backends.dask import warm_cluster

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
    run = qlab.run(DiesOnce(), range(40), workers=2, backend=on(cluster), keep_results=True,
                   retry=qlab.Retry(3, backoff=None), batch_size=8)  # fmt: skip
    jobs = run.jobs.set_index("job_id")
    assert jobs.status.eq("ok").all() and jobs.result.tolist() == list(range(40))
    assert jobs.attempts[7] == 2 and jobs.attempts.drop(7).eq(1).all()
    first = run.attempts.query("job_id == 7 and attempt == 1").iloc[0]
    assert first.outcome == "crashed" and "died" in first.error
    assert first.error_type == "WorkerCrashed"
    assert sum(len(p) for p in run.meta["dask_workers"].values()) == 3  # one replacement


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
    assert run.attempts.query("job_id == 5").outcome.tolist() == ["crashed", "ok"]


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
    assert len(client.scheduler_info()["workers"]) == 2  # the user's cluster is up
    assert client.status == "running" and client.submit(abs, -3).result(timeout=30) == 3


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
