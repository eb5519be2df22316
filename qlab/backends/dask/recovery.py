"""When a Dask batch does not come back: its worker died, the pool stopped, or the
task itself failed. Each path says which job is charged an attempt and which jobs go
back to the queue uncharged (:class:`~qlab.core.protocol.BatchResult` ``items`` and
``rest``), and gives the slot a live worker again.

A dead worker's progress file (:mod:`qlab.backends.dask_remote`) says which attempt
was running, in which batch (the slot's batch, or the one sent ahead of it). Nobody
can read it when the worker was on another machine and no process is left there:
then the batch's first job is charged, the others run again.

Timeouts and stops live here too: :func:`overdue` kills the worker of an attempt past
its deadline (:func:`kill`), and :func:`close` cancels what is still submitted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

from qlab.backends.dask import remote as dask_remote
from qlab.core.batches import EMPTY, Batch
from qlab.core.codes import CANCELLED, CRASHED, TIMEOUT
from qlab.core.protocol import BackendLost, BatchResult, Slot, crash_row

if TYPE_CHECKING:
    from qlab.backends.dask.cluster import Cluster, WorkerInfo
    from qlab.backends.dask.progress import Progress

__all__ = ["Recovery"]

POLL_S = 0.1


class Recovery:
    """The recovery paths of :class:`~qlab.backends.dask.backend.DaskBackend`, kept in
    their own module; the backend inherits them. The attributes below are the backend's
    state that these paths read and change."""

    spec: Any
    cluster: Cluster
    info_: list[WorkerInfo]
    progress: list[Progress]
    history: dict[int, list[WorkerInfo]]
    replaced: list[tuple[int, float, float]]
    replace_timeout: float
    _lock: threading.Lock
    _n: int
    _killed: set[str]
    _sent: dict[int, tuple[Batch, Any, int]]
    _stopped: threading.Event
    _stopping: bool
    _token: str

    reconnect_timeout: float
    _gone: str | None

    def _probe(self, addresses: list[str]) -> dict[str, WorkerInfo]:
        raise NotImplementedError  # the backend's own

    def _scheduler_down(self, probe: bool = False) -> bool:
        """Has the client lost its scheduler (reconnecting, or closed)? With ``probe``,
        ask the scheduler (a task that failed or vanished may be the first sign)."""
        if self._gone is not None or getattr(self.cluster.client, "status", "") != "running":
            return True
        if probe:
            try:
                self.cluster.scheduler_workers(fresh=True)
            except Exception:
                return True
        return False

    def _no_scheduler(self, slot: Slot, batch: Batch, ahead: Batch | None) -> BatchResult:
        """The scheduler is gone: the slot's batches go back to the queue uncharged once
        it reconnects (within ``reconnect_timeout``); if it does not, BackendLost."""
        sent = self._sent.pop(slot.worker, None)
        following = sent[0] if sent is not None else ahead  # sent ahead, or not sent
        rest = batch if following is None else batch + following
        if self._gone is None and self._recover_await_scheduler():
            res = BatchResult(results=[] if self.spec.want_results else None)
            res.items, res.rest = EMPTY, rest
            return res
        with self._lock:
            if self._gone is None:
                self._gone = (
                    f"the Dask scheduler at {self.cluster.scheduler_address()} is gone and "
                    f"did not come back within reconnect_timeout={self.reconnect_timeout:g}s; "
                    "no attempt was charged for it, and the jobs not run stay pending "
                    "(qlab.resume runs them on a durable queue)"
                )
        raise BackendLost(self._gone, rest)

    def _recover_await_scheduler(self) -> bool:
        """Wait up to ``reconnect_timeout`` for the client to reconnect to its scheduler;
        False if it closed or the time ran out (or the pool stops)."""
        deadline = time.monotonic() + self.reconnect_timeout
        client = self.cluster.client
        while not self._stopping:
            status = getattr(client, "status", "")
            if status == "running":
                return True
            if status in ("closing", "closed", "failed") or time.monotonic() > deadline:
                return False
            self._stopped.wait(POLL_S)
        return False

    def _recover_lost(
        self, slot: Slot, batch: Batch, number: int, ahead: Batch | None
    ) -> BatchResult:
        """The worker died (or the pool stops): charge the running job an attempt,
        send the rest of the batch back uncharged."""
        w, info = slot.worker, self.info_[slot.worker]
        sent = self._sent.pop(w, None)
        if sent is not None:
            with contextlib.suppress(Exception):
                sent[1].cancel()
        seen = time.perf_counter()
        stopping = self._stopping or slot.state.stop
        old = self.progress[w]
        if not stopping and self._recover_replace(w):
            self.replaced.append((w, seen, time.perf_counter()))
        i, t0, running = old.after_death(self.progress[w])
        self.progress[w].reset()
        now = time.perf_counter()
        res = BatchResult(results=[] if self.spec.want_results else None)
        queued = ahead if sent is not None else None  # the ahead batch never came back
        if sent is None and ahead is not None:
            res.ahead = ahead  # never submitted: the engine runs it next
        items, rest = batch, EMPTY
        died_ahead = sent is not None and running == sent[2]  # in the batch sent ahead
        if queued is not None and died_ahead:
            items, rest = queued, batch
        elif queued is not None:
            rest = queued
        if i is None:  # nobody on the dead worker's host can read its progress
            i, t0 = 0, None
        elif running not in (number, sent[2] if sent else -1) or i < 0 or i >= len(items):
            res.items, res.rest = EMPTY, items + rest  # died between jobs: nobody to charge
            return res
        if stopping:
            code, etype, msg = CANCELLED, "Cancelled", "the pool stopped the Dask task"
        elif info.wid in self._killed:
            code, etype = TIMEOUT, "TimeoutError"
            msg = (
                f"attempt exceeded timeout={self.spec.timeout}s; the Dask worker process was killed"
            )
        else:
            code, etype = CRASHED, "WorkerCrashed"
            msg = f"Dask worker {info.address} (pid {info.pid}) died"
        res.items, res.rest = items[i : i + 1], items[:i] + items[i + 1 :] + rest
        # its start is unknown when nobody can read its progress: from the moment its
        # death was seen, which is before any replacement (the row names the dead host)
        start = seen if t0 is None else t0 + info.offset
        crash_row(res, RuntimeError(msg), start, now, code, etype)
        return res

    def _recover_replace(self, w: int) -> bool:
        """Give slot ``w`` a live worker: the dead one's replacement (its nanny's), a
        free one, or after ``replace_timeout`` one shared with another slot."""
        deadline = time.monotonic() + self.replace_timeout
        cluster = self.cluster
        while not (self._stopping or self.progress[w].stopped()):
            try:
                live = cluster.live_workers()
            except Exception:
                return False
            used = {self.info_[k].address for k in range(self._n) if k != w}
            free = [a for a in sorted(live) if a not in used]
            late = time.monotonic() > deadline
            pick = free[0] if free else (sorted(live)[w % len(live)] if late and live else None)
            if pick is not None:
                try:
                    info = self._probe([pick])[pick]
                except Exception:
                    cluster.mark_dead(pick)  # listed, but does not answer
                    continue
                with self._lock:
                    if self._stopping:
                        return False
                    info.since = time.perf_counter()  # attempts from now on run on it
                    self.info_[w] = info
                    self.history[w].append(info)
                    self.progress[w] = self.progress[w].moved(info)
                return True
            if late:
                return False
            self._stopped.wait(POLL_S)
        return False

    def _recover_task_failed(
        self, slot: Slot, batch: Batch, exc: Exception, ahead: Batch | None
    ) -> BatchResult:
        """The Dask task raised (the handler's own errors never get here): charge the
        batch's first job an attempt with that error, send the rest back uncharged."""
        sent = self._sent.pop(slot.worker, None)
        res = BatchResult(results=[] if self.spec.want_results else None)
        res.items, res.rest = batch[:1], batch[1:]
        if sent is not None:
            res.ahead = sent[0]  # still queued on the worker: run it next
            self._sent[slot.worker] = sent
        elif ahead is not None:
            res.ahead = ahead
        now = time.perf_counter()
        crash_row(res, exc, now, now, CRASHED)
        res.failures[-1].error = f"the Dask task failed: {type(exc).__name__}: {exc}"
        return res

    # -- timeouts and stops ------------------------------------------------------------

    def _recover_overdue(self, slot: Slot, now: float) -> None:
        """Kill the worker whose running attempt is past its deadline; its driver then
        sees the worker die, and :func:`lost` records the timeout."""
        w, timeout = slot.worker, self.spec.timeout
        info = self.info_[w]
        if timeout is None or info.wid in self._killed or self._stopping:
            return None
        i, t0 = self.progress[w].running()
        if i >= 0 and now - (t0 + info.offset) >= timeout:
            self._killed.add(info.wid)
            self._recover_kill(info)
        return None

    def _recover_kill(self, info: WorkerInfo) -> None:
        """End a worker process: SIGKILL on this machine, ``os._exit`` through
        ``client.run`` on another (its nanny, if it has one, starts another)."""
        if info.local:
            with contextlib.suppress(OSError):
                os.kill(info.pid, getattr(signal, "SIGKILL", signal.SIGTERM))  # no SIGKILL: Windows
        else:
            with contextlib.suppress(Exception):
                self.cluster.client.run(dask_remote.hard_exit, workers=[info.address], wait=False)

    def _recover_close(self, cancel_running: bool = False) -> None:
        """Cancel what is still submitted, remove the progress files, and close the
        cluster if qlab started it (with ``cancel_running``, running attempts see their
        cancel token first: their drivers stop waiting)."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
        self._stopped.set()
        for progress in self.progress:
            with contextlib.suppress(Exception):
                progress.set(3, 1.0)
                if cancel_running:
                    progress.set(2, 1.0)
        for _, fut, _ in list(self._sent.values()):
            with contextlib.suppress(Exception):
                fut.cancel()
        for progress in self.progress:
            progress.unlink()
        if not self.cluster.owned and not self._scheduler_down():  # a user's workers live
            # on: let them drop our spec (a gone scheduler cannot tell them)
            with contextlib.suppress(Exception):
                addresses = sorted({i.address for i in self.info_})
                self.cluster.client.run(dask_remote.forget, self._token, workers=addresses,
                                        on_error="ignore")  # fmt: skip
        self.cluster.close()
