"""Worker processes: their parent-side handle, their main loop, and their lifetime.

Each worker process runs :func:`_child_main`: it receives a configuration (the
cloudpickled handler and the job spec), then batches, and sends back each batch's
columns. A small shared mmap per worker carries what the parent must read while a
batch runs (which attempt is running, since when) and the cancel and stop flags.

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
from typing import Any

from qlab.backends.base import BatchResult, Failure
from qlab.backends.loop import execute
from qlab.codes import FAILED
from qlab.context import WorkerState

__all__ = [
    "Proc",
    "RemoteTraceback",
    "acquire",
    "dumps",
    "kill",
    "park",
    "stop_all",
    "warm_workers",
]

# doubles: running index (-1: none), its start time, cancel flag, no-more-batches flag
_MMAP_SIZE = 4 * 8
_WARM: list[Proc] | None = None  # parked workers while a warm_workers() block is open
_WARM_LOCK = threading.Lock()
_OWN_TRACKERS: list[Any] = []  # resource trackers that qlab started (and so stops)
_LIVE = [0]  # worker processes started and not yet joined, in every pool
_LIVE_LOCK = threading.Lock()


def dumps(obj: Any) -> bytes:
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        import cloudpickle  # what loky uses for callables

        return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


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
            try:
                spec = pickle.loads(msg[1])
                fn, is_permanent, keep = spec.handler, spec.is_permanent, spec.want_results
                state.seed, state.timeout, state.worker = spec.seed, spec.timeout, msg[2]
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
            try:  # an error that pickles but cannot be rebuilt would sink the batch
                pickle.loads(pickle.dumps(f.exc))
            except Exception:
                f.exc = None  # the parent rebuilds it from the traceback text
    try:
        return pickle.dumps(("done", res), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        for row, value in enumerate(res.results or []):
            try:
                pickle.dumps(value)
            except Exception as exc:
                res.results[row] = None
                res.failures.append(
                    Failure(
                        row, FAILED, type(exc).__name__, f"result cannot be pickled: {exc}", True
                    )
                )
        res.failures.sort(key=lambda f: f.row)
        return pickle.dumps(("done", res), protocol=pickle.HIGHEST_PROTOCOL)


class RemoteTraceback(Exception):
    """The traceback of an error raised in a worker process (set as ``__cause__``)."""

    def __str__(self) -> str:
        return self.args[0]


class Proc:
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
        self._joined = False
        with _LIVE_LOCK:
            _LIVE[0] += 1

    def wait_ready(self) -> int:
        try:
            _, pid = pickle.loads(self.conn.recv_bytes())
        except (EOFError, OSError):
            self.process.join(1)
            raise RuntimeError(
                f"worker process {self.process.pid} died during start-up "
                f"(exit code {self.process.exitcode})"
            ) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
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
            kill_process(self.process)
        else:
            with contextlib.suppress(OSError):
                self.conn.send_bytes(pickle.dumps(("stop",)))

    def join(self) -> None:
        self.process.join(5)
        if self.process.is_alive():
            kill_process(self.process)
            self.process.join()
        self.conn.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        with _LIVE_LOCK:
            if self._joined:
                return
            self._joined = True
            _LIVE[0] -= 1
        release_trackers()


def kill_process(process: Any) -> None:
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


def release_trackers() -> None:
    """Stop the resource trackers that qlab started once no worker of any pool is
    alive: a tracker exits only when every process holding its pipe has, so stopping
    it while another pool's workers live would wait forever (two pools at once)."""
    with _LIVE_LOCK:
        if _LIVE[0] > 0:
            return
        trackers = list(_OWN_TRACKERS)
        _OWN_TRACKERS.clear()
    for tracker in trackers:
        with contextlib.suppress(Exception):
            tracker._stop()


def acquire(workers: int) -> list[Proc]:
    """Up to ``workers`` parked workers to reuse (inside ``warm_workers()``)."""
    with _WARM_LOCK:
        if _WARM is None:
            return []
        warm = [p for p in _WARM if p.alive()]
        _WARM[:] = warm[workers:]
        return warm[:workers]


def park(procs: list[Proc]) -> bool:
    """Keep ``procs`` for the next pool if a ``warm_workers()`` block is open."""
    with _WARM_LOCK:
        if _WARM is None:
            return False
        _WARM.extend(p for p in procs if p.alive())
        return True


def stop_all(procs: list[Proc], kill: bool = False) -> None:
    """Stop ``procs`` all at once, then wait: they exit in parallel."""
    for proc in procs:
        proc.request_stop(kill=kill or not proc.alive())
    for proc in procs:
        proc.join()


@contextlib.contextmanager
def warm_workers() -> Iterator[None]:
    """Keep worker processes alive between pools inside this block (sweeps use it).

    Example:
        >>> import qlab
        >>> from qlab.backends.procs import warm_workers
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
            stop_all(procs)
