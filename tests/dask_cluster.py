"""One real Dask cluster for the whole test session: a ``dask scheduler`` and two
``dask worker`` processes (each under a nanny, one thread) on 127.0.0.1 with free
ports, started through the CLI that distributed installs. Each worker keeps its port:
when a test kills one, its nanny restarts it at the same address, which qlab must
tell apart from the dead worker (a regression: it took the new one for the dead one
and waited a minute for another).

conftest's ``dask_cluster`` fixture starts it on first use (tests/test_dask.py, the
contract suite's ``dask`` backend, the signal tests) and stops it by PID at the end
of the session, even when a test fails. conftest's leak check leaves the cluster's
own processes alone (:data:`RUNNING`): its nannies restart the workers tests kill.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from tests.helpers import free_port

SCHEDULER = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
WORKER = [sys.executable, "-m", "distributed.cli.dask_worker"]
WORKERS = 2

#: The session's cluster while it runs (conftest's leak check reads it).
RUNNING: DaskCluster | None = None


class DaskCluster:
    """A scheduler and workers started through distributed's CLI, stopped by PID."""

    def __init__(self, tmp: Path, n: int = WORKERS) -> None:
        import distributed

        self.n = n
        self.procs: list[subprocess.Popen] = []
        self.descendants: set[int] = set()
        file = tmp / "scheduler.json"
        try:
            self._start([*SCHEDULER, "--host", "127.0.0.1", "--port", "0",
                         "--dashboard-address", "127.0.0.1:0",
                         "--scheduler-file", str(file)])  # fmt: skip
            deadline = time.monotonic() + 60
            while not file.exists() or not file.read_text().strip():
                if time.monotonic() > deadline or self.procs[0].poll() is not None:
                    raise RuntimeError("the dask scheduler did not start")
                threading.Event().wait(0.05)  # polling a file the scheduler writes
            self.address = json.loads(file.read_text())["address"]
            for i in range(n):  # a fixed port: a restarted worker comes back at its address
                self._start([*WORKER, self.address, "--host", "127.0.0.1", "--nthreads", "1",
                             "--nworkers", "1", "--no-dashboard", "--name", f"w{i}",
                             "--worker-port", str(free_port())])  # fmt: skip
            self.client = distributed.Client(self.address, set_as_default=False, timeout=60)
            self.wait_for_workers()
        except BaseException:
            self.stop()
            raise

    def _start(self, args: list[str]) -> None:
        log = subprocess.DEVNULL
        self.procs.append(subprocess.Popen(args, stdout=log, stderr=log))

    def wait_for_workers(self) -> None:
        """Until all ``n`` workers are registered (a killed one's nanny restarts it)."""
        self.client.wait_for_workers(self.n, timeout=60)
        self.pids()

    def pids(self) -> set[int]:
        """Every process of the cluster now (the nannies' workers change when killed)."""
        for p in self.procs:
            with contextlib.suppress(psutil.Error):
                self.descendants |= {c.pid for c in psutil.Process(p.pid).children(True)}
        return {p.pid for p in self.procs} | self.descendants

    def up(self) -> bool:
        """The cluster answers: all workers registered and a task runs."""
        from qlab.backends.dask.cluster import workers_of

        up = len(workers_of(self.client)) == self.n and self.client.status == "running"
        return up and self.client.submit(abs, -3).result(timeout=30) == 3

    def stop(self) -> None:
        """Kill every process of the cluster by PID (nothing in it needs a clean exit)."""
        with contextlib.suppress(Exception):
            self.client.close(timeout=10)
        self.pids()
        left = []
        for pid in [p.pid for p in self.procs] + sorted(self.descendants):
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                proc.kill()
                left.append(proc)
        for p in self.procs:
            p.wait(20)
        _, alive = psutil.wait_procs(left, timeout=20)
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"dask processes left alive: {alive}"


def start(tmp: Path) -> DaskCluster:
    global RUNNING
    RUNNING = DaskCluster(tmp)
    return RUNNING


def stop() -> None:
    global RUNNING
    cluster, RUNNING = RUNNING, None
    if cluster is not None:
        cluster.stop()
