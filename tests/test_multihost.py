"""Several hosts, for real, on one machine (issue 27): network namespaces.

A Dask worker runs in a namespace of its own (tests/netns.py: its own address in
10.213.0.0/24 and its own host name), beside one in the root namespace; a ``qlab
worker`` consumer runs in another namespace and pulls from a Redis queue across its
link. The trace must name the hosts (the ``host`` column, the Perfetto processes, the
clock offsets, the consumers), and cutting one host's link mid-run (``ip link set ...
down``) must keep the invariant: every job ok exactly once (or failed by its own
handler, or still pending and resumable). Every address stays inside the namespaces
the test makes, which are removed in ``finally``; where they cannot be made (not
root, no ``ip``), the test is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

import qlab
from tests import netns
from tests.helpers import OkAfter

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def two_hosts():
    try:
        with netns.hosts(2) as made:
            yield made
    except netns.Unavailable as exc:
        pytest.skip(f"multi-host test skipped: {exc}")


def _stop(procs: list[subprocess.Popen]) -> None:
    """Kill by PID, and reap."""
    for p in procs:
        with contextlib.suppress(ProcessLookupError, psutil.Error):
            p.kill()
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(20)


def _wait_file(path: Path, proc: subprocess.Popen) -> str:
    deadline = time.monotonic() + 60
    while not (path.exists() and path.read_text().strip()):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"{path.name} was not written")
        threading.Event().wait(0.05)  # polling a file another process writes
    return path.read_text()


@contextlib.contextmanager
def dask_on(host: netns.Host, tmp: Path):
    """A scheduler and a worker in the root namespace (on ``host.gateway``) and a
    worker on ``host``; yields a connected Client. The scheduler drops a worker it
    has not heard from for 3 s."""
    import distributed

    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    env = dict(os.environ, DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL="3s")
    file = tmp / "scheduler.json"
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler",
                               "--host", host.gateway, "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(file)], env=env, **quiet)]  # fmt: skip
    client = None
    try:
        address = json.loads(_wait_file(file, procs[0]))["address"]
        worker = ["-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                  "--no-dashboard", "--no-nanny"]  # fmt: skip
        procs.append(subprocess.Popen([sys.executable, *worker, "--host", host.gateway,
                                       "--name", "root"], **quiet))  # fmt: skip
        procs.append(host.popen([*worker, "--host", host.address, "--name", host.name], **quiet))
        client = distributed.Client(address, set_as_default=False, timeout=60)
        client.wait_for_workers(2, timeout=120)
        yield client
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                client.close(timeout=10)
        _stop(procs)


def test_dask_hosts_are_named_and_a_cut_link_keeps_the_invariant(two_hosts, tmp_path):
    from qlab.backends import Dask

    host = two_hosts[0]
    here = socket.gethostname()
    with dask_on(host, tmp_path) as client:
        run = qlab.run(qlab.workloads.sleep(ms=5), range(60), workers=2,
                       backend=Dask(client=client))  # fmt: skip
        assert set(run.attempts.host) == {here, host.name}  # the host column
        offsets = run.meta["clock_offsets"]  # by worker address: one inside the namespace
        assert any(a.startswith(f"tcp://{host.address}:") for a in offsets)
        assert sorted(run.meta["hosts"].values()) == sorted([here, host.name])
        trace = json.loads(run.to_perfetto(tmp_path / "run.json").read_text())
        events = trace["traceEvents"] if isinstance(trace, dict) else trace
        processes = {e["args"]["name"] for e in events if e.get("name") == "process_name"}
        assert {here, host.name} <= processes

        # cut the namespace's link once 20 jobs are done; its worker is gone for good
        hook = OkAfter(20)
        cutter = threading.Thread(target=lambda: hook.seen.wait(120) and host.cut())
        cutter.start()
        try:
            backend = Dask(client=client, replace_timeout=1)
            run = qlab.run(qlab.workloads.sleep(ms=30), range(200), workers=2, retry=3,
                           backend=backend, hooks=[hook])  # fmt: skip
        finally:
            hook.seen.set()
            cutter.join()
    ok = run.attempts[run.attempts.outcome == "ok"]
    assert (run.jobs.status == "ok").all()  # nothing failed: the handler never fails
    assert ok.job_id.is_unique and len(ok) == 200  # every job ok exactly once
    others = run.attempts[run.attempts.outcome != "ok"]
    assert set(others.outcome) <= {"crashed", "retry"}  # charged to the cut host's loss
    assert set(others.host) <= {host.name}


@contextlib.contextmanager
def redis_for(host: netns.Host):
    """A redis-server on 127.0.0.1 and on ``host.gateway`` (the root side of the
    host's link: reachable from the host and from here, nowhere else)."""
    import shutil

    import redis

    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
    from tests.helpers import free_port

    port = free_port()
    proc = subprocess.Popen([exe, "--bind", "127.0.0.1", host.gateway, "--port", str(port),
                             "--save", "", "--appendonly", "no", "--protected-mode", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        client = redis.Redis(port=port, socket_timeout=5)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                threading.Event().wait(0.05)  # polling a server that starts
        client.close()
        yield port
    finally:
        _stop([proc])


def _ok_on(url: str, who: str) -> int:
    att = qlab.load_run(url).attempts
    return int(((att.outcome == "ok") & att.consumer.str.startswith(who)).sum())


def test_a_qlab_worker_on_another_host_is_named_and_its_cut_link_loses_nothing(two_hosts):
    import time as time_module

    host = two_hosts[1]
    jobs = 120
    with redis_for(host) as port:
        name = "multihost?lease=2"
        here, there = f"redis://127.0.0.1:{port}/0", f"redis://{host.gateway}:{port}/0"
        qlab.enqueue(f"{here}?name={name}", [0.03] * jobs, handler=time_module.sleep)
        consumer = host.popen(["-m", "qlab", "worker", "--queue", f"{there}?name={name}",
                               "--handler", "time:sleep", "--workers", "2", "--prefetch", "8",
                               "--until-empty"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while _ok_on(f"{here}?name={name}", f"{host.name}:") < 10:  # its rows so far
                assert consumer.poll() is None and time.monotonic() < deadline
                threading.Event().wait(0.1)  # polling the queue another host writes
            host.cut()  # the consumer holds jobs, some running: its lease will expire
            run = qlab.serve(f"{here}?name={name}", time_module.sleep, workers=2,
                             until_empty=True)  # fmt: skip
        finally:
            _stop([consumer])
        merged = qlab.load_run(f"{here}?name={name}")
    att = merged.attempts
    ok = att[att.outcome == "ok"]
    assert (merged.jobs.status == "ok").all() and len(merged.jobs) == jobs
    assert ok.job_id.is_unique and len(ok) == jobs  # every job ok exactly once
    hosts = {c.split(":")[0] for c in att.consumer}
    assert hosts == {socket.gethostname(), host.name}  # the consumers name their hosts
    lost = att[att.outcome == "lost"]
    assert set(lost.consumer.str.split(":").str[0]) <= {host.name}  # only the cut host's
    assert run.summary()["ok"] == (ok.consumer == run.meta["consumer"]).sum()
