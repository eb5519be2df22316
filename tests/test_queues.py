"""The durable queues without crashes: the same outcomes as the memory queue, the
store's rows, the durability option, a stopped run that stays resumable, and bad
input named before any job runs."""

from __future__ import annotations

import sqlite3
import threading

import pytest

import qlab
from qlab import queues
from qlab.queues.sqlite import SQLiteStore
from qlab.queues.urls import parse_sqlite
from tests.helpers import free_port

pytestmark = pytest.mark.timeout(60)


def url_of(tmp_path, query: str = "") -> str:
    return f"sqlite:///{tmp_path / 'q.db'}{query}"


def test_sqlite_run_matches_the_memory_run_and_its_store(tmp_path):
    url = url_of(tmp_path)
    handler = qlab.workloads.seed()  # the Go original's rule: retries and failures
    mem = qlab.run(handler, range(100), workers=4)
    live = qlab.run(handler, range(100), workers=4, queue=url)
    stored = qlab.resume(url, handler)  # a finished queue: its Run from the store
    cols = ["job_id", "status", "attempts", "error_type"]
    for run, extra in ((live, []), (stored, ["consumer"])):  # the store names who ran it
        assert run.jobs[cols].astype(str).equals(mem.jobs[cols].astype(str))
        assert list(run.attempts.columns) == list(mem.attempts.columns) + extra
        assert list(run.jobs.columns) == list(mem.jobs.columns) + extra
    assert stored.attempts.consumer.nunique() == 1 and stored.attempts.consumer.notna().all()
    assert live.meta["queue"] == "SQLiteQueue" and stored.meta["resumes"] == 0
    a, b = stored.attempts, mem.attempts
    assert a[["job_id", "attempt", "outcome"]].equals(b[["job_id", "attempt", "outcome"]])
    assert a.backoff_s.isna().equals(b.backoff_s.isna())
    assert (stored.jobs.latency_s.dropna() >= 0).all()


def test_synchronous_is_a_url_parameter(tmp_path):
    for query, level in [("", 1), ("?synchronous=normal", 1), ("?synchronous=FULL", 2)]:
        store = SQLiteStore(url_of(tmp_path, query), create=True)
        try:
            assert store.db.execute("PRAGMA synchronous").fetchone()[0] == level
            assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            store.close()
    run = qlab.run(abs, range(3), workers=1, queue=url_of(tmp_path / "full", "?synchronous=full"))
    assert run.summary()["ok"] == 3


def test_a_stopped_pool_leaves_its_jobs_to_resume(tmp_path):
    url = url_of(tmp_path)
    started, gate = threading.Event(), threading.Event()

    def handler(x: int) -> int:
        if x == 5:
            started.set()
            gate.wait(10)  # the pool stops while this attempt runs
        return x

    pool = qlab.Pool(handler, workers=2, queue=url, batch_size=10)
    futures = [pool.submit(x) for x in range(200)]
    assert started.wait(10)
    pool.shutdown(wait=False, cancel_pending=True)  # the rest of 5's batch goes back too
    gate.set()
    pool.shutdown(wait=True)
    assert futures[5].result() == 5
    run = pool.trace()
    assert 0 < run.summary()["cancelled"] < 200
    done = qlab.resume(url, handler, workers=2)  # same process: the lease was released
    assert (done.jobs.status == "ok").all() and len(done.jobs) == 200
    assert done.meta["lost"] == 0 and done.meta["resumes"] == 1
    assert (done.attempts.outcome == "ok").sum() == 200


def test_cancelled_futures_are_cancelled_for_good(tmp_path):
    url = url_of(tmp_path)
    gate = threading.Event()
    with qlab.Pool(lambda x: (gate.wait(10), x)[1], workers=1, queue=url, batch_size=1) as pool:
        first = pool.submit(0)
        later = pool.submit(1)
        assert later.cancel()
        gate.set()
        assert first.result(timeout=10) == 0
    run = qlab.resume(url, lambda x: x, force=True)
    assert run.jobs.status.tolist() == ["ok", "cancelled"]


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sqlite://", "sqlite:///path"),
        ("sqlite://host/q.db", "sqlite:///path"),
        ("sqlite:///q.db?synchronous=sometimes", "synchronous"),
        ("sqlite:///q.db?lease=0", "lease"),
        ("sqlite:///q.db?lease=soon", "lease"),
        ("sqlite:///q.db?fsync=1", "unknown parameter 'fsync'"),
        ("redis://", "redis://host"),
        ("redis://h/0?name=a:b", "name"),
        ("redis://h/0?lease=-1", "lease"),
        ("postgres://h/db", "queue must be 'memory' or a URL of"),
        ("memroy", "queue must be"),
    ],
)
def test_bad_urls_are_named_before_any_job_runs(url, says):
    ran = []
    with pytest.raises(ValueError, match="queue") as err:
        qlab.run(ran.append, range(3), queue=url)
    assert says in str(err.value) and not ran


def test_bad_files_and_used_queues_are_refused(tmp_path):
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE t(x)")
    (tmp_path / "junk.db").write_bytes(b"not a database at all, " * 100)
    for name, says in [("foreign.db", "not a qlab queue"), ("junk.db", "not a qlab queue")]:
        with pytest.raises(ValueError, match=says):
            qlab.run(abs, range(3), queue=f"sqlite:///{tmp_path / name}")
        with pytest.raises(ValueError, match=says):
            qlab.resume(f"sqlite:///{tmp_path / name}", abs)
    with pytest.raises(ValueError, match="no queue file"):
        qlab.resume(f"sqlite:///{tmp_path / 'missing.db'}", abs)
    url = url_of(tmp_path)
    qlab.run(abs, range(3), queue=url)
    with pytest.raises(ValueError, match="already holds 3 jobs"):
        qlab.run(abs, range(3), queue=url)
    with pytest.raises(ValueError, match="made for handler 'builtins:abs'"):
        qlab.resume(url, round)
    assert qlab.resume(url, round, force=True).summary()["ok"] == 3
    with pytest.raises(TypeError, match="queue="):
        qlab.resume(url, abs, queue="memory")


def test_unpicklable_payloads_are_rejected_at_submit(tmp_path):
    lock = threading.Lock()
    with pytest.raises(TypeError, match="cannot be pickled"):
        qlab.run(abs, [1, lock], queue=url_of(tmp_path))
    with qlab.Pool(abs, workers=1, queue=url_of(tmp_path / "pool")) as pool:
        with pytest.raises(
            TypeError, match=r"payload 0 \(<unlocked _thread.lock.*cannot be pickled"
        ):
            pool.submit(lock)
        assert pool.submit(-2).result(timeout=10) == 2


def test_lambdas_and_local_functions_go_through_cloudpickle(tmp_path):
    def local(x: int) -> int:
        return x + 1

    url = url_of(tmp_path)
    run = qlab.run(lambda f: f(1), [local, lambda x: x * 10], workers=1, queue=url,
                   keep_results=True)  # fmt: skip
    assert run.jobs.result.tolist() == [2, 10]
    # a lambda handler kept by the producer, run by a consumer that names none
    qlab.enqueue(url_of(tmp_path / "shared"), [1, 2], handler=lambda x: x + 100)
    served = qlab.serve(url_of(tmp_path / "shared"), until_empty=True, keep_results=True)
    assert served.summary()["ok"] == 2


def test_unreachable_redis_is_named(tmp_path):
    pytest.importorskip("redis")
    port = free_port()
    url = f"redis://:secret@127.0.0.1:{port}/0?name=q"
    for call in (lambda: qlab.run(abs, range(3), queue=url), lambda: qlab.enqueue(url, [1]),
                 lambda: qlab.serve(url, abs), lambda: qlab.load_run(url)):  # fmt: skip
        with pytest.raises(ConnectionError, match=r"queue 'redis://:\*\*\*@127.0.0.1"):
            call()


def test_shared_queue_input_is_checked_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="no queue file"):
        qlab.load_run(f"sqlite:///{tmp_path / 'missing.db'}")
    url = url_of(tmp_path)
    qlab.run(abs, range(3), queue=url)
    with pytest.raises(ValueError, match=r"belongs to the qlab\.run that made it"):
        qlab.enqueue(url, [1], handler=abs)
    shared = url_of(tmp_path / "shared")
    with pytest.raises(ValueError, match="keeps no handler"):
        qlab.serve(shared, until_empty=True)  # made by a consumer that named none
    assert qlab.enqueue(shared, [-1, -2], handler=abs) == [0, 1]
    with pytest.raises(ValueError, match="made for handler"):
        qlab.enqueue(shared, [1], handler=round)
    with pytest.raises(TypeError, match="payloads must be"):
        qlab.enqueue(shared, "abc")
    with pytest.raises(ValueError, match="workers must be"):
        qlab.serve(shared, abs, workers=0)
    with pytest.raises(TypeError, match="queue="):
        qlab.serve(shared, abs, queue="memory")
    stop = threading.Event()
    stop.set()  # a consumer stopped before it runs anything: the jobs stay for others
    stopped = qlab.serve(shared, abs, stop=stop)
    assert stopped.meta["interrupted"] and len(stopped.jobs) == 0
    assert (qlab.load_run(shared).jobs.status == "pending").all()
    run = qlab.serve(shared, abs, until_empty=True)
    assert run.summary()["ok"] == 2 and qlab.load_run(shared).summary()["ok"] == 2


def test_urls_parse_and_passwords_are_redacted():
    path, opts = parse_sqlite("sqlite:////tmp/x/q.db?lease=3&timeout=1")
    assert str(path) == "/tmp/x/q.db" and opts["lease"] == 3.0 and opts["timeout"] == 1.0
    assert queues.redact("rediss://u:pw@h:1/0") == "rediss://u:***@h:1/0"
    assert queues.redact("redis://h:1/0") == "redis://h:1/0"
    assert {"sqlite", "redis", "rediss"} <= set(queues.KINDS)
