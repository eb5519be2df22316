"""Shared fixtures: the backends the contract suite runs on, and leak checks.

Every test fails if it leaves a qlab thread or a child process alive (as CPython's
concurrent.futures tests do); pytest-timeout fails a test that hangs.
"""

from __future__ import annotations

import sys
import threading
import time

import psutil
import pytest

BACKENDS = ["thread", "process", "inline"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each contract test runs once per backend."""
    return request.param


def _qlab_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("qlab-") and t.is_alive()]


def _children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.is_running()]


@pytest.fixture
def gate():
    """A :class:`tests.helpers.SocketGate` (handlers in worker processes wait on it),
    closed after the test."""
    from tests.helpers import SocketGate

    g = SocketGate()
    yield g
    g.close()


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory):
    """One real Dask scheduler and two workers for the session (tests/dask_cluster.py)."""
    pytest.importorskip("distributed")
    from tests import dask_cluster as dc

    cluster = dc.start(tmp_path_factory.mktemp("dask"))
    try:
        yield cluster
    finally:
        dc.stop()


def _session_cluster():
    """The session Dask cluster if it runs, once it has both workers again (a test
    may have killed one: its nanny restarts it for the next test)."""
    dc = sys.modules.get("tests.dask_cluster")
    cluster = dc.RUNNING if dc is not None else None
    if cluster is not None:
        cluster.wait_for_workers()
    return cluster


@pytest.fixture(autouse=True)
def no_leaks():
    """Fail the test if a qlab thread or a child process outlives it (the session
    Dask cluster's own processes excepted)."""
    before = {p.pid for p in _children()}
    yield
    cluster = _session_cluster()
    # workers are joined before run() returns; allow a moment for the OS to reap
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        threads = _qlab_threads()
        ours = cluster.pids() if cluster is not None else set()
        children = [p for p in _children() if p.pid not in before | ours]
        if not threads and not children:
            return
        threading.Event().wait(0.05)
    assert not threads, f"qlab threads left alive: {threads}"
    assert not children, f"child processes left alive: {children}"
