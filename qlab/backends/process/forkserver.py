"""A small fork server that starts worker processes in a few milliseconds.

Starting a worker by ``fork + exec`` (loky, multiprocessing's spawn) costs a fresh
interpreter and its imports per worker: 0.1-0.5 s. Forking the parent itself is
unsafe (it has threads). So qlab starts, per ``hold()`` (a pool, or an open
``warm_workers()`` block), one small server process: a fresh interpreter that
imports only what a batch needs (:mod:`qlab.backends.process.worker` and its few modules;
not pandas, numpy or the rest of ``qlab``), plus the modules that a pool's handler
refers to (:func:`preload`), and then forks a worker on request::

    parent (any thread)                     fork server (one process)
    --------------------------------        -----------------------------------------
    fork_worker(w): socketpair, pipe,       recv_fds -> os.fork()
      mmap fd  -- SEQPACKET + SCM_RIGHTS -->  child: close the server's fds, run
                                              worker.child_main(channel, mm, w)
    WorkerProcess.pid      <-- status pipe -- the child's pid
    WorkerProcess.exitcode <-- status pipe -- its exit code, when SIGCHLD reaps it

The server's side is :mod:`qlab.backends.process.forkserver_main`. It lives while anyone
holds it; the last ``release()`` closes its socket, and it kills (a safety net:
pools stop their workers first) and reaps any worker left, then exits. It starts as
:mod:`qlab.backends.process.boot` says (``-S``, the parent's ``sys.path``).
It uses no semaphores, so no resource tracker is ever started.

It needs ``os.fork``, ``socket.recv_fds`` and ``AF_UNIX`` ``SOCK_SEQPACKET`` sockets:
Linux has them; macOS refuses SEQPACKET and Windows has none of them.
:func:`unavailable` says why it cannot run here (workers are then spawned:
:mod:`qlab.backends.process.launch`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import select
import signal
import socket
import subprocess
import threading
import time

from qlab.backends.process import forkserver_main
from qlab.backends.process.boot import boot_args
from qlab.backends.process.forkserver_main import INT
from qlab.backends.process.worker import Channel

__all__ = [
    "WorkerProcess",
    "fork_worker",
    "hold",
    "module_hints",
    "preload",
    "release",
    "unavailable",
]

_LOCK = threading.Lock()  # guards the two globals below and the server's socket
_USERS = [0]  # pools and warm_workers() blocks holding the server
_SERVER: list[_Server] = []  # the running server, if any
_NEEDS = {os: ("fork", "register_at_fork"), signal: ("SIGCHLD",), select: ("poll",),
          socket: ("recv_fds", "send_fds", "AF_UNIX", "SOCK_SEQPACKET")}  # fmt: skip


@functools.cache
def unavailable() -> str | None:
    """Why the fork server cannot run on this machine, or None if it can (checked
    once: the functions it needs, and a SEQPACKET socket pair, which macOS refuses).

    Example:
        >>> unavailable() is None or "fork server" in unavailable()
        True
    """
    missing = [f"{m.__name__}.{n}" for m, ns in _NEEDS.items() for n in ns if not hasattr(m, n)]
    if missing:
        return f"qlab's fork server needs {', '.join(missing)}, which this platform lacks"
    try:
        pair = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except OSError as exc:
        return f"qlab's fork server needs AF_UNIX SOCK_SEQPACKET sockets ({exc})"
    for sock in pair:
        sock.close()
    return None


class WorkerProcess:
    """The parent's view of a worker that the server forked: its pid and, once the
    server has reaped it, its exit code (both come through a pipe). Several threads
    may ask at once (a driver joins, the coordinator kills): the pipe is polled
    outside the lock and read, non-blocking, under it."""

    def __init__(self, status_fd: int) -> None:
        os.set_blocking(status_fd, False)
        self._fd = status_fd
        self._buf = b""
        self._eof = False  # the server closed the pipe (or we did, in close())
        self._closed = False
        self._lock = threading.Lock()
        self._pid: int | None = None
        self.exitcode: int | None = None

    @property
    def pid(self) -> int | None:
        """The worker's pid (None if the server could not fork it)."""
        while self._pid is None and not self._eof:
            self._poll(None)
        return self._pid

    def _poll(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` for news from the server, and read it."""
        if self._eof:
            return
        poller = select.poll()  # not select(): this fd may be above FD_SETSIZE
        poller.register(self._fd, select.POLLIN)
        poller.poll(None if timeout is None else max(timeout, 0) * 1000)
        with self._lock:
            if self._closed:
                return
            try:
                data = os.read(self._fd, 64)
            except BlockingIOError:  # nothing yet, or another thread read it
                return
            self._buf += data
            self._eof = not data
            if len(self._buf) >= 4 and self._pid is None:
                self._pid = INT.unpack(self._buf[:4])[0]
            if len(self._buf) >= 8 and self.exitcode is None:
                self.exitcode = INT.unpack(self._buf[4:8])[0]

    def is_alive(self) -> bool:
        self._poll(0)
        return self.exitcode is None and not self._eof

    def kill(self) -> None:
        """SIGKILL the worker, unless the server has already reaped it (its pid may
        then belong to another process)."""
        pid = self.pid
        if pid is not None and self.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))

    def join(self, timeout: float | None = None) -> None:
        """Wait until the worker has exited (and been reaped), or ``timeout``."""
        end = None if timeout is None else time.monotonic() + timeout
        while self.is_alive():
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                return
            self._poll(left)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = self._eof = True
                os.close(self._fd)


class _Server:
    """The parent's handle on the fork server process."""

    def __init__(self) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        serve = f"from {forkserver_main.__name__} import serve\nserve({theirs.fileno()})"
        args = boot_args(serve)
        try:
            self.popen = subprocess.Popen(
                args, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL
            )
        finally:
            theirs.close()
        self.sock = mine

    def send(self, msg: tuple, fds: list[int] | None = None) -> None:
        data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            socket.send_fds(self.sock, [data], fds or [])
        except OSError as exc:
            code = self.popen.poll()
            raise RuntimeError(f"qlab's fork server is gone (exit code {code}): {exc}") from None

    def stop(self) -> None:
        self.sock.close()  # the server sees EOF, stops what is left, and exits
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def _forget_in_child() -> None:
    """In a process forked from the parent (a fork ``multiprocessing.Pool``, say):
    drop the parent's server without stopping it, and close our copy of its socket,
    so that the parent's last ``release()`` still reaches it as EOF."""
    global _LOCK
    _LOCK = threading.Lock()
    _USERS[0] = 0
    for server in _SERVER:
        server.sock.close()
    _SERVER.clear()


if hasattr(os, "register_at_fork"):  # not on Windows (nor os.fork)
    os.register_at_fork(after_in_child=_forget_in_child)


def hold() -> None:
    """Count one more user (a pool, a ``warm_workers()`` block) of the fork server;
    the server itself starts on the first :func:`fork_worker` or :func:`preload`."""
    with _LOCK:
        _USERS[0] += 1


def release() -> None:
    """One user less; the last one stops the server (its workers must be gone)."""
    with _LOCK:
        _USERS[0] -= 1
        if _USERS[0] > 0 or not _SERVER:
            return
        server = _SERVER.pop()
        server.stop()


def _server() -> _Server:
    """The running server (under ``_LOCK``), started if needed or if it died."""
    if _USERS[0] <= 0:
        raise RuntimeError("the fork server is used without hold()")
    if _SERVER and _SERVER[0].popen.poll() is not None:
        _SERVER.pop().stop()
    if not _SERVER:
        _SERVER.append(_Server())
    return _SERVER[0]


def preload(modules: list[str]) -> None:
    """Have the server import ``modules`` (a handler's), so workers inherit them."""
    with _LOCK:
        _server().send(("preload", modules))


def fork_worker(worker: int, mm_fd: int) -> tuple[WorkerProcess, Channel]:
    """Ask the server for a worker process; it gets the other end of the returned
    channel and the shared memory ``mm_fd``. Does not wait for the fork."""
    mine, theirs = socket.socketpair()
    status_r, status_w = os.pipe()
    try:
        with _LOCK:
            _server().send(("fork", worker), [theirs.fileno(), mm_fd, status_w])
    except BaseException:
        mine.close()
        os.close(status_r)
        raise
    finally:
        theirs.close()
        os.close(status_w)
    return WorkerProcess(status_r), Channel(mine)


_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING"}


def module_hints(data: bytes, limit: int = 1 << 20) -> list[str]:
    """The modules that the pickle ``data`` refers to (its GLOBAL and STACK_GLOBAL
    opcodes), to :func:`preload` them; a hint only, so a pickle it cannot follow (or
    one over ``limit`` bytes) gives fewer names, never an error.

    Example:
        >>> import collections
        >>> module_hints(pickle.dumps(collections.OrderedDict))
        ['collections']
    """
    import pickletools

    if len(data) > limit:
        return []
    names: list[str] = []
    recent: list = []  # what the last opcodes pushed (strings, else None)
    memo: dict = {}
    try:
        for op, arg, _ in pickletools.genops(data):
            name = op.name
            if name in _STRINGS:
                recent.append(arg)
            elif name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
                memo[len(memo) if name == "MEMOIZE" else arg] = recent[-1] if recent else None
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                recent.append(memo.get(arg))
            elif name == "STACK_GLOBAL" and len(recent) >= 2:
                names.append(recent[-2])
                recent.append(None)
            elif name == "GLOBAL":
                names.append(str(arg).split(" ")[0])
                recent.append(None)
            else:
                recent.append(None)
            del recent[:-2]
    except Exception:
        pass
    skip = {"__main__", "builtins", "copyreg", None}
    return [n for n in dict.fromkeys(names) if n not in skip and isinstance(n, str)]
