"""Crash tests of the durable queues: a run killed hard (SIGKILL) at seeded moments,
resumed each time, ends with every job done exactly once and its lost attempts
recorded; two resumers at once never run a job twice. On SQLite and on a real
redis-server (started here on a free loopback port, stopped by PID)."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

import qlab

pytestmark = pytest.mark.timeout(60)

JOBS = 2000
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
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for the child"
        threading.Event().wait(0.01)


def kill_when(url: str, mode: str, rows: Callable[[], int], at: int) -> None:
    """Run a child (``run`` or ``resume``) on ``url``; SIGKILL it once ``at`` attempt
    rows are recorded (or it ends), and reap it."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, url, mode, str(JOBS)])
    try:
        wait_for(lambda: rows() >= at or proc.poll() is not None)
    finally:
        proc.kill() if proc.poll() is None else None
        proc.wait(timeout=10)


def check_complete(run: qlab.Run, lost_expected: int) -> None:
    """Every job ok exactly once, every lost attempt recorded, nothing else lost."""
    jobs, att = run.jobs, run.attempts
    assert len(jobs) == JOBS and (jobs.status == "ok").all()
    ok_rows = att[att.outcome == "ok"].groupby("job_id").size()
    assert len(ok_rows) == JOBS and (ok_rows == 1).all()
    assert run.meta["lost"] == lost_expected == (att.outcome == "lost").sum()
    # attempts of a job are numbered 1..k, a lost one included
    assert (att.groupby("job_id").attempt.max() == jobs.set_index("job_id").attempts).all()


# -- SQLite ------------------------------------------------------------------------------


def sqlite_rows(path: str) -> Callable[[], int]:
    def rows() -> int:
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                return db.execute("SELECT count(*) FROM qlab_attempts").fetchone()[0]
        except sqlite3.Error:
            return 0

    return rows


def sqlite_in_flight(path: str) -> int:
    with sqlite3.connect(path) as db:
        sql = "SELECT count(*) FROM qlab_jobs WHERE status = 0 AND taken IS NOT NULL"
        return db.execute(sql).fetchone()[0]


def test_sigkilled_sqlite_run_resumes_every_job_once(tmp_path):
    path = str(tmp_path / "q.db")
    url = f"sqlite:///{path}?lease=2"
    rows = sqlite_rows(path)
    rnd = random.Random(13)
    lost = 0
    for k, mode in enumerate(["run"] + ["resume"] * 9):  # 10 kills at seeded moments
        kill_when(url, mode, rows, rows() + rnd.randint(50, 200))
        lost += sqlite_in_flight(path)
        assert k or lost, "a run of 4 busy workers was killed with nothing in flight"
    run = qlab.resume(url, HANDLER, workers=4)
    check_complete(run, lost)
    assert run.meta["resumes"] == 1
    again = qlab.resume(url, HANDLER)  # a finished queue: its Run, nothing runs
    assert again.meta["resumes"] == 0 and len(again.attempts) == len(run.attempts)


def test_two_resumers_at_once_never_run_a_job_twice(tmp_path):
    path = str(tmp_path / "q.db")
    url = f"sqlite:///{path}"
    rows = sqlite_rows(path)
    kill_when(url, "run", rows, 200)
    lost = sqlite_in_flight(path)
    runs: list[qlab.Run] = []
    threads = [
        threading.Thread(target=lambda: runs.append(qlab.resume(url, HANDLER, workers=2)))
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
