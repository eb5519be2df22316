"""Crash tests of the durable queues: a run killed hard (SIGKILL) at seeded moments,
resumed each time, ends with every job done exactly once and its lost attempts
recorded; two resumers at once never run a job twice. On SQLite and on a real
redis-server (started here on a free loopback port, stopped by PID)."""

from __future__ import annotations

import random
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable

import pytest

import qlab
from tests.helpers import free_port, wait_redis, wait_until

pytestmark = pytest.mark.timeout(60)

JOBS = 2000  # issue 13: a durable run of 2,000 short jobs, killed 10 times
HANDLER = qlab.workloads.sleep(ms=1)
CHILD = """
import sys, qlab
url, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
handler = qlab.workloads.sleep(ms=1)
if mode == "run":
    qlab.run(handler, range(n), workers=4, queue=url)
else:
    qlab.resume(url, handler, workers=4)
"""


def wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``cond`` until it holds; fail after ``timeout`` seconds."""
    wait_until(cond, timeout, "the child")


def kill_when(url: str, mode: str, rows: Callable[[], int], at: int) -> None:
    """Run a child (``run`` or ``resume``) on ``url``; SIGKILL it once ``at`` attempt
    rows are recorded (or it ends), and reap it."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, url, mode, str(JOBS)])
    try:
        wait_for(lambda: rows() >= at or proc.poll() is not None)
    finally:
        proc.kill() if proc.poll() is None else None
        proc.wait(timeout=10)


def check_complete(run: qlab.Run, lost_expected: int, n: int = JOBS) -> None:
    """Every one of ``n`` jobs ok exactly once, every lost attempt recorded, nothing
    else lost."""
    jobs, att = run.jobs, run.attempts
    assert len(jobs) == n and (jobs.status == "ok").all()
    ok_rows = att[att.outcome == "ok"].groupby("job_id").size()
    assert len(ok_rows) == n and (ok_rows == 1).all()
    assert run.meta["lost"] == lost_expected == (att.outcome == "lost").sum()
    # attempts of a job are numbered 1..k, a lost one included
    assert (att.groupby("job_id").attempt.max() == jobs.set_index("job_id").attempts).all()


# -- the stores, as a test sees them -------------------------------------------------


class Kind:
    """A fresh queue of one kind: its URL, and what a test reads of its store."""

    def __init__(self, url: str, rows: Callable[[], int], in_flight: Callable[[], set]):
        self.url, self.rows, self.in_flight = url, rows, in_flight


def sqlite_kind(tmp_path, query: str = "") -> Kind:
    path = str(tmp_path / "q.db")

    def rows() -> int:
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                return db.execute("SELECT count(*) FROM qlab_attempts").fetchone()[0]
        except sqlite3.Error:
            return 0

    def in_flight() -> set:
        # (job, when taken): a job a crash left taken stays so, with the same time,
        # until a resumer takes it over, so a set counts it once over several crashes
        with sqlite3.connect(path) as db:
            sql = "SELECT id, taken FROM qlab_jobs WHERE status = 0 AND taken IS NOT NULL"
            return set(db.execute(sql).fetchall())

    return Kind(f"sqlite:///{path}{query}", rows, in_flight)


def redis_kind(server: str, name: str) -> Kind:
    import redis

    r = redis.Redis.from_url(server)
    return Kind(
        f"{server}?name={name}&lease=2",
        lambda: int(r.get(f"qlab:{name}:rows") or 0),
        lambda: set(r.hgetall(f"qlab:{name}:running").items()),  # (job, "time owner")
    )


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    """A real redis-server on a free loopback port, no persistence; stopped by PID."""
    exe = shutil.which("redis-server")
    if exe is None:  # the Redis cases skip; CI installs it (apt-get install -y redis-server)
        yield None
        return
    import redis

    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = redis.Redis(port=port)
        wait_redis(proc, client)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_server(proc)


def stop_server(proc: subprocess.Popen) -> None:
    """Stop a server we started, by its PID: SIGTERM, then SIGKILL after 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(params=["sqlite", "redis"])
def kind(request, tmp_path, redis_server) -> Kind:
    """Each crash test runs on SQLite and on Redis (the server is started once, before
    the leak check of the first test, so it is not taken for a leaked child)."""
    if request.param == "sqlite":
        return sqlite_kind(tmp_path, "?lease=2")
    if redis_server is None:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
    return redis_kind(redis_server, f"t{abs(hash(request.node.name)) % 10**8}")


# -- the crash tests ---------------------------------------------------------------------


@pytest.mark.timeout(120)  # ten children, each pays an interpreter's start-up
def test_sigkilled_run_resumes_every_job_once(kind):
    rnd = random.Random(13)
    lost: set = set()
    kills = 10
    for k, mode in enumerate(["run"] + ["resume"] * (kills - 1)):  # at seeded moments
        kill_when(kind.url, mode, kind.rows, kind.rows() + rnd.randint(30, 90))
        lost |= kind.in_flight()
        assert k or lost, "a run of 4 busy workers was killed with nothing in flight"
    run = qlab.resume(kind.url, HANDLER, workers=4)
    check_complete(run, len(lost))
    assert run.meta["resumes"] <= 1  # 0 if the last child finished before its kill
    again = qlab.resume(kind.url, HANDLER)  # a finished queue: its Run, nothing runs
    assert again.meta["resumes"] == 0 and len(again.attempts) == len(run.attempts)


def test_two_resumers_at_once_never_run_a_job_twice(kind):
    kill_when(kind.url, "run", kind.rows, 200)
    lost = len(kind.in_flight())
    runs: list[qlab.Run] = []
    threads = [
        threading.Thread(target=lambda: runs.append(qlab.resume(kind.url, HANDLER, workers=2)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=40)
    assert len(runs) == 2
    for run in runs:
        check_complete(run, lost)
    assert sorted(r.meta["resumes"] for r in runs)[1] >= 1
    # no job has two attempts that overlap in time (none ran twice at once)
    att = runs[0].attempts.sort_values(["job_id", "start_s"])
    same = att.job_id.eq(att.job_id.shift())
    assert not (same & (att.start_s < att.end_s.shift())).any()
