"""Worker processes as the parent sees them: their handles and their lifetime.

A :class:`Proc` is one worker process, started by a launcher (the fork server or
spawn: :mod:`qlab.backends.process.launch`) and running
:func:`qlab.backends.process.worker.child_main`: a channel for batches, and a small shared
mmap for what the parent must read while a batch runs. Workers live as long as their
pool, or, inside ``with warm_workers():`` (which a sweep uses), as long as that
block, so that start-up is paid once. The fork server lives as long as any pool or
warm block holds it, and no longer.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import sys
import threading
import uuid
from collections.abc import Iterator

from qlab.backends.process import forkserver
from qlab.backends.process.launch import Launcher, WorkerHandle
from qlab.backends.process.worker import MMAP_SIZE, Flag, RemoteTraceback, unpack

__all__ = [
    "Proc",
    "RemoteTraceback",
    "acquire",
    "kill_process",
    "park",
    "stop_all",
    "unpack",
    "warm_workers",
]

_WARM: list[Proc] | None = None  # parked workers while a warm_workers() block is open
_WARM_LOCK = threading.Lock()


class Proc:
    """Parent side of one worker process (started by ``launcher``)."""

    process: WorkerHandle

    def __init__(self, worker: int, launcher: Launcher) -> None:
        self.launcher = launcher
        self._mm, shared = _shared_memory()
        try:
            self.view = memoryview(self._mm).cast("d")
            self.view[0] = -1.0  # before the worker can see it
            self.process, self.conn = launcher.start_worker(worker, shared)
        finally:
            if isinstance(shared, int):
                os.close(shared)
        self.flag = Flag(self.view)
        self.killed_for_timeout = False
        self._joined = False

    def wait_ready(self) -> int:
        try:
            _, pid = pickle.loads(self.conn.recv_bytes())
        except (EOFError, OSError):
            raise self._died("during start-up") from None
        return pid

    def configure(self, config: bytes) -> None:
        self.flag.clear()
        self.view[3] = 0.0
        try:
            self.conn.send_bytes(config)
            kind, err = pickle.loads(self.conn.recv_bytes())
        except (EOFError, OSError):
            raise self._died("while loading the handler") from None
        if kind != "ok":
            raise TypeError(f"handler cannot be unpickled in a worker process: {err}")

    def _died(self, when: str) -> RuntimeError:
        """The error for a worker that is gone before it could take a batch."""
        self.process.join(1)
        pid, code = self.process.pid, self.process.exitcode
        if pid is None:
            return RuntimeError(f"qlab's {self.launcher.name} could not start a worker process")
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return RuntimeError(f"worker process {pid} died {when} ({how})")

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
        self.process.close()


def _shared_memory() -> tuple[mmap.mmap, int | str]:
    """``MMAP_SIZE`` zeroed bytes that exist nowhere on disk, mapped here, and what a
    worker needs to map them too: a file descriptor (closed once the worker has it),
    or on Windows the mapping's name."""
    if sys.platform == "win32":
        name = f"qlab-{os.getpid()}-{uuid.uuid4().hex}"
        return mmap.mmap(-1, MMAP_SIZE, tagname=name), name
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("qlab-worker", os.MFD_CLOEXEC)
    else:  # pragma: no cover - macOS: an unlinked temporary file
        import tempfile

        with tempfile.TemporaryFile() as f:
            fd = os.dup(f.fileno())
    try:
        os.ftruncate(fd, MMAP_SIZE)
        return mmap.mmap(fd, MMAP_SIZE), fd
    except BaseException:
        os.close(fd)
        raise


def kill_process(process: WorkerHandle) -> None:
    """Kill a worker process (SIGKILL; TerminateProcess on Windows), unless it has
    already been reaped."""
    if process.is_alive():
        process.kill()


def acquire(workers: int, launcher: Launcher) -> list[Proc]:
    """Up to ``workers`` parked workers that ``launcher`` started, to reuse (inside
    ``warm_workers()``)."""
    with _WARM_LOCK:
        if _WARM is None:
            return []
        live = [p for p in _WARM if p.alive()]
        mine = [p for p in live if p.launcher is launcher][:workers]
        _WARM[:] = [p for p in live if p not in mine]
        return mine


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
    """Keep worker processes (and their fork server) alive between pools inside this
    block (sweeps use it).

    Example:
        >>> import qlab
        >>> from qlab.backends.process.procs import warm_workers
        >>> with warm_workers():
        ...     a = qlab.run(abs, range(10), workers=2, backend="process")
        ...     b = qlab.run(abs, range(10), workers=2, backend="process")  # no start-up
        >>> a.meta["warm_workers"], b.meta["warm_workers"]
        (0, 2)
    """
    global _WARM
    with _WARM_LOCK:
        outer = _WARM is None
        if outer:
            _WARM = []
    if outer:
        forkserver.hold()
    try:
        yield
    finally:
        if outer:
            with _WARM_LOCK:
                procs, _WARM = _WARM or [], None
            try:
                stop_all(procs)
            finally:
                forkserver.release()
