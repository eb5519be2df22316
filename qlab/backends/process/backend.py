"""The process backend: each worker is a process, forked by qlab's fork server or spawned.

Data flow (parent on the left, one worker process on the right)::

    driver thread (one per worker)        worker process (forked, or spawned)
    --------------------------------      -----------------------------------
    config: cloudpickled JobSpec  ----->  spec = pickle.loads(...)
    batch: ids, attempts, payloads ---->  execute(spec.handler, batch): columns
                                   <----  columns (t0, t1, cpu), failures, results
    settle (engine): outcomes, retries
                                          mmap (4 doubles per worker):
    watchdog reads  <-------------------  [running index, its start, cancel, stop]

Handlers go through cloudpickle, so lambdas and functions defined in a notebook
run. A worker that dies mid-batch (os._exit, a signal, a segfault) costs the
running job one attempt (``crashed``); the other jobs of the batch run again,
uncharged, on a fresh worker. A timed-out attempt gets its worker killed and
replaced. Workers ignore SIGINT: the parent decides what Ctrl-C means. Worker
processes are started by a launcher (:mod:`qlab.backends.process.launch`: the fork server,
a few ms each, where it can run, else spawn), handled in :mod:`qlab.backends.process.procs`,
and run :mod:`qlab.backends.process.worker`.
"""

from __future__ import annotations

import contextlib
import pickle
import threading
import time
from collections.abc import Callable
from typing import Any

from qlab.backends.process import launch
from qlab.backends.process.errors import WHILE, WorkerCrashed, how_it_ended
from qlab.backends.process.procs import (
    Proc,
    RemoteTraceback,
    acquire,
    kill_process,
    park,
    stop_all,
    unpack,
    warm_workers,
)
from qlab.backends.process.suspects import Suspects
from qlab.backends.process.worker import STAGE_CALL
from qlab.core.batches import EMPTY, Batch
from qlab.core.codes import CANCELLED, CRASHED, TIMEOUT
from qlab.core.context import Cancelled
from qlab.core.pickling import check_picklable, dumps
from qlab.core.protocol import (
    BatchResult,
    JobSpec,
    Slot,
    crash_row,
    require_real_clock,
    unpicklable_rows,
)

__all__ = [
    "Process",
    "ProcessBackend",
    "RemoteTraceback",
    "WorkerCrashed",
    "warm_workers",
]


class ProcessBackend:
    """Runs batches in worker processes; the engine's driver threads feed them.

    ``backend="process"`` is ``ProcessBackend()``; ``qlab.backends.Process(start=...)``
    chooses how worker processes start: ``"forkserver"`` (qlab's fork server: a few
    ms per worker; Linux), ``"spawn"`` (a fresh interpreter per worker: everywhere),
    or ``"auto"`` (the fork server where it can run, else spawn).

    Example:
        >>> import qlab
        >>> qlab.run(abs, range(5), workers=1, backend="process").summary()["ok"]
        5
        >>> backend = qlab.backends.Process(start="spawn")
        >>> run = qlab.run(abs, range(5), workers=1, backend=backend)
        >>> run.summary()["ok"], run.meta["start"]
        (5, 'spawn')
    """

    name = "process"
    can_kill = True
    in_caller = False
    max_workers = 512  # processes (an interpreter each)
    batch_target_s = 0.02  # work per batch: a round trip costs the parent ~0.3 ms of CPU
    in_flight = 2  # batches a worker holds: the running one and the one sent ahead

    def __init__(self, start: str = "auto", max_tasks_per_child: int | None = None) -> None:
        """``start``: how worker processes start (see :mod:`qlab.backends.process.launch`).
        ``max_tasks_per_child``: replace a worker process once it has run this many
        calls (as ``ProcessPoolExecutor``'s option); None: workers live as long as the
        pool. With it, batches are capped to what the worker has left and none is sent
        ahead."""
        self.launcher = launch.choose(start)  # ValueError naming start=
        n = max_tasks_per_child
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise ValueError(f"max_tasks_per_child must be an int >= 1 or None, got {n!r}")
        self._max_tasks = n
        self._tasks: dict[int, int] = {}  # worker -> calls its current process has run
        self.retired = 0  # worker processes replaced for max_tasks_per_child
        self._suspects = Suspects()

    def start(
        self, spec: JobSpec, workers: int, take_ahead: Callable[[Slot], Batch | None]
    ) -> dict[str, Any]:
        require_real_clock(spec, "worker processes")
        t = time.perf_counter()
        self.spec = spec
        self._take_ahead = take_ahead
        self._lock = threading.Lock()
        self._stopping = False
        self._sent: dict[int, Batch] = {}  # worker -> the batch sent ahead to it
        self.procs: list[Proc] = []
        self.pids: dict[int, list[int | None]] = {}
        self.replaced: list[tuple[int, float, float]] = []  # (worker, death seen, ready)
        launcher = self.launcher
        launcher.hold()  # released by close(), or below if the start fails
        try:
            self.procs = acquire(workers, launcher)
            warm = len(self.procs)
            if warm < workers:
                launcher.prepare(None)  # a fork server boots while the parent pickles
            try:  # the spec holds the handler: pickled once, named if it is the culprit
                self._config = check_picklable("the retry policy's permanent=", spec)
            except TypeError:
                check_picklable("handler", spec.handler)
                raise
            if warm < workers:
                launcher.prepare(self._config)
            for w in range(warm, workers):  # all starts requested before any wait
                self.procs.append(Proc(w, launcher))  # (one by one: stopped on failure)
            for w, proc in enumerate(self.procs):
                if w >= warm:
                    proc.wait_ready()
                proc.configure(self._config_for(w))
                self.pids[w] = [proc.process.pid]
        except BaseException:
            try:
                stop_all(self.procs, kill=True)
            finally:
                launcher.release()
            raise
        return {"startup_s": time.perf_counter() - t, "warm_workers": warm, "start": launcher.name}

    def _config_for(self, worker: int) -> bytes:
        """A worker's configuration: the job spec, its number, and the parent's
        multiprocessing authkey (which multiprocessing's own start methods hand to
        their children), so that a ``multiprocessing.Manager`` proxy passed to a call
        authenticates with its manager."""
        import multiprocessing.process as mp_process

        authkey = bytes(mp_process.current_process().authkey)
        msg = ("config", self._config, worker, authkey)
        return pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)

    def new_event(self, worker: int) -> Any:
        return _SlotFlag(self, worker)

    def run_batch(self, slot: Slot, batch: Batch, res: BatchResult) -> BatchResult:
        """Send ``batch`` (unless it went ahead), send the next one ahead so that the
        worker never waits for this thread, then wait for ``batch``'s columns. A batch
        holding a suspect job (see :mod:`qlab.backends.process.suspects`) runs that job alone
        and puts the others back."""
        if len(batch) > 1 and self._suspects:
            k = self._suspects.first(batch)
            if k is not None:
                one, others = batch[k : k + 1], batch[:k] + batch[k + 1 :]
                out = self._run(slot, one, res)
                return self._suspects.ran_alone(one, out, others)
        proc = self.procs[slot.worker]
        out = self._run(slot, batch, res)
        if self._max_tasks is not None:
            self._count_tasks(slot, proc, len(out))
        return out

    def _run(self, slot: Slot, batch: Batch, res: BatchResult) -> BatchResult:
        proc = self.procs[slot.worker]
        if self._sent.pop(slot.worker, None) is not batch:  # else it is with the worker
            try:
                data: bytes | bytearray = dumps(("batch", batch))
            except Exception as exc:
                return unpicklable_rows(batch, exc, "process", self.spec.want_results, dumps)
            with contextlib.suppress(OSError):  # a dead worker: recv_bytes says so
                proc.conn.send_bytes(data)
        ahead = self._send_ahead(slot, proc)
        try:
            data = proc.conn.recv_bytes()
        except (EOFError, OSError):
            out = self._lost(slot, proc, batch)
            if self._sent.pop(slot.worker, None) is not None:
                out.rest = (out.rest or EMPTY) + (ahead or EMPTY)  # lost unstarted: uncharged
            elif ahead is not None:
                out.ahead = ahead  # never sent: the engine runs it next
            return out
        msg = pickle.loads(data)
        if msg[0] == "unreadable":  # the batch's message could not be unpickled
            out = self._suspects.unreadable(batch, msg, self.spec)
        else:
            out = unpack(msg, len(batch))
        out.ahead = ahead
        return out

    def _send_ahead(self, slot: Slot, proc: Proc) -> Batch | None:
        """Pipelining: hand the worker its next batch while it runs this one. The
        batch comes back as ``res.ahead``, which the engine runs next."""
        if self._max_tasks is not None:  # the worker may retire after this batch
            return None
        following = self._take_ahead(slot)
        if following is None:
            return None
        if len(following) > 1 and self._suspects and self._suspects.first(following) is not None:
            return following  # returned unsent: run_batch runs its suspect alone
        try:
            data = dumps(("batch", following))
        except Exception:  # a payload that does not pickle: returned unsent
            return following
        with contextlib.suppress(OSError):
            proc.conn.send_bytes(data)
            self._sent[slot.worker] = following
        return following

    def _lost(self, slot: Slot, proc: Proc, batch: Batch) -> BatchResult:
        """The worker died: charge the job whose call, or whose arguments or result
        being unpickled or pickled, it was on; rerun the rest. A death outside any one
        job's data makes the batch's jobs suspects (run alone next), and a batch of one
        job is charged: nothing goes back to the queue uncharged forever."""
        i, t0, stage = int(proc.view[0]), proc.view[1], proc.view[4]
        seen = time.perf_counter()
        proc.process.join(1)
        now = time.perf_counter()
        stopping = self._stopping or slot.state.stop
        if not stopping and self._replace(slot.worker):
            self.replaced.append((slot.worker, seen, time.perf_counter()))
        res = BatchResult(results=[] if self.spec.want_results else None)
        if i < 0 and (stopping or len(batch) > 1):  # not one job's death (yet)
            if not stopping:
                self._suspects.add(batch)
            res.items, res.rest = EMPTY, batch
            return res
        i = max(i, 0)
        if stage != STAGE_CALL:
            t0 = seen  # the call itself had ended
        exc: BaseException
        if stopping:
            code, etype = CANCELLED, "Cancelled"
            exc = Cancelled("worker stopped by an interrupt")
        elif proc.killed_for_timeout:
            code, etype = TIMEOUT, "TimeoutError"
            exc = TimeoutError(
                f"attempt exceeded timeout={self.spec.timeout}s; the worker process was killed"
            )
        else:
            code, etype = CRASHED, "WorkerCrashed"
            pid, exit_code = proc.process.pid, proc.process.exitcode
            exc = WorkerCrashed(
                f"worker process {pid} died{WHILE[stage]} ({how_it_ended(exit_code)})"
            )
        res.items, res.rest = batch[i : i + 1], batch[:i] + batch[i + 1 :]
        crash_row(res, exc, t0, now, code, etype)
        return res

    def batch_room(self, slot: Slot) -> int | None:
        """At most how many jobs the slot's next batch may hold (max_tasks_per_child)."""
        if self._max_tasks is None:
            return None
        return max(1, self._max_tasks - self._tasks.get(slot.worker, 0))

    def _count_tasks(self, slot: Slot, proc: Proc, n: int) -> None:
        """Count the calls ``proc`` ran; retire it once it reached max_tasks_per_child."""
        w, most = slot.worker, self._max_tasks
        if most is None or self.procs[w] is not proc:  # it died: its successor starts at 0
            return
        self._tasks[w] = self._tasks.get(w, 0) + n
        if self._tasks[w] >= most and not slot.state.stop and self._replace(w):
            self.retired += 1

    def _replace(self, worker: int) -> bool:
        """Start a new worker in place of a dead one (under the lock, so that a
        concurrent close() either stops it or prevents it); False if closing."""
        with self._lock:
            if self._stopping:
                return False
            self.procs[worker].stop(kill=True)
            self._tasks[worker] = 0
            proc = Proc(worker, self.launcher)
            self.procs[worker] = proc
            proc.wait_ready()
            proc.configure(self._config_for(worker))
            self.pids.setdefault(worker, []).append(proc.process.pid)
            return True

    def overdue(self, slot: Slot, now: float) -> None:
        """Kill the worker whose running attempt is past its deadline; its driver
        thread then sees the process die and records the timeout (see ``_lost``)."""
        proc = self.procs[slot.worker]
        timeout = self.spec.timeout
        if timeout is None or proc.killed_for_timeout:
            return None
        running = proc.view[0] >= 0 and proc.view[4] == STAGE_CALL  # a call, not pickling
        if running and now - proc.view[1] >= timeout:
            proc.killed_for_timeout = True
            kill_process(proc.process)
        return None

    def stop_intake(self) -> None:
        """Running attempts finish; batches sent ahead do not start."""
        for proc in self.procs:
            proc.view[3] = 1.0

    def stop_worker(self, slot: Slot) -> None:
        kill_process(self.procs[slot.worker].process)

    def close(self, kill: bool = False) -> None:
        """Stop the workers (killing them with ``kill``), or park them for reuse inside
        ``warm_workers()``. The engine calls it once the driver threads are done, and
        first with ``kill=True`` to stop running attempts at a second Ctrl-C."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
        try:
            if kill or not park(self.procs):
                stop_all(self.procs, kill)
        finally:
            self.launcher.release()

    def info(self) -> dict[str, Any]:
        """Each worker's pids (a replaced worker has several), and each replacement as
        (worker, perf_counter when its death was seen, when the new one was ready)."""
        return {
            "pids": {w: list(p) for w, p in self.pids.items()},
            "replacements": list(self.replaced),
            "retired_workers": self.retired,
        }


Process = ProcessBackend  # qlab.backends.Process(start="spawn")


class _SlotFlag:
    """The parent's handle on a worker's cancel flag (the engine calls ``set()``)."""

    def __init__(self, backend: ProcessBackend, worker: int) -> None:
        self.backend = backend
        self.worker = worker

    def set(self) -> None:
        self.backend.procs[self.worker].flag.set()

    def is_set(self) -> bool:
        return self.backend.procs[self.worker].flag.is_set()
