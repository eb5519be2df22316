"""Durable queues under store faults (issue 27, defects 1 and 4): every durable store ×
every fault of tests/faults.py, each asserting one invariant.

A fault is injected from inside the run (job 300 of 3,000 triggers it). The run must
stop taking jobs, let the running ones end, and raise :class:`qlab.StoreError` naming
the queue and the cause, with the Run attached (``exc.qlab_run``). Then, once the store
works again, ``qlab.resume`` finishes the queue and every job in it is either ok
exactly once or failed by its own handler (jobs ``x % 50 == 7`` raise ValueError); for a
Redis that restarted empty, nothing of the queue is left behind to corrupt a later run.
The module prints the matrix (store × fault → invariant held) at its end.
"""

from __future__ import annotations

import contextlib

import pytest

import qlab
from tests.faults import FaultAt, RedisServer, SQLiteLock, tiny_disk

pytestmark = pytest.mark.timeout(90)

N, AT = 3000, 300
MATRIX: dict[tuple[str, str], str] = {}  # each test fills its cell once its asserts held
CELLS = [
    *[("sqlite", fault) for fault in ("none", "disk full", "locked")],
    *[("redis", fault) for fault in ("none", "killed", "restarted empty", "frozen (SIGSTOP)")],
]


@pytest.fixture(scope="module", autouse=True)
def print_matrix(request):
    yield
    if not MATRIX:
        return
    rows = [(cell, MATRIX.get(cell, "NOT SHOWN (failed, skipped or not run)")) for cell in CELLS]
    lines = ["", "fault-injection matrix (store x fault -> invariant)"]
    lines += [f"  {store:<7} x {fault:<16} -> {held}" for (store, fault), held in rows]
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print("\n".join(lines), flush=True)


def own_failures(n: int) -> set[int]:
    return {x for x in range(n) if x % 50 == 7}


def check_resumed(url: str, exc: BaseException, n: int) -> qlab.Run:
    """The invariant after a fault, once the store works again: the error names the
    queue and carries the Run; resume leaves every job of the store ok exactly once or
    failed by its own handler."""
    assert isinstance(exc, qlab.StoreError), repr(exc)
    assert qlab.queues.redact(url) in str(exc)
    mem = exc.qlab_run
    assert mem.meta.get("store_error") or "interrupted" in mem.meta
    assert (mem.jobs.status != "pending").all()  # the in-memory Run: one final status each
    before = qlab.load_run(url)
    assert (before.jobs.status == "pending").any(), "the fault left nothing to resume"
    # what the store says is ok, the in-memory run ran ok too (never the other way round)
    ok_store = set(before.jobs.job_id[before.jobs.status == "ok"])
    assert ok_store <= set(mem.jobs.job_id[mem.jobs.status == "ok"])
    run = qlab.resume(url, FaultAt(-1, None), workers=4, retry=None)
    jobs, att = run.jobs, run.attempts
    m = len(jobs)
    assert set(jobs.job_id) == set(range(m)) and AT < m <= n
    own = jobs.job_id.isin(own_failures(m))
    assert (jobs.status[own] == "failed").all() and (jobs.error_type[own] == "ValueError").all()
    assert (jobs.status[~own] == "ok").all()
    ok_rows = att[att.outcome == "ok"].groupby("job_id").size()
    assert len(ok_rows) == (~own).sum() and (ok_rows == 1).all()
    return run


def run_with_fault(url: str, fault) -> BaseException:
    handler = FaultAt(AT, fault)
    with pytest.raises(qlab.StoreError) as info:
        qlab.run(handler, range(N), workers=4, queue=url, retry=None, batch_size=10)
    assert handler.fired.is_set()
    return info.value


# -- SQLite -----------------------------------------------------------------------------


def test_sqlite_no_fault(tmp_path):
    url = f"sqlite:///{tmp_path / 'q.db'}"
    run = qlab.run(FaultAt(-1, None), range(N), workers=4, queue=url, retry=None)
    assert run.summary()["ok"] == N - len(own_failures(N))
    MATRIX[("sqlite", "none")] = "held"


def test_sqlite_disk_full_stops_the_run_and_stays_resumable(tmp_path):
    """Defect 1: a 600 KB disk fills mid-run: before, the run returned 20,000 ok."""
    with tiny_disk(tmp_path / "disk") as disk:
        url = f"sqlite:///{disk.path / 'q.db'}"
        handler = FaultAt(-1, None)
        with pytest.raises(qlab.StoreError) as info:
            qlab.run(handler, range(20_000), workers=4, queue=url, retry=None, batch_size=10)
        exc = info.value
        assert "full" in str(exc)
        filler = disk.fill()  # every byte taken: resume finishes (in the WAL's room) or
        try:  # says what is wrong: never a raw OperationalError
            qlab.resume(url, handler, retry=None)
        except qlab.StoreError as again:
            assert "full" in str(again)
        filler.unlink(missing_ok=True)
        disk.grow()
        run = qlab.resume(url, handler, workers=4, retry=None)
        jobs = run.jobs
        own = jobs.job_id.isin(own_failures(len(jobs)))
        assert (jobs.status[~own] == "ok").all() and (jobs.status[own] == "failed").all()
        att = run.attempts
        assert (att[att.outcome == "ok"].groupby("job_id").size() == 1).all()
    MATRIX[("sqlite", "disk full")] = "held"


def test_sqlite_locked_by_another_process(tmp_path):
    url = f"sqlite:///{tmp_path / 'q.db'}?timeout=0.5"
    lock = SQLiteLock(tmp_path / "q.db")
    try:
        exc = run_with_fault(url, lock.hold)
        assert "locked" in str(exc)
        lock.release()
        check_resumed(url, exc, N)
    finally:
        lock.close()
    MATRIX[("sqlite", "locked")] = "held"


# -- Redis --------------------------------------------------------------------------------


def test_redis_no_fault(tmp_path):
    with RedisServer(tmp_path) as server:
        url = f"{server.url}?name=nofault"
        run = qlab.run(FaultAt(-1, None), range(N), workers=4, queue=url, retry=None)
        assert run.summary()["ok"] == N - len(own_failures(N))
    MATRIX[("redis", "none")] = "held"


def test_redis_killed_stops_the_run_and_stays_resumable(tmp_path):
    with RedisServer(tmp_path, persist=True) as server:
        url = f"{server.url}?name=killed&socket_connect_timeout=1"
        exc = run_with_fault(url, server.kill)
        server.start()  # back from its append-only file
        check_resumed(url, exc, N)
    MATRIX[("redis", "killed")] = "held"


def test_redis_restarted_empty_is_detected_and_leaves_nothing(tmp_path):
    """Defect 1: before, the run reported every job ok, and its later writes left keys
    that a new run on the name loaded ("5 jobs, 101 attempts")."""
    with RedisServer(tmp_path) as server:
        url = f"{server.url}?name=emptied"
        exc = run_with_fault(url, server.restart_empty)
        assert qlab.queues.redact(url) in str(exc) and "gone" in str(exc)
        assert server.keys("emptied") == []  # no stray key of the old run
        run = qlab.run(abs, range(5), queue=url)
        again = qlab.load_run(url)
        assert len(run.jobs) == len(again.jobs) == len(again.attempts) == 5
    MATRIX[("redis", "restarted empty")] = "held"


def test_redis_frozen_times_out_and_stays_resumable(tmp_path):
    """Defect 4: a SIGSTOPped redis-server hung the run (no socket timeout)."""
    with RedisServer(tmp_path) as server:
        url = f"{server.url}?name=frozen&socket_timeout=1"
        exc = run_with_fault(url, server.freeze)
        assert "Timeout" in str(exc) or "timed out" in str(exc)
        server.thaw()
        check_resumed(url, exc, N)
    MATRIX[("redis", "frozen (SIGSTOP)")] = "held"


def test_redis_url_sets_socket_timeouts_by_default():
    """Defect 4: every command is bounded unless the URL says otherwise."""
    from qlab.queues.urls import parse_redis

    target, _, _ = parse_redis("redis://127.0.0.1:6379/0?name=q")
    assert "socket_timeout=" in target and "socket_connect_timeout=" in target
    target, _, _ = parse_redis("redis://h/0?name=q&socket_timeout=2.5")
    assert "socket_timeout=2.5" in target
    with pytest.raises(ValueError, match="socket_timeout"):
        parse_redis("redis://h/0?socket_timeout=never")
