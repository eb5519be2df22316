"""What only the process backend has to show: pickling, crashes, warm workers, the
fork server, and the process-backend defects of issue 10 (tests named after them)."""

from __future__ import annotations

import os
import signal
import sys
import threading

import pandas as pd
import psutil
import pytest

import qlab
from qlab import workloads
from qlab.backends.process import forkserver
from qlab.backends.process.backend import RemoteTraceback, warm_workers
from tests.helpers import SocketGate

OUTCOME = ["job_id", "status", "attempts", "error_type"]


def test_a_lambda_runs_and_its_results_come_back():
    run = qlab.run(lambda x: x * 2, range(1000), workers=2, backend="process", keep_results=True)
    assert run.jobs.result.tolist() == [x * 2 for x in range(1000)]
    # which of the two workers takes the quick jobs is the scheduler's choice (one may
    # take all 1,000 before the other is up): both started, and no other worker ran
    assert set(run.attempts.worker.unique()) <= {0, 1}
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


def run_where_job_7_dies_once(backend, how: str = "exit") -> qlab.Run:
    """40 jobs on 2 workers in batches of 8, job 7's first attempt ending its worker
    process (tests/test_dask.py runs it too); asserts that every job ends ok with its
    result and that job 7 alone paid, with one crashed attempt."""
    run = qlab.run(DiesOnce(how), range(40), workers=2, backend=backend, keep_results=True,
                   retry=qlab.Retry(3, backoff=None), batch_size=8)  # fmt: skip
    jobs = run.jobs.set_index("job_id")
    assert jobs.status.eq("ok").all() and jobs.result.tolist() == list(range(40))
    assert jobs.attempts[7] == 2 and jobs.attempts.drop(7).eq(1).all()
    assert run.attempts.query("job_id == 7").outcome.tolist() == ["crashed", "ok"]
    return run


@pytest.mark.parametrize("how", ["exit", "SIGKILL"])
def test_a_worker_that_dies_costs_its_job_one_attempt(how):
    run = run_where_job_7_dies_once("process", how)
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


def test_a_payload_that_cannot_be_pickled_fails_its_job():  # and its attempt: defect 4
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


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def _server_stopped() -> bool:
    return not forkserver._SERVER and forkserver._USERS[0] == 0


# -- the fork server -------------------------------------------------------------------


def test_workers_import_only_what_a_batch_needs():
    run = qlab.run(lambda x: sorted(sys.modules), [0], workers=1, backend="process",
                   keep_results=True)  # fmt: skip
    modules = set(run.jobs.result[0])
    assert "qlab.core.loop" in modules
    heavy = {"pandas", "numpy", "matplotlib", "joblib", "qlab.engine.pool", "qlab.trace.frames"}
    assert not heavy & modules
    assert "multiprocessing.resource_tracker" not in modules


def test_qlab_current_works_in_a_worker_without_importing_the_engine():
    def handler(x):
        ctx = qlab.current()
        return ctx.job_id, ctx.attempt, "qlab.engine.pool" in sys.modules

    run = qlab.run(handler, range(3), workers=1, backend="process", keep_results=True)
    assert run.jobs.result.tolist() == [(0, 1, False), (1, 1, False), (2, 1, False)]


def test_the_fork_server_lives_as_long_as_its_last_holder():
    before = _children()
    with warm_workers():
        qlab.run(abs, range(4), workers=2, backend="process")
        assert forkserver._SERVER and forkserver._USERS[0] == 1  # held by the block
        assert len(_children() - before) == 3  # the server and two parked workers
    assert _server_stopped()
    assert _children() <= before


def test_a_timed_out_attempt_kills_and_replaces_its_worker():
    gate = SocketGate()
    try:
        run = qlab.run(GateOn(gate, 2), range(6), workers=1, backend="process", timeout=0.5,
                       retry=qlab.Retry(0, backoff=None), batch_size=3)  # fmt: skip
    finally:
        gate.close()
    jobs = run.jobs.set_index("job_id")
    assert jobs.status[2] == "failed" and jobs.drop(2).status.eq("ok").all()
    assert run.attempts.query("job_id == 2").outcome.tolist() == ["timeout"]
    assert len(run.meta["pids"][0]) == 2 and len(run.meta["replacements"]) == 1


class GateOn:
    """Blocks on ``gate`` for job ``job`` only."""

    def __init__(self, gate: SocketGate, job: int) -> None:
        self.gate, self.job = gate, job

    def __call__(self, payload):
        return self.gate(payload) if payload == self.job else payload


# -- issue 10, defect 1: two process pools alive at once ---------------------------------


def test_defect_1_two_process_pools_alive_at_once_do_not_deadlock():
    pool = qlab.Pool(abs, workers=1, backend="process")
    try:
        assert pool.submit(-1).result(timeout=30) == 1
        run = qlab.run(abs, range(10), workers=1, backend="process")
        assert run.summary()["ok"] == 10
        assert pool.submit(-2).result(timeout=30) == 2  # the first pool still works
    finally:
        pool.shutdown()
    assert _server_stopped()


def test_defect_1_two_threads_running_process_pools_at_once():
    for _ in range(3):  # it used to hang about half the time
        barrier = threading.Barrier(2, timeout=30)
        runs: list = []

        def one(barrier: threading.Barrier, runs: list) -> None:
            barrier.wait()
            runs.append(qlab.run(abs, range(50), workers=1, backend="process"))

        threads = [threading.Thread(target=one, args=(barrier, runs)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(50)
        assert not any(t.is_alive() for t in threads), "two concurrent process pools hung"
        assert [r.summary()["ok"] for r in runs] == [50, 50]
        assert _server_stopped()


# -- issue 10, defect 3: an exception that cannot be unpickled in the parent -------------


class TwoArgError(Exception):
    """Pickles, but cannot be rebuilt: unpickling calls ``__init__(a)`` without ``b``."""

    def __init__(self, a, b):
        super().__init__(a)
        self.b = b


def raise_two_arg_error_on_3(payload):
    if payload == 3:
        raise TwoArgError("bad three", 2)
    return payload * 10


def test_defect_3_an_error_that_cannot_be_unpickled_fails_only_its_job():
    run = qlab.run(raise_two_arg_error_on_3, range(8), workers=1, backend="process",
                   keep_results=True, retry=0, batch_size=8)  # fmt: skip
    jobs = run.jobs.set_index("job_id")
    assert jobs.status[3] == "failed" and jobs.drop(3).status.eq("ok").all()
    assert jobs.result.drop(3).tolist() == [x * 10 for x in range(8) if x != 3]
    assert (jobs.error_type[3], jobs.error[3]) == ("TwoArgError", "bad three")
    assert jobs.attempts.eq(1).all()
    with qlab.Pool(raise_two_arg_error_on_3, workers=1, backend="process", retry=0) as pool:
        err = pool.submit(3).exception(timeout=30)
        assert pool.submit(4).result(timeout=30) == 40
    assert isinstance(err, RemoteTraceback)
    assert "TwoArgError: bad three" in str(err)
    assert "could not be rebuilt in the parent process" in str(err)


# -- issue 10, defect 4: a job that failed must not have an ok attempt -------------------


def test_defect_4_a_result_that_cannot_be_pickled_fails_its_attempt_and_job():
    handler = lambda x: threading.Lock() if x == 2 else x  # noqa: E731
    run = qlab.run(handler, range(5), workers=1, backend="process", keep_results=True,
                   retry=qlab.Retry(3, backoff=None), batch_size=5)  # fmt: skip
    jobs = run.jobs.set_index("job_id")
    assert jobs.status[2] == "failed" and jobs.drop(2).status.eq("ok").all()
    assert jobs.result.drop(2).tolist() == [0, 1, 3, 4]
    assert "result cannot be pickled" in jobs.error[2]
    assert run.attempts.query("job_id == 2").outcome.tolist() == ["failed"]


def test_defect_4_a_payload_that_cannot_be_pickled_fails_its_attempt():
    run = qlab.run(repr, [1, threading.Lock(), 3], workers=1, backend="process")
    assert run.jobs.status.tolist() == ["ok", "failed", "ok"]
    assert run.attempts.query("job_id == 1").outcome.tolist() == ["failed"]


# -- issue 10, defect 9: BaseException in a handler; failed and killed start-ups ---------


def exit_on_3(payload):
    if payload == 3:
        raise SystemExit(4)
    return payload


def test_defect_9_a_base_exception_is_recorded_with_its_type_without_a_restart():
    run = qlab.run(exit_on_3, range(10), workers=2, backend="process", retry=0, batch_size=2)
    att = run.attempts.query("job_id == 3").iloc[0]
    assert (att.outcome, att.error_type) == ("crashed", "SystemExit")
    assert run.jobs.set_index("job_id").drop(3).status.eq("ok").all()
    assert all(len(p) == 1 for p in run.meta["pids"].values())  # no worker restarted


def _cannot_load():
    raise ValueError("this handler cannot be loaded in a worker")


class LoadsBadly:
    """Pickles in the parent; unpickling it in a worker raises."""

    def __reduce__(self):
        return (_cannot_load, ())

    def __call__(self, payload):
        return payload


class KillsItsLoader:
    """Pickles in the parent; unpickling it kills the worker (exit code 3)."""

    def __reduce__(self):
        return (os._exit, (3,))

    def __call__(self, payload):
        return payload


def test_defect_9_a_failed_start_leaves_no_process_behind():
    before = _children()
    with pytest.raises(TypeError, match=r"cannot be unpickled in a worker.*cannot be loaded"):
        qlab.run(LoadsBadly(), range(3), workers=2, backend="process")
    assert _children() <= before  # no worker, no fork server, no resource tracker
    assert _server_stopped()


def test_defect_9_a_worker_killed_during_start_up_raises_a_clear_error():
    before = _children()
    with pytest.raises(RuntimeError, match=r"worker process \d+ died .*exit code 3"):
        qlab.run(KillsItsLoader(), range(3), workers=1, backend="process")
    assert _children() <= before
    assert _server_stopped()


def test_a_process_forked_from_the_parent_does_not_keep_the_server_alive():
    import multiprocessing as mp

    r, w = os.pipe()
    with qlab.Pool(abs, workers=1, backend="process") as pool:
        assert pool.submit(-1).result(timeout=30) == 1
        server = forkserver._SERVER[0]
        child = mp.get_context("fork").Process(target=os.read, args=(r, 1))
        child.start()  # it inherits the parent's end of the server's socket
    try:
        assert server.popen.returncode == 0  # it saw EOF and left; it was not killed
    finally:
        os.write(w, b"x")
        child.join(30)
        os.close(r)
        os.close(w)


def test_workers_and_the_fork_server_leave_ctrl_c_to_the_parent():
    with qlab.Pool(lambda x: os.getpid(), workers=1, backend="process") as pool:
        pid = pool.submit(0).result(timeout=30)
        server = forkserver._SERVER[0].popen
        os.kill(pid, signal.SIGINT)
        os.kill(server.pid, signal.SIGINT)
        os.kill(server.pid, signal.SIGTERM)
        assert pool.submit(1).result(timeout=30) == pid  # the same worker, alive
        assert server.poll() is None
    assert server.returncode == 0
