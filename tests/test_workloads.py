"""The workloads: correct results, bad parameters named, and real resources cleaned up.

No timing is asserted anywhere. The real workloads' servers, databases and folders are
checked with psutil (listening sockets, threads, children) and the file system after
the pool closes them, on the thread and the process backend.
"""

from __future__ import annotations

import copy
import doctest
import gc
import importlib
import math
import os
import pickle
import subprocess
import sys
import threading
import urllib.parse
import zlib
from pathlib import Path

import numpy as np
import psutil
import pytest

import qlab
from qlab import workloads
from qlab.workloads.disk import block
from qlab.workloads.native import operands, text

# the engine calls __qlab_open__/__qlab_close__ itself once it has the seam
SEAM = any(
    "__qlab_open__" in p.read_text()
    for p in Path(qlab.__file__).parent.rglob("*.py")
    if "workloads" not in p.parts
)


@pytest.fixture(autouse=True)
def no_stray_threads():
    """Every thread a test starts (server loops, connections, pools) has ended after it."""
    before = set(threading.enumerate())
    yield
    left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for t in left:  # threads that are ending now get a moment; a hang fails the join
        t.join(timeout=10)
    assert not [t for t in left if t.is_alive()], f"threads left alive: {left}"


def listening_ports() -> set[int]:
    """TCP ports this process listens on."""
    conns = psutil.Process().net_connections(kind="tcp")
    return {c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN}


def port(url: str) -> int:
    return urllib.parse.urlsplit(url).port


def results(run) -> list:
    assert run.summary()["ok"] == len(run.jobs), run.jobs[["status", "error"]]
    return run.jobs.sort_values("job_id")["result"].tolist()


# -- parameters -----------------------------------------------------------------------


BAD = [
    ("sleep", {"ms": -5}, ValueError, "ms"),
    ("sleep", {"ms": float("nan")}, ValueError, "ms"),
    ("sleep", {"ms": "5"}, TypeError, "ms"),
    ("cpu", {"ms": -1}, ValueError, "ms"),
    ("cpu", {"ms": True}, TypeError, "ms"),
    ("sha256", {"rounds": -1}, ValueError, "rounds"),
    ("sha256", {"rounds": 1.5}, TypeError, "rounds"),
    ("contended", {"ms": -1}, ValueError, "ms"),
    ("contended", {"hold": 1.5}, ValueError, "hold"),
    ("flaky", {"transient": 2}, ValueError, "transient"),
    ("flaky", {"permanent": -0.1}, ValueError, "permanent"),
    ("flaky", {"inner": 3}, TypeError, "inner"),
    ("seed", {"rounds": -1}, ValueError, "rounds"),
    ("http", {"ms": -1}, ValueError, "ms"),
    ("http", {"pool": 0}, ValueError, "pool"),
    ("http", {"url": "ftp://example.org/"}, ValueError, "url"),
    ("http", {"url": "http://127.0.0.1:1/", "ms": 2}, ValueError, "ms"),
    ("sqlite_write", {"rows": 0}, ValueError, "rows"),
    ("sqlite_write", {"ms": -1}, ValueError, "ms"),
    ("sqlite_write", {"path": "/no/such/folder/x.db"}, ValueError, "path"),
    ("file_io", {"kb": 0}, ValueError, "kb"),
    ("file_io", {"fsync": "yes"}, TypeError, "fsync"),
    ("file_io", {"folder": "/no/such/folder"}, ValueError, "folder"),
    ("numpy", {"n": 0}, ValueError, "n"),
    ("numpy", {"op": "fft"}, ValueError, "op"),
    ("compress", {"kb": -1}, ValueError, "kb"),
    ("compress", {"level": 10}, ValueError, "level"),
]


@pytest.mark.parametrize(("name", "params", "error", "param"), BAD)
def test_bad_parameters_are_rejected_with_their_name(name, params, error, param):
    with pytest.raises(error, match=rf"^{name}: {param} must be"):
        workloads.get(name, **params)


def test_sleep_with_negative_ms_is_rejected_issue_10():
    with pytest.raises(ValueError, match="ms must be >= 0, got -5"):
        workloads.sleep(ms=-5)


def test_get_knows_every_workload_and_rejects_unknown_names():
    assert workloads.names() == [
        *["noop", "sleep", "cpu", "sha256", "contended", "flaky", "seed"],
        *["http", "sqlite_write", "file_io", "numpy", "compress", "asleep"],
    ]
    assert workloads.get("compress", kb=8) == workloads.compress(kb=8)
    with pytest.raises(ValueError, match="workload must be one of"):
        workloads.get("redis")
    with pytest.raises(TypeError):
        workloads.get("http", size=3)


def test_import_qlab_loads_no_server_database_or_numpy():
    code = (
        "import sys, qlab; heavy = ['numpy', 'http.server', 'sqlite3', 'threadpoolctl']; "
        "print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


MODULES = ["__init__", "synthetic", "checks", "owned", "web", "database", "disk", "native"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(f"qlab.workloads.{name}".removesuffix(".__init__"))
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0


# -- results ----------------------------------------------------------------------------


def test_http_returns_each_job_from_one_server_on_threads():
    web = workloads.http(ms=1, pool=2)
    with web:
        url = web.location
        assert port(url) in listening_ports()
        run = qlab.run(web, range(40), workers=4, keep_results=True)
        assert results(run) == [str(i).encode() for i in range(40)]
        assert web("a b&c") == b"a b&c"  # quoted on the way, unquoted by the server
    assert web.location is None
    assert port(url) not in listening_ports()


def test_http_against_a_given_url_starts_no_server():
    with workloads.http(pool=1) as server:
        client = workloads.http(url=server.location + "echo?x=1")
        ports = listening_ports()
        with client:
            assert client(5) == b"5"
            assert listening_ports() == ports
        assert server(6) == b"6"  # closing the client left the server alone


def test_sqlite_write_writes_every_row_once():
    db = workloads.sqlite_write(rows=3)
    with db:
        path = Path(db.location)
        run = qlab.run(db, range(50), workers=4, keep_results=True)
        assert results(run) == [3] * 50
        assert db.count() == 150
        import sqlite3

        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            rows = conn.execute("SELECT job, count(*), sum(row) FROM qlab_writes GROUP BY job")
            assert sorted(rows) == sorted((str(i), 3, 0 + 1 + 2) for i in range(50))
        conn.close()
    assert not path.parent.exists()


def test_sqlite_write_keeps_a_database_it_was_given(tmp_path):
    path = tmp_path / "mine.db"
    with workloads.sqlite_write(path=str(path)) as db:
        db(1), db(2)
    with workloads.sqlite_write(path=str(path)) as db:
        assert db.count() == 2
    assert path.exists()


def test_file_io_round_trips_the_bytes_and_leaves_no_file():
    disk = workloads.file_io(kb=16, fsync=True)
    with disk:
        folder = Path(disk.location)
        run = qlab.run(disk, range(30), workers=3, keep_results=True)
        assert results(run) == [zlib.crc32(block(i, 16)) for i in range(30)]
        assert len(block(7, 16)) == 16 * 1024
        assert list(folder.iterdir()) == []  # each job deletes its file
    assert not folder.exists()


def test_numpy_products_equal_a_reference_and_blas_is_pinned():
    from threadpoolctl import threadpool_info

    work = workloads.numpy(n=48)
    a, b = operands(48)
    reference = np.einsum("ij,jk->ik", a, b)  # not BLAS: an independent computation
    np.testing.assert_allclose(a @ b, reference, rtol=1e-12)
    with work:
        assert {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"} <= {1}
        run = qlab.run(work, range(8), workers=2, keep_results=True)
    assert all(math.isclose(r, reference.sum(), rel_tol=1e-12) for r in results(run))
    total = workloads.numpy(n=48, op="sum")(0)
    assert math.isclose(total, a.sum(), rel_tol=1e-12)


def test_numpy_close_gives_the_blas_threads_back():
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before = blas_threads()
    with workloads.numpy(n=8), workloads.numpy(n=8):  # nested opens: the last close restores
        assert set(blas_threads()) == {1}
    assert blas_threads() == before


def test_numpy_pins_blas_in_a_process_that_had_not_loaded_numpy_yet():
    # threadpoolctl only sees the BLAS libraries already loaded: numpy must come first
    code = (
        "from qlab.workloads import numpy as N; N(n=8)(0); "
        "from threadpoolctl import threadpool_info as info; "
        "print(sorted({p['num_threads'] for p in info() if p['user_api'] == 'blas'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[1]"


def test_compress_round_trips_its_buffer():
    run = qlab.run(workloads.compress(kb=32, level=1), range(6), workers=2, keep_results=True)
    data = text(32)
    assert len(data) == 32 * 1024
    assert results(run) == [len(zlib.compress(data, 1))] * 6
    assert len(zlib.compress(data, 1)) < len(data) / 2  # text, not noise


def test_flaky_opens_and_closes_the_workload_it_wraps():
    inner = workloads.http()
    wrapped = workloads.flaky(inner, transient=0.0)
    wrapped.__qlab_open__()
    url = inner.location
    assert wrapped(3) == b"3"
    wrapped.__qlab_close__()
    assert inner.location is None
    assert port(url) not in listening_ports()


# -- life cycle ---------------------------------------------------------------------------


def test_a_pickled_copy_borrows_the_server_and_never_stops_it():
    with workloads.http() as web:
        twin = pickle.loads(pickle.dumps(web))
        assert twin == web and twin.location == web.location
        twin.__qlab_open__()  # a borrowed copy: opening and closing it are no-ops
        assert twin(1) == b"1"  # a kept-alive connection that the server must end on stop
        twin.__qlab_close__()
        assert web(2) == b"2"
        assert len(listening_ports()) == 1
    assert listening_ports() == set()
    del twin


def test_a_copy_in_the_same_process_owns_resources_of_its_own():
    with workloads.file_io(kb=1) as disk:
        other = copy.deepcopy(disk)
        assert other == disk and other.location is None
        with other:
            assert other.location != disk.location
        assert os.path.isdir(disk.location)


def test_opens_nest_and_the_last_close_stops():
    db = workloads.sqlite_write()
    db.__qlab_open__()
    db.__qlab_open__()
    folder = Path(db.location).parent
    db.__qlab_close__()
    assert folder.exists() and db(1) == 1
    db.__qlab_close__()
    assert not folder.exists()
    db.__qlab_close__()  # closing again is harmless
    with db:  # and it opens again, somewhere new
        assert db(2) == 1 and Path(db.location).parent != folder


def test_without_the_seam_the_server_starts_on_first_use_and_stops_when_collected():
    web = workloads.http()
    assert web.location is None
    assert web(4) == b"4"
    url = web.location
    assert port(url) in listening_ports()
    del web
    gc.collect()
    assert port(url) not in listening_ports()


@pytest.mark.parametrize("make", [workloads.http, workloads.sqlite_write, workloads.file_io])
def test_one_resource_per_run_on_the_process_backend(make):
    wl = make()
    children_before = psutil.Process().children(recursive=True)
    with wl:
        where = wl.location
        run = qlab.run(wl, range(12), workers=2, backend="process", keep_results=True)
        assert run.summary()["ok"] == 12
        if make is workloads.http:
            # the workers used the parent's one server: it is the only listening socket
            assert results(run) == [str(i).encode() for i in range(12)]
            assert listening_ports() == {port(where)}
        if make is workloads.sqlite_write:
            assert wl.count() == 12  # every worker wrote into the one database
    assert psutil.Process().children(recursive=True) == children_before
    assert listening_ports() == set()
    if make is not workloads.http:
        assert not Path(where).exists()


@pytest.mark.skipif(not SEAM, reason="the engine does not call __qlab_open__ yet")
@pytest.mark.parametrize("backend", ["thread", "process"])
def test_a_run_opens_and_closes_the_workload_itself(backend):
    wl = workloads.sqlite_write(rows=2)
    run = qlab.run(wl, range(10), workers=2, backend=backend)
    assert run.summary()["ok"] == 10
    assert wl.location is None  # closed with the pool: the database is gone
