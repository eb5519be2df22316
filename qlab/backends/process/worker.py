"""Inside a worker process: its main loop, and the messages it exchanges.

A worker (forked by :mod:`qlab.backends.process.forkserver`) runs :func:`child_main`: it
receives a configuration (the cloudpickled job spec: handler, retry classifier,
seed, timeout), then batches, and sends back each batch's columns (:func:`pack`;
the parent reads them with :func:`unpack`). A small shared mmap carries what the
parent must read while a batch runs (which attempt is running, since when) and the
cancel and stop flags. This module and the few it imports are all that a worker
needs, so the fork server imports nothing else.
"""

from __future__ import annotations

import io
import mmap
import os
import pickle
import signal
import socket
import struct
import sys
import time
from typing import Any

from qlab.backends.process.packing import RemoteTraceback, pack, remote_tb, unpack, unreadable
from qlab.core.context import WorkerState
from qlab.core.loop import execute
from qlab.core.protocol import BatchResult

__all__ = [
    "MMAP_SIZE",
    "Channel",
    "Flag",
    "RemoteTraceback",
    "child_main",
    "pack",
    "remote_tb",
    "unpack",
]

# doubles: running index (-1: none), its start time, cancel flag, no-more-batches flag,
# and what the worker does with that index's job (STAGE_*: the parent charges a death)
MMAP_SIZE = 5 * 8
STAGE_CALL, STAGE_ARGS, STAGE_RESULT = 0.0, 1.0, 2.0  # running it; unpickling; pickling
_HEADER = struct.Struct("Q")


class Channel:
    """Length-prefixed messages over a socket (``multiprocessing.Connection``'s
    ``send_bytes``/``recv_bytes``, without importing multiprocessing).

    Example:
        >>> a, b = (Channel(s) for s in socket.socketpair())
        >>> a.send_bytes(b"hi"); bytes(b.recv_bytes())
        b'hi'
        >>> a.close(); b.close()
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send_bytes(self, data: bytes | bytearray) -> None:
        if len(data) < 65536:  # one system call for the usual small message
            self.sock.sendall(_HEADER.pack(len(data)) + data)
        else:
            self.sock.sendall(_HEADER.pack(len(data)))
            self.sock.sendall(data)

    def recv_bytes(self) -> bytearray:
        """The next message; EOFError when the other side is gone."""
        (n,) = _HEADER.unpack(self._exactly(_HEADER.size))
        return self._exactly(n)

    def _exactly(self, n: int) -> bytearray:
        buf = bytearray(n)
        view, pos = memoryview(buf), 0
        while pos < n:
            got = self.sock.recv_into(view[pos:])
            if not got:
                raise EOFError("the other side closed the channel")
            pos += got
        return buf

    def close(self) -> None:
        self.sock.close()


class Flag:
    """The cancel flag in the shared mmap, with the ``threading.Event`` methods that
    ``CancelToken`` uses (the child polls it: no semaphore, so no resource tracker)."""

    def __init__(self, view: memoryview[float]) -> None:
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


def open_shared(shared: int | str) -> mmap.mmap:
    """Map the parent's shared memory: a file descriptor (closed then), or on Windows
    the name of a mapping."""
    if isinstance(shared, int):
        try:
            return mmap.mmap(shared, MMAP_SIZE)
        finally:
            os.close(shared)
    if sys.platform == "win32":
        return mmap.mmap(-1, MMAP_SIZE, tagname=shared)
    raise TypeError(f"shared memory is passed as a file descriptor here, got {shared!r}")


def child_main(conn: Any, shared: int | str, worker: int) -> None:
    """A worker process: configure, then run batches until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    mm = open_shared(shared)
    view = memoryview(mm).cast("d")
    state = WorkerState(worker, None, None, Flag(view))
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
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        view[4] = STAGE_ARGS  # a death from here on is the batch's (see _lost)
        try:
            msg = loads(data)
        except BaseException as exc:  # a job's data: SystemExit too
            conn.send_bytes(unreadable(exc))
            view[4] = STAGE_CALL
            continue
        del data
        view[4] = STAGE_CALL
        if msg[0] == "batch":
            # a batch sent ahead after the pool stopped intake does not start at all
            res = (
                BatchResult()
                if view[3]
                else execute(fn, msg[1], state, is_permanent, keep, publish, shared=view)
            )
            view[0] = -1.0
            view[4] = STAGE_RESULT
            conn.send_bytes(pack(res, view))
            view[0], view[4] = -1.0, STAGE_CALL
        elif msg[0] == "config":
            spec = _configure(conn, msg, state)
            if spec is not None:
                fn, is_permanent, keep = spec.handler, spec.is_permanent, spec.want_results
        else:  # "stop": nothing to flush, so skip the interpreter's slow teardown
            os._exit(0)


def _configure(conn: Any, msg: tuple, state: WorkerState) -> Any:
    """Take a pool's configuration: the parent's authkey first (as multiprocessing's
    start methods hand it over, so that a ``multiprocessing.Manager`` proxy among a
    call's arguments can connect), then the cloudpickled job spec; None if it fails."""
    try:
        _, config, worker, authkey = msg
        _AUTHKEY[:] = [] if authkey is None else [authkey]
        _use_authkey()
        spec = _loads_importing(config)
        state.seed, state.timeout, state.worker = spec.seed, spec.timeout, worker
        conn.send_bytes(pickle.dumps(("ok", None)))
        return spec
    except Exception as exc:
        conn.send_bytes(pickle.dumps(("error", f"{type(exc).__name__}: {exc}")))
        return None


def _loads_importing(data: bytes) -> Any:
    """:func:`loads`; if a module is missing, run ``site`` (the fork server skips it
    at start-up: an editable install's finder, say) and try once more."""
    try:
        return loads(data)
    except ImportError:
        if not run_site():
            raise
        return loads(data)


_AUTHKEY: list[bytes] = []  # the parent's multiprocessing authkey, until it is used


def _use_authkey() -> None:
    """Give multiprocessing the parent's authkey, if it is imported here by now (a
    worker does not import it for itself)."""
    mp_process = sys.modules.get("multiprocessing.process")
    if _AUTHKEY and mp_process is not None:
        mp_process.current_process().authkey = _AUTHKEY.pop()


class _Loader(pickle.Unpickler):
    """Unpickles a message; the moment it meets something of multiprocessing's (a
    Manager's proxy), multiprocessing, imported just now, gets the parent's authkey:
    before the proxy connects to its manager."""

    def find_class(self, module: str, name: str) -> Any:
        found = super().find_class(module, name)
        if module.startswith("multiprocessing"):
            _use_authkey()
        return found


def loads(data: bytes | bytearray) -> Any:
    """``pickle.loads``, watching for multiprocessing while its authkey is pending."""
    if _AUTHKEY:
        return _Loader(io.BytesIO(data)).load()
    return pickle.loads(data)


def run_site() -> bool:
    """Run ``site.main()`` once in a process started with ``-S``; False if it ran."""
    import site

    if getattr(site, "_qlab_ran", False) or not __import__("sys").flags.no_site:
        return False
    site._qlab_ran = True  # type: ignore[attr-defined]
    site.main()
    return True
