"""The Dask cluster a pool runs on: one qlab starts, or one the user already has.

:class:`Cluster` owns the Dask ``Client`` side of a pool: it starts a
``LocalCluster`` (worker processes on 127.0.0.1, one thread each, the dashboard on
loopback at a free port; :mod:`qlab.backends.dask_local`, which also keeps one warm
across pools) or connects to a scheduler address or a user's Client; it
knows each worker it uses (address, host, pid, nanny) and each worker's clock
offset; it finds a replacement when a worker dies; and it closes only what it
started. A cluster that qlab did not start is never shut down by qlab.

Clock offsets. Attempts are timed in the worker on ``time.perf_counter``. A worker on
the parent's own machine (same host name and boot id) reads the same
``CLOCK_MONOTONIC``: its offset is exactly 0. For a worker on another machine, the
offset takes its perf_counter to the parent's through the wall clocks and the
delays Dask measures (``Worker.scheduler_delay``: scheduler wall minus worker wall;
and the parent's own delay to the scheduler, measured the same way)::

    parent_perf = worker_perf + (worker_wall - worker_perf) + worker_scheduler_delay
                  - client_scheduler_delay - (client_wall - client_perf)

``clocks="dask"`` applies that correction to every worker, local ones included
(Dask's delays are round-trip estimates: on a busy machine they are off by
milliseconds, which is why the same machine's exact clock is preferred).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from qlab.backends.dask import local as dask_local
from qlab.backends.dask import remote as dask_remote
from qlab.backends.dask.local import close_local, scale, start_local, warm_cluster, workers_of

__all__ = ["Cluster", "WorkerInfo", "warm_cluster", "workers_of"]


class WorkerInfo:
    """One Dask worker as the pool sees it (``since``: the parent's perf_counter when
    it took its slot, 0.0 for a slot's first worker).

    Example:
        >>> i = WorkerInfo("tcp://10.0.0.5:4000", ("node5/boot", 12, 0.0, 0.0, 8), None, 0.0, False)
        >>> i.hostname, i.cpus, i.entry()
        ('node5', 8, [0.0, 'node5', 'tcp://10.0.0.5:4000'])
    """

    __slots__ = (
        "address", "cpus", "dask_id", "delay", "host", "local", "nanny", "offset", "pid",
        "since", "wid",
    )  # fmt: skip

    def __init__(self, address: str, probe: tuple, nanny: str | None, offset: float, local: bool):
        self.address = address
        self.host, self.pid, _, self.delay = probe[:4]
        self.cpus = int(probe[4]) if len(probe) > 4 else 0  # 0: not known
        self.nanny = nanny
        self.offset = offset
        self.local = local  # on the parent's machine: its files and pid are reachable
        self.since = 0.0
        # this worker process's own id: a restarted worker can come back at a dead
        # one's address (the OS may hand its port out again)
        self.dask_id = str(probe[5]) if len(probe) > 5 else ""  # "": Dask did not say
        self.wid = self.dask_id or f"{address}/{self.pid}"

    @property
    def hostname(self) -> str:
        """The machine's host name (``host`` is the name and its boot id)."""
        return self.host.split("/")[0]

    def entry(self) -> list:
        """This worker in ``run.meta["worker_hosts"]``: [since, host name, address]."""
        return [self.since, self.hostname, self.address]


class Cluster:
    """A Dask client and the workers a pool uses (see the module docs)."""

    def __init__(self, address: str | None, client: Any, clocks: str) -> None:
        self.address, self.user_client, self.clocks = address, client, clocks
        self.client: Any = None
        self.local_cluster: Any = None
        self.owned = address is None and client is None
        self._tracker_was_running = True
        self.here = dask_remote.host_id()
        self.client_delay = 0.0  # scheduler wall minus this process's wall
        self._delay_measured = False
        self.warm = False  # the cluster belongs to a warm_cluster() block
        self.dead: set[str] = set()  # ids (WorkerInfo.wid) of workers seen dead
        self.dead_at: set[str] = set()  # addresses a worker died at
        self._workers_cache: tuple[float, dict[str, Any]] = (0.0, {})

    # -- start and stop ----------------------------------------------------------------

    def connect(self, workers: int) -> list[str]:
        """Start or connect; return one worker address per slot (a worker with n
        threads can serve n slots)."""
        try:
            import distributed
        except ImportError as exc:  # pragma: no cover - dask is in the test extras
            raise ImportError(
                "backend='dask' needs dask.distributed: pip install 'qlab[dask]'"
            ) from exc
        warm = dask_local.warm_slot()
        if self.owned and warm is not None:  # inside warm_cluster(): one cluster, rescaled
            if not warm:
                warm.extend(start_local(distributed, workers))
            self.local_cluster, self.client, _ = warm
            self.warm = True
            scale(self.local_cluster, self.client, workers)
        elif self.owned:
            self.local_cluster, self.client, self._tracker_was_running = start_local(
                distributed, workers
            )
        elif self.user_client is not None:
            self.client = self.user_client
        else:
            self.client = distributed.Client(self.address, set_as_default=False, timeout=30)
        info = self.scheduler_workers(fresh=True)
        slots = [a for a, w in sorted(info.items()) for _ in range(max(int(w["nthreads"]), 1))]
        if len(slots) < workers:
            raise ValueError(
                f"workers: the Dask cluster at {self.scheduler_address()} has "
                f"{len(slots)} worker threads, asked for {workers}"
            )
        return slots[:workers]

    def close(self) -> None:
        """Close what qlab started: the LocalCluster and its client (unless a
        ``warm_cluster()`` block keeps them), or the client made for ``address=``; a
        user's Client and every user cluster stay up."""
        if self.warm:
            return
        if self.local_cluster is not None:
            close_local(self.local_cluster, self.client, self._tracker_was_running)
        elif self.client is not None and self.user_client is None:
            with contextlib.suppress(Exception):
                self.client.close(timeout=10)

    def scheduler_address(self) -> str:
        with contextlib.suppress(Exception):
            return str(self.client.scheduler.address)
        return str(self.address)

    def dashboard(self) -> str | None:
        with contextlib.suppress(Exception):
            return (
                self.client.dashboard_link
                if self.local_cluster is None
                else (self.local_cluster.dashboard_link)
            )
        return None

    # -- workers -----------------------------------------------------------------------

    def scheduler_workers(self, fresh: bool = False) -> dict[str, Any]:
        """The scheduler's workers (address -> info), refreshed at most every 0.1 s
        unless ``fresh``."""
        at, cached = self._workers_cache
        now = time.monotonic()
        if fresh or now - at > 0.1:
            cached = workers_of(self.client)
            self._workers_cache = (now, cached)
        return cached

    def probe(self, addresses: list[str], token: str, spec: bytes) -> dict[str, WorkerInfo]:
        """Load the spec on workers (all at once) and measure their clocks (see the
        module docs)."""
        probes = self.client.run(dask_remote.configure, token, spec, workers=addresses)
        known = self.scheduler_workers()
        here = time.time() - time.perf_counter()
        out = {}
        for address, probe in probes.items():
            local = probe[0] == self.here
            offset = 0.0
            if self.clocks == "dask" or not local:
                self._measure_client_delay()
                _, _, wall_minus_perf, delay = probe[:4]
                offset = wall_minus_perf + delay - self.client_delay - here
            nanny = known.get(address, {}).get("nanny")
            out[address] = WorkerInfo(address, probe, nanny, offset, local)
        return out

    def live_workers(self) -> list[str]:
        """The scheduler's workers, asked now, but not one seen dead: a worker listed
        at an address where one died is asked its id (the scheduler's ``id`` is the
        worker's name, which a restarted worker keeps)."""
        addresses = sorted(self.scheduler_workers(fresh=True))
        again = [a for a in addresses if a in self.dead_at]
        if again:
            ids = self.client.run(dask_remote.worker_id, workers=again, on_error="return")
            back = {a for a in again if isinstance(ids.get(a), str) and ids[a] not in self.dead}
            addresses = [a for a in addresses if a not in self.dead_at or a in back]
        return addresses

    def mark_dead(self, address: str, wid: str | None = None) -> None:
        self.dead_at.add(address)
        if wid is not None:
            self.dead.add(wid)

    def alive(self, info: WorkerInfo) -> bool:
        """Is the worker still there? (its pid on this machine, else the scheduler)"""
        if info.wid in self.dead:
            return False
        if info.local:
            import psutil

            try:
                ok = psutil.Process(info.pid).status() != psutil.STATUS_ZOMBIE
            except psutil.Error:
                ok = False
        else:
            try:
                ok = info.address in self.scheduler_workers()
            except Exception:
                ok = False
        if not ok:
            self.mark_dead(info.address, info.wid)
        return ok

    def _measure_client_delay(self) -> None:
        """The scheduler's wall clock minus ours (0 on the same machine), measured
        once, when a worker's clock needs it."""
        if self._delay_measured:
            return
        self._delay_measured = True
        try:
            host = self.client.run_on_scheduler(dask_remote.host_id)
            if host == self.here:
                return
            t0 = time.time()
            remote = self.client.run_on_scheduler(time.time)
            self.client_delay = remote - (t0 + time.time()) / 2
        except Exception:
            self.client_delay = 0.0
