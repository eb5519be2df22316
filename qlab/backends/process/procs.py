"""Worker processes as the parent sees them: their handles and their lifetime.

A :class:`Proc` is one worker process, forked by qlab's fork server
(:mod:`qlab.backends.forkserver`) and running :func:`qlab.backends.process.worker.child_main`:
a channel for batches, and a small shared mmap for what the parent must read while a
batch runs. Workers live as long as their pool, or, inside ``with warm_workers():``
(which a sweep uses), as long as that block, so that start-up is paid once. The fork
server lives as long as any pool or warm block holds it, and no longer.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import signal
import threading
from collections.abc import Iterator
from typing import Any

from qlab.backends.process import forkserver
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
    """Parent side of one worker process (forked by the fork server)."""

    def __init__(self, worker: int) -> None:
        fd = _shared_memory()
        try:
            self._mm = mmap.mmap(fd, MMAP_SIZE)
            self.view = memoryview(self._mm).cast("d")
            self.view[0] = -1.0  # before the worker can see it
            self.process, self.conn = forkserver.fork_worker(worker, fd)
        finally:
            os.close(fd)
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
            return RuntimeError("qlab's fork server could not start a worker process")
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


def _shared_memory() -> int:
    """A file descriptor of ``MMAP_SIZE`` zeroed bytes that exist nowhere on disk."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("qlab-worker", os.MFD_CLOEXEC)
    else:  # pragma: no cover - not Linux
        import tempfile

        with tempfile.TemporaryFile() as f:
            fd = os.dup(f.fileno())
    os.ftruncate(fd, MMAP_SIZE)
    return fd


def kill_process(process: Any) -> None:
    """SIGKILL a worker process (unless the fork server has already reaped it)."""
    pid = process.pid
    if pid is not None and process.is_alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


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
