"""The process backend: each worker is a process started by joblib's loky.

Data flow (parent on the left, one worker process on the right)::

    worker thread (one per worker)        worker process (loky: fork + exec)
    --------------------------------      -----------------------------------
    config: cloudpickled handler  ----->  fn = cloudpickle.loads(...)
    batch: ids, attempts, payloads ---->  execute(fn, batch): time, catch, columns
                                   <----  columns (t0, t1, cpu), failures, results
    settle (engine): outcomes, retries
                                          mmap (3 doubles per worker):
    watchdog reads  <-------------------  [running index, its start, cancel flag]

Handlers go through cloudpickle, so lambdas and functions defined in a notebook
run. A worker that dies mid-batch (os._exit, a signal, a segfault) costs the
running job one attempt (``crashed``); the other jobs of the batch run again,
uncharged, on a fresh worker. A timed-out attempt gets its worker killed and
replaced. Workers ignore SIGINT: the parent decides what Ctrl-C means.

Workers live as long as their pool, or, inside ``with warm_workers():`` (which a
sweep uses), as long as that block, so that start-up is paid once.
"""

from __future__ import annotations

import contextlib
import mmap
import multiprocessing.resource_tracker as mp_tracker
import os
import pickle
import signal
import tempfile
import threading
import time
import traceback
from array import array
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from qlab.backends.base import (
    CANCELLED,
    CRASHED,
    TIMEOUT,
    BatchResult,
    Failure,
    execute,
)
from qlab.batches import EMPTY, Batch
from qlab.context import WorkerState

if TYPE_CHECKING:
    from qlab.engine import Pool, _Slot

__all__ = ["ProcessBackend", "warm_workers"]

# doubles: running index (-1: none), its start time, cancel flag, no-more-batches flag
_MMAP_SIZE = 4 * 8
_WARM: list[_Proc] | None = None  # parked workers while a warm_workers() block is open
_WARM_LOCK = threading.Lock()
_OWN_TRACKERS: list[Any] = []  # resource trackers that qlab started (and so stops)


def _dumps(obj: Any) -> bytes:
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        import cloudpickle  # what loky uses for callables

        return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def check_picklable(name: str, obj: Any) -> bytes:
    """cloudpickle ``obj`` or raise a TypeError that names it and says why."""
    import cloudpickle  # what loky uses for callables

    try:
        return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise TypeError(
            f"{name} cannot be pickled for the process backend ({type(exc).__name__}: {exc}); "
            "use a picklable callable (a module-level function, or a lambda or closure over "
            "picklable values), or backend='thread'"
        ) from exc


class _Flag:
    """The cancel flag in the shared mmap, with the ``threading.Event`` methods that
    ``CancelToken`` uses (the child polls it: no semaphore, so no resource tracker)."""

    def __init__(self, view: memoryview) -> None:
        self._view = view

    def is_set(self) -> bool:
        return self._view[2] != 0.0

    def set(self) -> None:
        self._view[2] = 1.0

    def clear(self) -> None:
        self._view[2] = 0.0

    def wait(self, timeout: float | None = None) -> bool:
        end = None if timeout is None else time.perf_counter() + timeout
        while not self.is_set():
            left = None if end is None else end - time.perf_counter()
            if left is not None and left <= 0:
                return False
            time.sleep(0.002 if left is None else min(left, 0.002))
        return True


def _child_main(conn: Any, mm_path: str, worker: int) -> None:
    """A worker process: configure, then run batches until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with open(mm_path, "r+b") as f:
        mm = mmap.mmap(f.fileno(), _MMAP_SIZE)
    view = memoryview(mm).cast("d")
    state = WorkerState(worker, None, None, _Flag(view))
    state.bind()
    fn: Any = None
    is_permanent: Any = None
    keep = False

    def publish(i: int, t0: float) -> None:
        view[1] = t0
        view[0] = i
        state.stop = view[3] != 0.0  # the pool stops intake: leave after this attempt

    conn.send_bytes(pickle.dumps(("ready", os.getpid())))
    while True:
        try:
            msg = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        if msg[0] == "batch":
            # a batch sent ahead after the pool stopped intake does not start at all
            res = (
                BatchResult()
                if view[3]
                else execute(fn, msg[1], state, is_permanent, keep, publish)
            )
            view[0] = -1.0
            conn.send_bytes(_pack(res))
        elif msg[0] == "config":
            _, fn_bytes, retry, state.seed, state.timeout, keep, state.worker = msg
            try:
                fn = pickle.loads(fn_bytes)
                is_permanent = retry.is_permanent
                conn.send_bytes(pickle.dumps(("ok", None)))
            except Exception as exc:
                conn.send_bytes(pickle.dumps(("error", f"{type(exc).__name__}: {exc}")))
        else:  # "stop": nothing to flush, so skip the interpreter's slow teardown
            os._exit(0)


def _pack(res: BatchResult) -> bytes:
    """Pickle a batch's result; errors and results that do not pickle become text.
    Times travel as arrays of doubles (one buffer each, not a float object per row)."""
    res.t0, res.t1 = array("d", res.t0), array("d", res.t1)
    if res.cpu_share is None:
        res.cpu = array("d", res.cpu)
    for f in res.failures:
        if f.exc is not None:
            f.tb = "".join(traceback.format_exception(f.exc))
            try:
                pickle.dumps(f.exc)
            except Exception:
                f.exc = None
    try:
        return pickle.dumps(("done", res), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        for row, value in enumerate(res.results or []):
            try:
                pickle.dumps(value)
            except Exception as exc:
                res.results[row] = None
                res.failures.append(
                    Failure(row, 0, type(exc).__name__, f"result cannot be pickled: {exc}", True)
                )
        res.failures.sort(key=lambda f: f.row)
        return pickle.dumps(("done", res), protocol=pickle.HIGHEST_PROTOCOL)


class RemoteTraceback(Exception):
    """The traceback of an error raised in a worker process (set as ``__cause__``)."""

    def __str__(self) -> str:
        return self.args[0]


class _Proc:
    """Parent side of one worker process."""

    def __init__(self, worker: int) -> None:
        from joblib.externals.loky.backend.context import get_context

        _note_trackers()
        ctx = get_context("loky")
        fd, self.path = tempfile.mkstemp(prefix="qlab-worker-")
        os.write(fd, bytes(_MMAP_SIZE))
        os.close(fd)
        with open(self.path, "r+b") as f:
            self._mm = mmap.mmap(f.fileno(), _MMAP_SIZE)
        self.view = memoryview(self._mm).cast("d")
        self.view[0] = -1.0
        self.flag = _Flag(self.view)
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=_child_main, args=(child, self.path, worker), name=f"qlab-worker-{worker}"
        )
        self.process.daemon = True
        # cloudpickle carries what __main__ defines by value: no need to re-import the
        # parent's main module (a notebook kernel, pytest) in every worker
        self.process.init_main_module = False
        self.process.start()
        child.close()
        self.killed_for_timeout = False

    def wait_ready(self) -> int:
        _, pid = pickle.loads(self.conn.recv_bytes())
        os.unlink(self.path)  # both sides have it mapped; nothing is left on disk
        return pid

    def configure(self, config: bytes) -> None:
        self.flag.clear()
        self.view[3] = 0.0
        self.conn.send_bytes(config)
        kind, err = pickle.loads(self.conn.recv_bytes())
        if kind != "ok":
            raise TypeError(f"handler cannot be unpickled in a worker process: {err}")

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self, kill: bool = False) -> None:
        self.request_stop(kill)
        self.join()

    def request_stop(self, kill: bool = False) -> None:
        """Ask the worker to exit (or kill it); :meth:`join` waits for it."""
        if kill:
            _kill(self.process)
        else:
            with contextlib.suppress(OSError):
                self.conn.send_bytes(pickle.dumps(("stop",)))

    def join(self) -> None:
        self.process.join(5)
        if self.process.is_alive():
            _kill(self.process)
            self.process.join()
        self.conn.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def _kill(process: Any) -> None:
    """SIGKILL a worker process (loky's Popen has no kill())."""
    if process.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)


def _note_trackers() -> None:
    """Remember the resource trackers that our first start launches, to stop them when
    the last worker is gone (so that no child process of qlab outlives its pool)."""
    from joblib.externals.loky.backend import resource_tracker as loky_tracker

    for tracker in (loky_tracker._resource_tracker, mp_tracker._resource_tracker):
        if getattr(tracker, "_pid", None) is None and tracker not in _OWN_TRACKERS:
            _OWN_TRACKERS.append(tracker)


def _stop_trackers() -> None:
    while _OWN_TRACKERS:
        tracker = _OWN_TRACKERS.pop()
        with contextlib.suppress(Exception):
            tracker._stop()


@contextlib.contextmanager
def warm_workers() -> Iterator[None]:
    """Keep worker processes alive between pools inside this block (sweeps use it).

    Example:
        >>> import qlab
        >>> from qlab.backends.process import warm_workers
        >>> with warm_workers():
        ...     a = qlab.run(abs, range(10), workers=2, backend="process")
        ...     b = qlab.run(abs, range(10), workers=2, backend="process")  # no start-up
        >>> b.meta["startup_s"] < a.meta["startup_s"]
        True
    """
    global _WARM
    with _WARM_LOCK:
        outer = _WARM is None
        if outer:
            _WARM = []
    try:
        yield
    finally:
        if outer:
            with _WARM_LOCK:
                procs, _WARM = _WARM or [], None
            for proc in procs:
                proc.request_stop()
            for proc in procs:
                proc.join()
            _stop_trackers()


class ProcessBackend:
    """Runs batches in worker processes; the engine's worker threads drive them."""

    name = "process"
    can_kill = True
    batch_target_s = 0.02  # work per batch: a round trip costs the parent ~0.3 ms of CPU

    def start(self, pool: Pool, workers: int) -> dict[str, Any]:
        self._pool = pool
        self._config_for = lambda w: _dumps(
            ("config", self._fn_bytes, pool._retry, pool._seed, pool._timeout,
             pool._want_results, w)
        )  # fmt: skip
        self._fn_bytes = check_picklable("handler", pool._fn)
        self._lock = threading.Lock()
        self._stopping = False
        self._ahead: dict[int, Batch] = {}  # worker -> the batch sent ahead to it
        t = time.perf_counter()
        with _WARM_LOCK:
            warm = [p for p in (_WARM or []) if p.alive()]
            reuse, rest = warm[:workers], warm[workers:]
            if _WARM is not None:
                _WARM[:] = rest
        fresh = [_Proc(w) for w in range(len(reuse), workers)]
        self.procs: list[_Proc] = reuse + fresh
        self.pids: dict[int, list[int]] = {}
        try:
            for w, proc in enumerate(self.procs):
                if proc in fresh:
                    proc.wait_ready()
                proc.configure(self._config_for(w))
                self.pids[w] = [proc.process.pid]
        except BaseException:
            for proc in self.procs:
                proc.stop(kill=True)
            raise
        return {"startup_s": time.perf_counter() - t, "warm_workers": len(reuse)}

    def new_event(self, worker: int) -> Any:
        return _SlotFlag(self, worker)

    def run_batch(self, slot: _Slot, batch: Batch, res: BatchResult) -> BatchResult:
        """Send ``batch`` (unless it went ahead), send the next one ahead so that the
        worker never waits for this thread, then wait for ``batch``'s columns."""
        proc = self.procs[slot.worker]
        if self._ahead.pop(slot.worker, None) is not batch:
            try:
                data = _dumps(("batch", batch))
            except Exception as exc:
                return self._unpicklable(batch, res, exc)
            with contextlib.suppress(OSError):  # a dead worker: recv_bytes says so
                proc.conn.send_bytes(data)
        self._send_ahead(slot, proc)
        try:
            _, out = pickle.loads(proc.conn.recv_bytes())
        except (EOFError, OSError):
            res = self._lost(slot, proc, batch, res)
            ahead = self._ahead.pop(slot.worker, None)
            if ahead is not None:  # lost with the worker before it started: rerun, uncharged
                res.rest = (res.rest or EMPTY) + ahead
                slot.queued = None
            return res
        for f in out.failures:
            if f.tb:
                if f.exc is None:
                    f.exc = RemoteTraceback(f.tb)
                f.exc.__cause__ = RemoteTraceback(f.tb)
        return out

    def _send_ahead(self, slot: _Slot, proc: _Proc) -> None:
        """Pipelining: hand the worker its next batch while it runs this one."""
        following = self._pool.take_nowait(slot)
        if following is None:
            return
        slot.queued = following  # the engine runs it next, sent ahead or not
        try:
            data = _dumps(("batch", following))
        except Exception:  # a payload that does not pickle: run_batch deals with it
            return
        with contextlib.suppress(OSError):
            proc.conn.send_bytes(data)
            self._ahead[slot.worker] = following

    def _unpicklable(self, batch: Batch, res: BatchResult, exc: Exception) -> BatchResult:
        """Fail (for good) the jobs whose payload cannot be pickled; rerun the others."""
        bad, good = [], []
        for item in batch:
            try:
                _dumps(item)
                good.append(item)
            except Exception:
                bad.append(item)
        now = time.perf_counter()
        res.items, res.rest = Batch.of(bad), Batch.of(good)
        for row, item in enumerate(bad):
            res.t0.append(now)
            res.t1.append(now)
            res.cpu.append(0.0)
            msg = f"payload of job {item[0]} cannot be pickled for the process backend: {exc}"
            res.failures.append(Failure(row, 0, type(exc).__name__, msg, True, TypeError(msg)))
        return res

    def _lost(self, slot: _Slot, proc: _Proc, batch: Batch, res: BatchResult) -> BatchResult:
        """The worker died: charge the running job an attempt, rerun the rest."""
        i, t0 = int(proc.view[0]), proc.view[1]
        proc.process.join(1)
        now = time.perf_counter()
        stopping = self._stopping or slot.state.stop
        if not stopping:
            self._replace(slot.worker)
        if i < 0:  # died between jobs: nobody to charge
            res.items, res.rest = EMPTY, batch
            return res
        if stopping:
            code, etype, msg = CANCELLED, "Cancelled", "worker stopped by an interrupt"
        elif proc.killed_for_timeout:
            code, etype = TIMEOUT, "TimeoutError"
            msg = f"attempt exceeded timeout={self._pool._timeout}s; the worker process was killed"
        else:
            code, etype = CRASHED, "WorkerCrashed"
            msg = f"worker process {proc.process.pid} died (exit code {proc.process.exitcode})"
        res.items, res.rest = batch[i : i + 1], batch[:i] + batch[i + 1 :]
        res.t0.append(t0)
        res.t1.append(now)
        res.cpu.append(float("nan"))
        if res.results is not None or self._pool._want_results:
            res.results = [None]
        res.failures.append(Failure(0, code, etype, msg, False, RuntimeError(msg)))
        return res

    def _replace(self, worker: int) -> None:
        """Start a new worker in place of a dead one (under the lock, so that a
        concurrent close() either stops it or prevents it)."""
        with self._lock:
            if self._stopping:
                return
            self.procs[worker].stop(kill=True)
            proc = _Proc(worker)
            proc.wait_ready()
            proc.configure(self._config_for(worker))
            self.procs[worker] = proc
            self.pids.setdefault(worker, []).append(proc.process.pid)

    def overdue(self, slot: _Slot, now: float, timeout: float) -> None:
        """Kill the worker whose running attempt is past its deadline; its worker
        thread then sees the process die and records the timeout (see ``_lost``)."""
        proc = self.procs[slot.worker]
        if proc.view[0] >= 0 and now - proc.view[1] >= timeout and not proc.killed_for_timeout:
            proc.killed_for_timeout = True
            _kill(proc.process)
        return None

    def stop_intake(self) -> None:
        """Running attempts finish; batches sent ahead do not start."""
        for proc in self.procs:
            proc.view[3] = 1.0

    def stop_worker(self, slot: _Slot) -> None:
        _kill(self.procs[slot.worker].process)

    def close(self, kill: bool = False) -> None:
        """Stop the workers (killing them with ``kill``), or park them for reuse inside
        ``warm_workers()``. The engine calls it once the worker threads are done, and
        first with ``kill=True`` to stop running attempts at a second Ctrl-C."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
        if not kill:
            with _WARM_LOCK:
                if _WARM is not None:
                    _WARM.extend(p for p in self.procs if p.alive())
                    return
        for proc in self.procs:  # all at once, then wait: they exit in parallel
            proc.request_stop(kill=kill or not proc.alive())
        for proc in self.procs:
            proc.join()
        with _WARM_LOCK:
            if _WARM is None:
                _stop_trackers()

    def info(self) -> dict[str, Any]:
        return {"pids": {w: list(p) for w, p in self.pids.items()}}


class _SlotFlag:
    """The parent's handle on a worker's cancel flag (the engine calls ``set()``)."""

    def __init__(self, backend: ProcessBackend, worker: int) -> None:
        self.backend = backend
        self.worker = worker

    def set(self) -> None:
        self.backend.procs[self.worker].flag.set()

    def is_set(self) -> bool:
        return self.backend.procs[self.worker].flag.is_set()
