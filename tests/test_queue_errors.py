"""Durable queues' errors (issue 27): two runs on one fresh queue (defect 2), Redis
passwords in every message (defect 7), and errors that name the queue and say what is
wrong (defect 14). Each test failed on the code before the fix."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

import pytest

import qlab
from qlab.queues.memory import Phase
from tests.faults import FaultAt, RedisServer, tiny_disk
from tests.helpers import free_port

pytestmark = pytest.mark.timeout(60)

CANARY = "Canary-pw-7c1d"


# -- defect 2: two runs on one fresh queue ----------------------------------------------


class Gate:
    """A handler whose jobs wait until both runs have started (or one was refused)."""

    def __init__(self) -> None:
        self.open = threading.Event()

    def __call__(self, x: int) -> int:
        assert self.open.wait(20)
        return x


def two_runs_at_once(url: str) -> tuple[list[qlab.Run], list[BaseException]]:
    gate, runs, errors = Gate(), [], []
    start = threading.Barrier(2)

    def one() -> None:
        start.wait()
        try:
            runs.append(qlab.run(gate, range(300), workers=2, queue=url))
        except ValueError as exc:
            errors.append(exc)
            gate.open.set()

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    gate.open.set()
    return runs, errors


@pytest.fixture(params=["sqlite", "redis"])
def fresh_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'q.db'}"
        return
    with RedisServer(tmp_path) as server:
        yield f"{server.url}?name=fresh"


def test_a_second_pool_on_a_fresh_queue_is_refused_before_any_job(fresh_url):
    pool = qlab.Pool(abs, workers=1, queue=fresh_url)
    try:
        with pytest.raises(ValueError, match="in use by another run"):
            qlab.Pool(abs, workers=1, queue=fresh_url)
    finally:
        pool.shutdown()


def test_two_runs_at_once_on_a_fresh_queue_one_is_refused(fresh_url):
    runs, errors = two_runs_at_once(fresh_url)
    assert len(runs) == 1 and len(errors) == 1, (runs, errors)
    assert "in use by another run" in str(errors[0]) or "already holds" in str(errors[0])
    whole = qlab.load_run(fresh_url)
    assert len(whole.jobs) == len(whole.attempts) == 300
    assert whole.attempts.consumer.nunique() == 1


# -- defect 7: passwords ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"reddis://:{CANARY}@127.0.0.1:6379/0?name=q",
        f"redis://:{CANARY}@127.0.0.1:6379/0?name=a b",
        f"redis://:{CANARY}@127.0.0.1:6379/0?name=q&lease=0",
        f"redis://127.0.0.1:6379/0?password={CANARY}&name=a:b",
        f"redis://user:{CANARY}@127.0.0.1:6379/x?name=q",
        f"redis://:{CANARY}@127.0.0.1:6379/0?name=q&foo=1",
    ],
)
def test_bad_urls_never_show_the_password(url):
    with pytest.raises(ValueError) as info:
        qlab.run(abs, [1], queue=url)
    assert CANARY not in str(info.value) and "***" in str(info.value)


def test_the_password_is_redacted_in_repr_logs_errors_and_worker_stderr(tmp_path, caplog):
    with RedisServer(tmp_path, password=CANARY) as server:
        url = f"{server.url}?name=pw"
        q = qlab.queues.resolve(url, capacity=4, handler=abs)
        try:
            assert CANARY not in repr(q) and "***" in repr(q)
        finally:
            q.advance_phase(Phase.JOINED)
            q.close()  # (gives up the queue and closes its connection)
        caplog.set_level(logging.DEBUG, logger="qlab")
        with pytest.raises(qlab.StoreError) as info:
            qlab.run(FaultAt(50, server.kill), range(500), queue=f"{server.url}?name=pw2",
                     batch_size=5, retry=None)  # fmt: skip
        assert CANARY not in str(info.value) and CANARY not in repr(info.value)
        assert caplog.records and CANARY not in caplog.text
    dead = f"redis://:{CANARY}@127.0.0.1:{free_port()}/0?name=q"
    for queue in (dead, dead.replace("redis", "reddis", 1)):
        got = subprocess.run(
            [sys.executable, "-m", "qlab", "worker", "--queue", queue, "--until-empty"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert got.returncode == 2 and "qlab: error" in got.stderr
        assert CANARY not in got.stderr + got.stdout


def test_redact_covers_every_form():
    from qlab.queues import redact

    assert redact(f"redis://:{CANARY}@h/0") == "redis://:***@h/0"
    assert redact(f"rediss://u:{CANARY}@h/0?name=q") == "rediss://u:***@h/0?name=q"
    assert redact(f"redis://h/0?name=q&password={CANARY}") == "redis://h/0?name=q&password=***"
    assert CANARY not in redact(f"got 'reddis://:{CANARY}@h:1/0' and more")


# -- defect 14: errors that say what is wrong ---------------------------------------------


def test_a_directory_is_refused_naming_the_queue(tmp_path):
    with pytest.raises(ValueError, match=r"sqlite:///.*is a directory"):
        qlab.run(abs, [1], queue=f"sqlite:///{tmp_path}")


def test_a_read_only_queue_is_called_read_only_and_still_loads(tmp_path):
    with tiny_disk(tmp_path / "disk", size="4m") as disk:
        url = f"sqlite:///{disk.path / 'q.db'}"
        qlab.run(abs, range(-5, 0), workers=2, queue=url)
        disk.read_only()
        run = qlab.load_run(url)  # a finished queue on a read-only disk: its Run
        assert run.summary()["ok"] == 5
        with pytest.raises(ValueError, match="read-only") as info:
            qlab.resume(url, abs)
        assert "not a qlab queue" not in str(info.value)
        with pytest.raises(ValueError, match="read-only"):
            qlab.run(abs, [1], queue=f"sqlite:///{disk.path / 'new.db'}")


def test_a_zero_byte_file_is_not_a_queue_to_load_but_may_become_one(tmp_path):
    path = tmp_path / "empty.db"
    path.touch()
    url = f"sqlite:///{path}"
    with pytest.raises(ValueError, match="empty"):
        qlab.load_run(url)
    with pytest.raises(ValueError, match="empty"):
        qlab.resume(url, abs)
    assert path.stat().st_size == 0  # neither made it a queue
    assert qlab.run(abs, [-1, -2], queue=url).summary()["ok"] == 2  # a new queue, explicitly


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]", "no-jobs", "bad-table"])
def test_load_run_on_a_damaged_folder_says_so(tmp_path, damage):
    folder = qlab.run(abs, range(3)).save(tmp_path / "run")
    if damage == "no-jobs":
        (folder / "jobs.parquet").unlink()
    elif damage == "bad-table":
        (folder / "attempts.parquet").write_bytes(b"PAR1 garbage")
    else:
        (folder / "meta.json").write_text(damage)
    with pytest.raises(ValueError, match="damaged") as info:
        qlab.load_run(folder)
    assert str(folder) in str(info.value)


@pytest.mark.parametrize(
    ("url", "what"),
    [
        ("redis://127.0.0.1:6379/x?name=q", "db"),
        ("redis://127.0.0.1:6379/0?name=q&foo=1", "foo"),
        ("redis://127.0.0.1:6379/0/1?name=q", "db"),
    ],
)
def test_redis_urls_name_what_is_wrong(url, what):
    with pytest.raises(ValueError, match=what):
        qlab.run(abs, [1], queue=url)
