"""The fork server's own process: its main loop (see :mod:`qlab.backends.process.forkserver`).

It starts with ``-S``, the parent's ``sys.path``, and ``qlab`` as a bare package
(so that ``qlab/__init__.py``, which imports the engine, pandas and the workloads,
does not run: :class:`LazyPackage`), imports :mod:`qlab.backends.process.worker`, and then
waits on its socket: a "preload" message imports a handler's modules, a "fork"
message (with three file descriptors) forks a worker. SIGCHLD wakes it to reap a
worker and pass its exit code on.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import socket
import struct
import sys
import types
from typing import Any

__all__ = ["INT", "LazyPackage", "serve"]

INT = struct.Struct("i")  # pids and exit codes on a status pipe


# what handlers use of ``qlab.*`` in a worker, and the light modules that define it
_LIGHT = {
    "current": "qlab.core.context",
    "Cancelled": "qlab.core.context",
    "CancelToken": "qlab.core.context",
    "JobContext": "qlab.core.context",
    "Permanent": "qlab.core.retry",
}


class LazyPackage(types.ModuleType):
    """The ``qlab`` package in the server and its workers: its submodules import
    without running ``qlab/__init__.py`` (the engine, the workloads, logging...);
    ``qlab.current`` and the few names a handler uses come from their own modules,
    and the first other attribute it lacks runs ``__init__.py``."""

    def __getattr__(self, name: str) -> Any:
        import importlib.util

        if name in _LIGHT:
            value = getattr(importlib.import_module(_LIGHT[name]), name)
            setattr(self, name, value)
            return value

        init = os.path.join(self.__path__[0], "__init__.py")
        spec = importlib.util.spec_from_file_location("qlab", init)
        assert spec is not None and spec.loader is not None
        self.__class__ = types.ModuleType  # type: ignore[assignment]
        self.__spec__, self.__file__, self.__loader__ = spec, init, spec.loader
        spec.loader.exec_module(self)
        return getattr(self, name)


def _import(name: str) -> None:
    from qlab.backends.process.worker import run_site

    try:
        __import__(name)
    except ImportError:  # perhaps from a .pth file's path or finder: run site once
        if run_site():
            __import__(name)


def serve(fd: int) -> None:
    """The fork server's main loop (runs in the server process; see the module)."""
    sys.modules["qlab"].__class__ = LazyPackage
    from qlab.backends.process import worker  # every worker runs it: import it once, here

    # the parent decides what Ctrl-C (or a SIGTERM to the process group) means; the
    # server leaves when the parent releases it or dies (its socket then reads EOF)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sig_r, sig_w = os.pipe()
    os.set_blocking(sig_r, False)
    os.set_blocking(sig_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(sig_w)
    ctl = socket.socket(fileno=fd)
    status: dict[int, int] = {}  # live worker pid -> its status pipe
    while True:
        ready, _, _ = select.select([ctl, sig_r], [], [])  # type: ignore[type-var]
        if sig_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(sig_r, 4096)
            _reap(status, os.WNOHANG)
        if ctl not in ready:
            continue
        data, fds, _, _ = socket.recv_fds(ctl, 1 << 16, 3)
        if not data:  # the last user released the server
            break
        kind, arg = pickle.loads(data)
        if kind == "preload":
            for name in arg:
                with contextlib.suppress(BaseException):
                    _import(name)
            continue
        conn_fd, mm_fd, status_fd = fds
        try:
            pid = os.fork()
        except OSError:  # no memory, too many processes: the parent sees EOF
            for own in fds:
                os.close(own)
            continue
        if pid == 0:
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)  # workers keep the default
                for own in (sig_r, sig_w, status_fd, *status.values()):
                    os.close(own)
                ctl.close()
                worker.child_main(worker.Channel(socket.socket(fileno=conn_fd)), mm_fd, arg)
                code = 0
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                os._exit(code)
        with contextlib.suppress(OSError):
            os.write(status_fd, INT.pack(pid))
        status[pid] = status_fd
        os.close(conn_fd)
        os.close(mm_fd)
    for pid in status:  # a safety net: pools stop their workers before releasing
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _reap(status, 0)
    os._exit(0)


def _reap(status: dict[int, int], flags: int) -> None:
    """Collect exited workers and send each one's exit code to its parent-side handle."""
    while status:
        try:
            pid, sts = os.waitpid(-1, flags)
        except ChildProcessError:
            return
        if pid == 0:
            return
        fd = status.pop(pid, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.write(fd, INT.pack(os.waitstatus_to_exitcode(sts)))
            os.close(fd)
