"""Shared queues with real consumers: two ``qlab worker`` processes (through the CLI)
share one queue, on a real redis-server (started here on a free loopback port, stopped
by PID) and on one SQLite file; the merged Run (``qlab.load_run(url)``) has each job
exactly once, run by both. A worker stopped by SIGTERM gives its jobs back; a rate
limit on a Redis queue holds across both consumers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import qlab
from tests.test_resume import (  # noqa: F401
    check_complete,
    redis_kind,
    redis_server,
    sqlite_kind,
    wait_for,
)

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parent.parent
GATE_ENV = "QLAB_TEST_GATE"


def gate(x: int) -> int:
    """A handler that lets no job finish until two processes have started one: each
    process leaves a file named after its pid in the folder $QLAB_TEST_GATE."""
    folder = Path(os.environ[GATE_ENV])
    (folder / str(os.getpid())).touch()
    done = threading.Event()
    for _ in range(6000):  # 30 s at most, then fail the job
        if len(os.listdir(folder)) >= 2:
            return x
        done.wait(0.005)
    raise TimeoutError("the other worker never started a job")


def slow(x: int) -> int:
    """A handler of 20 ms per job."""
    threading.Event().wait(0.02)
    return x


_entered, _go = threading.Event(), threading.Event()


def first_waits(x: int) -> int:
    """The first call waits (10 s at most) for any later call: with one worker in the
    first pool, that call comes from another pool."""
    if not _entered.is_set():
        _entered.set()
        _go.wait(10)
    else:
        _go.set()
    return x


def worker(url: str, handler: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "qlab", "worker", "--queue", url, "--handler", handler, *args]
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


@pytest.fixture(params=["redis", "sqlite"])
def kind(request, tmp_path, redis_server):  # noqa: F811
    """A fresh queue on each kind: its URL, and its attempt rows and jobs in flight."""
    if request.param == "sqlite":
        return sqlite_kind(tmp_path)
    if redis_server is None:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
    return redis_kind(redis_server, f"w{abs(hash(request.node.name)) % 10**8}")


@pytest.fixture
def url(kind) -> str:
    return kind.url


def test_two_worker_processes_share_one_queue(url, tmp_path):
    jobs = 80
    ids = qlab.enqueue(url, range(jobs), handler=gate)
    assert sorted(ids) == list(range(jobs))
    folder = tmp_path / "gate"
    folder.mkdir()
    env = {GATE_ENV: str(folder)}
    procs = [worker(url, "tests.test_worker_cli:gate", "--workers", "2", "--until-empty",
                    "--prefetch", "8", "--json", env=env) for _ in range(2)]  # fmt: skip
    results = [finish(p) for p in procs]
    for rc, _, err in results:
        assert rc == 0, err
    mine = [json.loads(out.strip().splitlines()[-1]) for _, out, _ in results]
    assert all(m["ok"] > 0 for m in mine) and sum(m["ok"] for m in mine) == jobs
    run = qlab.load_run(url)
    att = run.attempts
    assert len(run.jobs) == jobs and (run.jobs.status == "ok").all()
    assert (att.outcome == "ok").sum() == jobs and att.job_id.is_unique  # once each
    assert att.consumer.nunique() == 2  # both ran some, each named in the merged Run
    assert (att.host.astype(str) == socket.gethostname()).all()  # the consumers' machine
    assert (run.jobs.consumer.astype(str) == att.set_index("job_id").consumer.astype(str)).all()


def test_two_pools_in_one_process_share_one_queue(url):
    _entered.clear()
    _go.clear()
    qlab.enqueue(url, range(40), handler=first_waits)
    runs: list[qlab.Run] = []

    def consume(workers: int) -> None:
        runs.append(qlab.serve(url, first_waits, workers, until_empty=True, prefetch=4))

    first = threading.Thread(target=consume, args=(1,))
    first.start()
    assert _entered.wait(20)  # the first pool holds a job (and waits in it)
    second = threading.Thread(target=consume, args=(2,))
    second.start()
    for t in (first, second):
        t.join(timeout=60)
    assert len(runs) == 2 and all(r.summary()["ok"] > 0 for r in runs)
    assert sum(r.summary()["ok"] for r in runs) == 40
    merged = qlab.load_run(url)
    assert merged.attempts.job_id.is_unique and (merged.jobs.status == "ok").all()
    assert {r.meta["consumer"] for r in runs} == set(merged.attempts.consumer)


def test_a_killed_worker_loses_nothing(kind):
    url, jobs = kind.url, 200
    qlab.enqueue(url, range(jobs), handler=slow)
    first = worker(url, "tests.test_worker_cli:slow", "--workers", "4")
    try:
        wait_for(lambda: kind.rows() >= 10 or first.poll() is not None)
    finally:
        first.kill()  # SIGKILL: no goodbye, its lease stays until it is found dead
        finish(first)
    in_flight = len(kind.in_flight())  # taken and not settled: to be recorded lost
    assert in_flight > 0
    rc, _, err = finish(worker(url, "tests.test_worker_cli:slow", "--until-empty"))
    assert rc == 0, err
    run = qlab.load_run(url)
    att = run.attempts
    check_complete(run, in_flight, jobs)  # each job succeeded once, each lost one recorded
    lost = att[att.outcome == "lost"]
    assert lost.consumer.isin(att.consumer[att.outcome == "ok"]).all()  # the killed one ran


def test_sigterm_gives_the_jobs_back_and_nothing_is_lost(kind):
    url, jobs = kind.url, 300
    qlab.enqueue(url, range(jobs), handler=slow)
    first = worker(url, "tests.test_worker_cli:slow", "--workers", "2")  # serves forever
    try:
        wait_for(lambda: kind.rows() >= 10 or first.poll() is not None)
        first.send_signal(signal.SIGTERM)
    finally:
        rc, _, err = finish(first)
    assert rc == 130, err  # stopped gracefully: running attempts finished, the rest given back
    ran = qlab.load_run(url)
    assert 10 <= (ran.jobs.status == "ok").sum() < jobs
    rc, _, err = finish(worker(url, "tests.test_worker_cli:slow", "--workers", "4",
                               "--until-empty"))  # fmt: skip
    assert rc == 0, err
    run = qlab.load_run(url)
    check_complete(run, 0, jobs)
    assert run.attempts.consumer.nunique() == 2


def test_worker_refuses_another_handler_and_bad_input(url):
    qlab.enqueue(url, [1], handler=slow)
    rc, _, err = finish(worker(url, "tests.test_worker_cli:gate", "--until-empty"))
    assert rc == 2 and "was made for handler 'tests.test_worker_cli:slow'" in err
    rc, _, err = finish(worker(url, "tests.test_worker_cli:nothing"))
    assert rc == 2 and "has no 'nothing'" in err
    with pytest.raises(ValueError, match="prefetch"):
        qlab.serve(url, slow, prefetch=0)
    with pytest.raises(TypeError, match="cannot be pickled"):
        qlab.enqueue(url, [threading.Lock()])
    assert len(qlab.load_run(url).jobs) == 1  # nothing was added or run
