"""The Dask backend: each worker is a slot on a Dask worker (one thread of it).

Data flow (parent on the left, the slot's Dask worker on the right)::

    driver thread (one per slot)              Dask worker (process, maybe another host)
    -------------------------------------     ------------------------------------------
    client.submit(run_batch_remote, token,    spec = cloudpickled JobSpec (loaded once)
        spec, slot, path, n, batch bytes, --> execute(spec.handler, batch): columns
        workers=[its address])            <-- packed columns, failures, results
    the next batch is submitted ahead, so the worker never waits for the parent
                                              progress file (mmap on the worker's host):
    watchdog / crash handling reads  <------  [running index, start, cancel, stop, n]

``backend="dask"`` starts a ``distributed.LocalCluster`` (``workers`` processes on
127.0.0.1, one thread each, the dashboard on loopback at a free port) and closes it
with the pool; ``Dask(address=...)`` and ``Dask(client=...)`` use a cluster that is
already running and never shut it down. Per-attempt times are put on the parent's
timeline by each worker's clock offset (:mod:`qlab.backends.dask_cluster`).

A worker that dies mid-batch costs the running job one attempt (``crashed``); the
rest of the batch runs again, uncharged, on another worker (the dead one's nanny
restarts it; without a nanny the slot takes a free worker, or shares one). A timed
out attempt gets its worker process killed (a nanny restarts it). Dask cannot stop
a running task otherwise: at a stop the tasks' futures are cancelled and the
running attempts see their cancel token; on a user's cluster an attempt that does
not stop by itself runs on in its worker after the pool has returned.

Losing the scheduler is not the jobs' fault: no attempt is charged. A driver that
finds it gone waits up to ``reconnect_timeout`` for the client to reconnect (a
scheduler restarted at its address) and sends its batches back to the queue; if it
does not come back, the pool stops and the run raises
:class:`~qlab.core.protocol.BackendLost`, with the jobs not run still pending
(resumable with ``qlab.resume`` on a durable queue).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from qlab.backends.dask import remote as dask_remote
from qlab.backends.dask.cluster import Cluster, WorkerInfo
from qlab.backends.dask.local import warm_cluster
from qlab.backends.dask.progress import Progress, SlotFlag
from qlab.backends.dask.recovery import Recovery
from qlab.backends.process.worker import unpack
from qlab.core.batches import Batch
from qlab.core.pickling import dumps
from qlab.core.protocol import BatchResult, JobSpec, Slot, require_real_clock, unpicklable_rows

__all__ = ["Dask", "DaskBackend", "warm_cluster"]

POLL_S = 0.1  # how often a waiting driver looks whether its worker is still alive
_FETCH_S = 60.0  # the longest a finished task's result may take to arrive


class DaskBackend(Recovery):
    """Runs batches on Dask workers; the engine's driver threads submit them.

    Args:
        address: a running scheduler (``"tcp://host:8786"``); None (with no client):
            start a LocalCluster of ``workers`` processes, owned by the pool.
        client: an existing ``distributed.Client`` to use instead.
        clocks: ``"auto"`` (workers on this machine share its clock; others are
            corrected by Dask's measured delays) or ``"dask"`` (correct every worker).
        replace_timeout: seconds to wait for a dead worker's replacement before the
            slot shares a live worker.
        reconnect_timeout: seconds to wait for a lost scheduler to come back before
            the pool stops (its jobs not run stay pending).

    Raises:
        ValueError / TypeError: bad arguments, naming the parameter.

    Example:
        >>> Dask(address="tcp://127.0.0.1:8786").name
        'dask'
        >>> Dask(clocks="exact")
        Traceback (most recent call last):
        ...
        ValueError: clocks must be 'auto' or 'dask', got 'exact'
        >>> import qlab
        >>> qlab.run(abs, range(5), workers=2, backend="dask")  # doctest: +SKIP
    """

    name = "dask"
    can_kill = True
    in_caller = False
    max_workers = 512  # worker processes (LocalCluster), or slots on a cluster
    batch_target_s = 0.05  # work per batch: a Dask task costs a scheduler round trip (ms)

    def __init__(
        self,
        address: str | None = None,
        client: Any = None,
        *,
        clocks: str = "auto",
        replace_timeout: float = 60.0,
        reconnect_timeout: float = 10.0,
    ) -> None:
        if address is not None and client is not None:
            raise ValueError("address and client: give one of them, not both")
        if address is not None and not isinstance(address, str):
            raise TypeError(f"address must be a scheduler address string, got {address!r}")
        if client is not None and not hasattr(client, "submit"):
            raise TypeError(f"client must be a distributed.Client, got {client!r}")
        if clocks not in ("auto", "dask"):
            raise ValueError(f"clocks must be 'auto' or 'dask', got {clocks!r}")
        if not isinstance(replace_timeout, int | float) or replace_timeout < 0:
            raise ValueError(f"replace_timeout must be seconds >= 0, got {replace_timeout!r}")
        self.address, self.client, self.clocks = address, client, clocks
        self.replace_timeout = float(replace_timeout)
        if not isinstance(reconnect_timeout, int | float) or reconnect_timeout < 0:
            raise ValueError(f"reconnect_timeout must be seconds >= 0, got {reconnect_timeout!r}")
        self.reconnect_timeout = float(reconnect_timeout)

    # -- start -------------------------------------------------------------------------

    def start(
        self, spec: JobSpec, workers: int, take_ahead: Callable[[Slot], Batch | None]
    ) -> dict[str, Any]:
        require_real_clock(spec, "Dask workers")
        t = time.perf_counter()
        self.spec, self._take_ahead, self._n = spec, take_ahead, workers
        self._spec_bytes = dask_remote.dump_spec(spec)
        self._token = uuid.uuid4().hex[:12]
        self._lock = threading.Lock()
        self._stopping = False
        self._stopped = threading.Event()
        self._gone: str | None = None  # the scheduler is lost for good: why
        self._numbers = itertools.count(1)
        self._sent: dict[int, tuple[Batch, Any, int]] = {}  # slot -> batch sent ahead
        self._killed: set[str] = set()  # workers (WorkerInfo.wid) killed for a timeout
        self.replaced: list[tuple[int, float, float]] = []
        self.cluster = Cluster(self.address, self.client, self.clocks)
        self.info_: list[WorkerInfo] = []
        self.history: dict[int, list[WorkerInfo]] = {}
        try:
            addresses = self.cluster.connect(workers)
            probes = self._probe(sorted(set(addresses)))
            self.info_ = [probes[a] for a in addresses]
            self.progress = [self._progress(w, i) for w, i in enumerate(self.info_)]
        except BaseException:
            self.cluster.close()
            raise
        for w, i in enumerate(self.info_):
            self.history[w] = [i]
        return {
            "startup_s": time.perf_counter() - t,
            "dask_scheduler": self.cluster.scheduler_address(),
            "dask_dashboard": self.cluster.dashboard(),
            "dask_owned": self.cluster.owned,
            "clocks": self.clocks,
        }

    def _probe(self, addresses: list[str]) -> dict[str, WorkerInfo]:
        try:
            return self.cluster.probe(addresses, self._token, self._spec_bytes)
        except Exception as exc:
            raise RuntimeError(
                f"handler: Dask workers {addresses} cannot load it "
                f"({type(exc).__name__}: {exc}); is qlab (and the handler's module) "
                "installed on the workers?"
            ) from exc

    def _progress(self, w: int, info: WorkerInfo) -> Progress:
        path = dask_remote.progress_path(self._token, w)
        return Progress(path, info, self.cluster.client)

    def new_event(self, worker: int) -> Any:
        return SlotFlag(lambda: self.progress[worker], self._stopped)

    # -- running batches ---------------------------------------------------------------

    def run_batch(self, slot: Slot, batch: Batch, res: BatchResult) -> BatchResult:
        """Submit ``batch`` (unless it went ahead), submit the next one ahead, then
        wait for ``batch``'s columns or its worker's death."""
        w, ahead = slot.worker, None
        if self._gone is not None:
            return self._no_scheduler(slot, batch, None)
        sent = self._sent.pop(w, None)
        try:
            if sent is not None and sent[0] is batch:
                fut, number = sent[1], sent[2]
            else:
                try:
                    data = dumps(batch)  # plain pickle, cloudpickle only if that fails
                except Exception as exc:
                    return unpicklable_rows(batch, exc, "dask", self.spec.want_results, dumps)
                fut, number = self._submit(w, data)
            ahead = self._send_ahead(slot)
            data = self._wait(w, fut)
        except Exception as exc:  # the task itself failed (a payload the worker
            if self._scheduler_down(probe=True):  # cannot unpickle), or no scheduler
                return self._no_scheduler(slot, batch, ahead)
            return self._recover_task_failed(slot, batch, exc, ahead)
        if data is None:
            if self._scheduler_down(probe=not self._stopping):
                return self._no_scheduler(slot, batch, ahead)
            return self._recover_lost(slot, batch, number, ahead)
        out = unpack(data, len(batch))
        _shift(out, self.info_[w].offset)
        out.ahead = ahead
        return out

    def _submit(self, w: int, data: bytes) -> tuple[Any, int]:
        number = next(self._numbers)
        address = self.info_[w].address
        fut = self.cluster.client.submit(
            dask_remote.run_batch_remote,
            self._token,
            self._spec_bytes,
            w,
            self.progress[w].path,
            number,
            data,
            self.info_[w].dask_id,  # a reschedule onto another worker process refuses it
            key=f"qlab-batch-{self._token}-{number}",
            workers=[address],
            allow_other_workers=False,
        )
        return fut, number

    def _send_ahead(self, slot: Slot) -> Batch | None:
        """Pipelining: queue the slot's next batch on its worker while this one runs."""
        following = self._take_ahead(slot)
        if following is None:
            return None
        try:
            data = dumps(following)
        except Exception:  # a payload that does not pickle: returned unsent
            return following
        fut, number = self._submit(slot.worker, data)
        self._sent[slot.worker] = (following, fut, number)
        return following

    def _wait(self, w: int, fut: Any) -> Any:
        """The task's bytes, or None if its worker died or the pool is stopping.

        The driver waits for the task to finish on an event (checking its worker
        every ``POLL_S``), and only then fetches the result, with no short timeout:
        ``fut.result(timeout=...)`` in a loop restarts the fetch from the worker at
        every timeout, and on a busy machine a fetch that takes longer never ends.
        """
        done = threading.Event()
        fut.add_done_callback(lambda _: done.set())
        while not done.wait(POLL_S):
            if self._stopping or self._scheduler_down() or not self.cluster.alive(self.info_[w]):
                with contextlib.suppress(Exception):
                    fut.cancel()
                return None
        status = fut.status
        if status in ("cancelled", "lost") or self._stopping:
            return None
        try:
            return fut.result(timeout=_FETCH_S)
        except dask_remote.NotThisWorker:  # Dask moved it: the worker it was sent to died
            self.cluster.mark_dead(self.info_[w].address, self.info_[w].wid)
            return None
        except Exception:
            if status == "error" and self.cluster.alive(self.info_[w]):
                raise  # not the worker's death: the task itself failed
            if self._stopping or not self.cluster.alive(self.info_[w]):
                return None
            raise

    def overdue(self, slot: Slot, now: float) -> None:
        """Kill the worker whose running attempt is past its deadline; its driver then
        sees the worker die and records the timeout
        (:meth:`Recovery._recover_overdue`)."""
        return self._recover_overdue(slot, now)

    def stop_intake(self) -> None:
        """Running attempts finish; batches sent ahead do not start."""
        for progress in self.progress:
            progress.set(3, 1.0)

    def stop_worker(self, slot: Slot) -> None:
        self._recover_kill(self.info_[slot.worker])

    def close(self, kill: bool = False) -> None:
        """Cancel what is still submitted, remove the progress files, and close the
        cluster if qlab started it
        (:meth:`Recovery._recover_close`)."""
        self._recover_close(kill)

    def info(self) -> dict[str, Any]:
        """Provenance: each slot's Dask worker addresses (a replaced one has several),
        its workers' hosts and since when (``worker_hosts``, read by
        :mod:`qlab.hosts`), each host's CPUs, pids, clock offsets applied, and Dask's
        measured delays."""
        everyone = [i for infos in self.history.values() for i in infos]
        return {
            "dask_workers": {w: [i.address for i in v] for w, v in self.history.items()},
            "worker_hosts": {w: [i.entry() for i in v] for w, v in self.history.items()},
            "hosts": {w: v[-1].hostname for w, v in self.history.items()},
            "host_cpus": {i.hostname: i.cpus for i in everyone if i.cpus},
            "pids": {w: [i.pid for i in v] for w, v in self.history.items()},
            "clock_offsets": {i.address: i.offset for i in everyone},
            "dask_time_delays": {i.address: i.delay for i in everyone},
            "replacements": list(self.replaced),
        }


Dask = DaskBackend


def _shift(res: BatchResult, offset: float) -> None:
    """Put a batch's times on the parent's clock."""
    if offset:
        res.t0 = [t + offset for t in res.t0]
        res.t1 = [t + offset for t in res.t1]
