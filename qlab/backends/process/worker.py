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

import contextlib
import mmap
import os
import pickle
import signal
import socket
import struct
import sys
import time
import traceback
from array import array
from typing import Any

from qlab.core.codes import FAILED
from qlab.core.context import WorkerState
from qlab.core.loop import execute
from qlab.core.protocol import BatchResult, Failure

__all__ = [
    "MMAP_SIZE",
    "Channel",
    "Flag",
    "RemoteTraceback",
    "child_main",
    "pack",
    "unpack",
]

# doubles: running index (-1: none), its start time, cancel flag, no-more-batches flag
MMAP_SIZE = 4 * 8
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
            msg = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        if msg[0] == "batch":
            # a batch sent ahead after the pool stopped intake does not start at all
            res = (
                BatchResult()
                if view[3]
                else execute(fn, msg[1], state, is_permanent, keep, publish, shared=view)
            )
            view[0] = -1.0
            conn.send_bytes(pack(res))
        elif msg[0] == "config":
            try:
                spec = _loads_importing(msg[1])
                fn, is_permanent, keep = spec.handler, spec.is_permanent, spec.want_results
                state.seed, state.timeout, state.worker = spec.seed, spec.timeout, msg[2]
                conn.send_bytes(pickle.dumps(("ok", None)))
            except Exception as exc:
                conn.send_bytes(pickle.dumps(("error", f"{type(exc).__name__}: {exc}")))
        else:  # "stop": nothing to flush, so skip the interpreter's slow teardown
            os._exit(0)


def _loads_importing(data: bytes) -> Any:
    """``pickle.loads``; if a module is missing, run ``site`` (the fork server skips
    it at start-up: an editable install's finder, say) and try once more."""
    try:
        return pickle.loads(data)
    except ImportError:
        if not run_site():
            raise
        return pickle.loads(data)


def run_site() -> bool:
    """Run ``site.main()`` once in a process started with ``-S``; False if it ran."""
    import site

    if getattr(site, "_qlab_ran", False) or not __import__("sys").flags.no_site:
        return False
    site._qlab_ran = True  # type: ignore[attr-defined]
    site.main()
    return True


def remote_tb(exc: BaseException) -> str:
    """``exc``'s traceback as text, as ``traceback.format_exception`` writes it but
    without the ``^^^^`` lines of Python 3.11 (finding them parses each line's source:
    ~0.3 ms of a worker's CPU per failed attempt, most of what a failure cost).
    Chained exceptions and groups are written in full.

    Example:
        >>> try:
        ...     {}["k"]
        ... except KeyError as exc:
        ...     text = remote_tb(exc)
        >>> text.splitlines()[0], text.splitlines()[-1]
        ('Traceback (most recent call last):', "KeyError: 'k'")
    """
    chained = exc.__cause__ is not None or exc.__context__ is not None
    if chained or isinstance(exc, BaseExceptionGroup):
        return "".join(traceback.format_exception(exc))
    lines = traceback.format_exception_only(exc)
    if exc.__traceback__ is not None:
        stack = traceback.StackSummary.extract(traceback.walk_tb(exc.__traceback__))
        lines = ["Traceback (most recent call last):\n", *stack.format(), *lines]
    return "".join(lines)


def pack(res: BatchResult) -> bytes:
    """Pickle a batch's result in three parts, so that one part that cannot be rebuilt
        in the parent costs only its own rows: the columns and failures (as text), each
        failure's exception apart, and the results. Results that do not pickle fail their
        job. Times travel as arrays of doubles (one buffer each, not a float per row); a
    quick batch sends only its end times and its first start (a row starts where the
    one before it ended), which :func:`unpack` turns back into both columns."""
    res.t1 = res.t1 if isinstance(res.t1, array) else array("d", res.t1)
    first = None
    if res.cpu_share is None:
        res.t0, res.cpu = array("d", res.t0), array("d", res.cpu)
    elif len(res.t0):  # a quick batch: each row starts where the one before it ended
        first, res.t0 = res.t0[0], None
    errors: list[bytes | None] = []
    for f in res.failures:
        blob = None
        if f.exc is not None:
            f.tb = remote_tb(f.exc)
            with contextlib.suppress(Exception):
                blob = pickle.dumps(f.exc, protocol=pickle.HIGHEST_PROTOCOL)
            f.exc = None
        errors.append(blob)
    results, res.results = res.results, None
    blob = None
    if results is not None:
        try:
            blob = pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            for row, value in enumerate(results):
                try:
                    pickle.dumps(value)
                except Exception as exc:
                    results[row] = None
                    msg = f"result cannot be pickled: {exc}"
                    res.failures.append(Failure(row, FAILED, type(exc).__name__, msg, True))
                    errors.append(None)
            order = sorted(range(len(res.failures)), key=lambda k: res.failures[k].row)
            res.failures = [res.failures[k] for k in order]
            errors = [errors[k] for k in order]
            blob = pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)
    return pickle.dumps(("done", res, errors, blob, first), protocol=pickle.HIGHEST_PROTOCOL)


def unpack(data: bytes | bytearray, n_rows: int) -> BatchResult:
    """The parent's side of :func:`pack`: rebuild each error on its own (one that
    cannot be rebuilt becomes a :class:`RemoteTraceback` of its text), and the results
    (if they cannot be rebuilt, the rows that have no failure fail)."""
    _, res, errors, blob, first = pickle.loads(data)
    if res.t0 is None:
        res.t0 = array("d", [first]) + res.t1[: len(res.t1) - 1]
    for f, err in zip(res.failures, errors, strict=True):
        if err is not None:
            try:
                f.exc = pickle.loads(err)
            except Exception as exc:
                why = f"{type(exc).__name__}: {exc}"
                f.tb += f"\n({f.error_type} could not be rebuilt in the parent process: {why})"
        if f.tb:
            if f.exc is None:
                f.exc = RemoteTraceback(f.tb)
            f.exc.__cause__ = RemoteTraceback(f.tb)
    if blob is not None:
        try:
            res.results = pickle.loads(blob)
        except Exception as exc:
            failed = {f.row for f in res.failures}
            why = f"the batch's results could not be rebuilt in the parent process: {exc}"
            n = min(len(res), n_rows)
            res.results = [None] * n
            res.failures += [
                Failure(row, FAILED, type(exc).__name__, why, True, RuntimeError(why))
                for row in range(n)
                if row not in failed
            ]
            res.failures.sort(key=lambda f: f.row)
    return res


class RemoteTraceback(Exception):
    """The traceback of an error raised in a worker process (set as ``__cause__``)."""

    def __str__(self) -> str:
        return self.args[0]
