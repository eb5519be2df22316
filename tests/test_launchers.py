"""How process-backend workers start: the fork server (Linux) or spawn (everywhere).

The contract suite runs on both launchers (tests/test_contract.py, ``process`` and
``process-spawn``); here is what only the launchers have to show, including the
branch that macOS and Windows take, forced on this machine.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys

import psutil
import pytest

import qlab
from qlab.backends.process import boot, forkserver, warm_workers
from tests.test_process import run_where_job_7_dies_once


def spawn() -> qlab.backends.Process:
    return qlab.backends.Process(start="spawn")


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def _parents(run: qlab.Run) -> set[int]:
    """The parent pid of each of ``run``'s workers (which must still be alive)."""
    return {psutil.Process(p[-1]).ppid() for p in run.meta["pids"].values()}


def test_spawn_runs_a_lambda_and_leaves_nothing_behind():
    before = _children()
    run = qlab.run(lambda x: x * 2, range(1000), workers=2, backend=spawn(), keep_results=True)
    assert run.jobs.result.tolist() == [x * 2 for x in range(1000)]
    assert run.meta["start"] == "spawn" and sorted(run.attempts.worker.unique()) == [0, 1]
    assert _children() == before  # no worker, no server, no resource tracker


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="no SIGKILL on this platform")
@pytest.mark.parametrize("how", ["exit", "SIGKILL"])
def test_on_spawn_a_worker_that_dies_costs_its_job_one_attempt(how):
    run = run_where_job_7_dies_once(spawn(), how)
    first = run.attempts.query("job_id == 7 and attempt == 1").iloc[0]
    assert first.outcome == "crashed" and "died" in first.error
    assert sum(len(p) for p in run.meta["pids"].values()) == 3  # the dead one was replaced


def test_spawned_workers_are_our_children_and_forked_ones_the_servers():
    me = os.getpid()
    with warm_workers():  # parked workers stay alive to be looked at
        spawned = qlab.run(abs, range(4), workers=2, backend=spawn())
        assert _parents(spawned) == {me}
        if forkserver.unavailable() is None:
            forked = qlab.run(abs, range(4), workers=2, backend="process")
            assert forked.meta["start"] == "forkserver"
            (server,) = _parents(forked)
            assert server != me and psutil.Process(server).ppid() == me


def test_warm_workers_are_reused_only_by_their_own_launcher():
    if forkserver.unavailable() is not None:
        pytest.skip(forkserver.unavailable())
    with warm_workers():
        first = qlab.run(abs, range(4), workers=2, backend="process")
        spawned = qlab.run(abs, range(4), workers=2, backend=spawn())
        again = qlab.run(abs, range(4), workers=2, backend="process")
        spawned_again = qlab.run(abs, range(4), workers=2, backend=spawn())
    assert [r.meta["warm_workers"] for r in (first, spawned, again, spawned_again)] == [0, 0, 2, 2]
    assert again.meta["pids"] == first.meta["pids"]
    assert spawned_again.meta["pids"] == spawned.meta["pids"]


def test_spawned_workers_import_no_multiprocessing_and_no_engine():
    run = qlab.run(lambda x: sorted(sys.modules), [0], workers=1, backend=spawn(),
                   keep_results=True)  # fmt: skip
    modules = set(run.jobs.result[0])
    assert "qlab.core.loop" in modules
    assert not {"multiprocessing", "pandas", "numpy", "qlab.engine"} & modules


@pytest.mark.parametrize("bad", ["fork", "", None, "SPAWN"])
def test_start_must_name_a_launcher(bad):
    with pytest.raises(ValueError, match=r"start must be one of \('auto', 'forkserver', 'spawn'\)"):
        qlab.backends.Process(start=bad)


# -- the branch macOS and Windows take, forced here ----------------------------------------


def _as_macos(monkeypatch: pytest.MonkeyPatch) -> None:
    """AF_UNIX SOCK_SEQPACKET refused, as macOS refuses it."""
    real = socket.socketpair

    def socketpair(family=None, type=socket.SOCK_STREAM, proto=0):
        if type == socket.SOCK_SEQPACKET:
            raise OSError(errno.EPROTONOSUPPORT, "Protocol not supported")
        return real(family, type, proto)

    monkeypatch.setattr(socket, "socketpair", socketpair)


def _as_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """No os.fork, os.register_at_fork or socket.recv_fds, as on Windows."""
    for obj, name in ((os, "fork"), (os, "register_at_fork"), (socket, "recv_fds")):
        monkeypatch.delattr(obj, name)


@pytest.fixture(params=["macos", "windows"])
def no_fork_server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """This machine as macOS or Windows look to the fork server's probe (it probes
    again, and once more after the test)."""
    (_as_macos if request.param == "macos" else _as_windows)(monkeypatch)
    forkserver.unavailable.cache_clear()
    yield request.param
    forkserver.unavailable.cache_clear()


def test_without_a_fork_server_auto_spawns_and_forkserver_is_refused(no_fork_server):
    why = forkserver.unavailable()
    assert why is not None
    assert ("SEQPACKET" if no_fork_server == "macos" else "os.fork") in why
    with pytest.raises(ValueError, match=r"start='forkserver' cannot work here.*start='spawn'"):
        qlab.backends.Process(start="forkserver")
    assert qlab.backends.Process().launcher.name == "spawn"
    with warm_workers():  # backend="process", as a user there writes it
        run = qlab.run(lambda x: -x, range(50), workers=2, backend="process", keep_results=True)
        assert _parents(run) == {os.getpid()}  # spawned by us, not forked by a server
    assert run.meta["start"] == "spawn"
    assert run.jobs.result.tolist() == [-x for x in range(50)]


def test_interpreter_flags_without_cpythons_private_helper(monkeypatch):
    private = boot.interpreter_flags()
    monkeypatch.delattr(subprocess, "_args_from_interpreter_flags")
    assert boot.interpreter_flags() == private  # the public reading gives the same here
    run = qlab.run(abs, range(-3, 0), workers=1, backend=spawn(), keep_results=True)
    assert run.jobs.result.tolist() == [3, 2, 1]
