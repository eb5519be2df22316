"""The portable launcher: every worker is a fresh interpreter, started by ``spawn``.

Where the fork server cannot run (macOS, Windows: :func:`qlab.backends.process.forkserver.
unavailable`), or with ``qlab.backends.Process(start="spawn")``, each worker process
is started as :mod:`multiprocessing`'s ``spawn`` starts one (``fork + exec``, or
``CreateProcess``, of ``sys.executable``) and runs the same worker loop over the same
channel as a forked worker::

    parent (start_worker)                       worker process (fresh interpreter)
    --------------------------------------      --------------------------------------
    socketpair, shared memory; Popen(boot) -->  python -S -c boot: qlab as a bare package
    stdin: (worker, its socket, the memory) ->  spawn_main.main(): adopt both, then
    SpawnedProcess (pid, exitcode, kill)        worker.child_main(channel, memory, worker)

POSIX passes the socket and the memory as file descriptors (``pass_fds``); Windows
passes the socket with ``socket.share`` and the memory as a named mapping.

Why not ``multiprocessing.get_context("spawn")`` itself, or loky: both start a
resource tracker process on POSIX that outlives the pool (until the interpreter
exits), both import their package in every worker, and multiprocessing's spawn
re-runs the parent's ``__main__`` module in each worker (a script without an
``if __name__ == "__main__":`` guard would start pools recursively). Handlers travel
by cloudpickle here, so the worker needs none of that: it imports what the fork
server's workers import (:mod:`qlab.backends.process.boot`), and nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import subprocess
import sys

from qlab.backends.process import spawn_main
from qlab.backends.process.boot import boot_args
from qlab.backends.process.worker import Channel

__all__ = ["LAUNCHER", "SpawnLauncher", "SpawnedProcess"]


class SpawnedProcess:
    """The parent's handle on a spawned worker: the worker handle of
    :class:`qlab.backends.process.launch.Launcher` over a ``subprocess.Popen``."""

    def __init__(self, popen: subprocess.Popen) -> None:
        self.popen = popen
        self.pid: int | None = popen.pid

    @property
    def exitcode(self) -> int | None:
        """None while it runs; then its exit code (``-N``: killed by signal N)."""
        return self.popen.poll()

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    def join(self, timeout: float | None = None) -> None:
        """Wait until the worker has exited (and been reaped), or ``timeout``."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout)

    def kill(self) -> None:
        """SIGKILL (TerminateProcess on Windows); nothing once it has been reaped."""
        with contextlib.suppress(OSError):
            self.popen.kill()

    def close(self) -> None:
        if self.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()


class SpawnLauncher:
    """Starts each worker as a fresh interpreter (:class:`qlab.backends.process.launch.Launcher`).

    Example:
        >>> from qlab.backends.process.procs import Proc
        >>> proc = Proc(0, LAUNCHER)
        >>> proc.wait_ready() == proc.process.pid
        True
        >>> proc.stop(); proc.process.exitcode
        0
    """

    name = "spawn"

    def hold(self) -> None:
        """Nothing to hold: there is no server."""

    def release(self) -> None:
        """Nothing to release."""

    def prepare(self, config: bytes | None) -> None:
        """Nothing to prepare: each worker imports what its job spec needs."""

    def start_worker(self, worker: int, shared: int | str) -> tuple[SpawnedProcess, Channel]:
        """Start worker number ``worker`` with the shared memory ``shared`` (a file
        descriptor, or on Windows a mapping's name); does not wait for it to boot."""
        mine, theirs = socket.socketpair()
        args = boot_args(f"from {spawn_main.__name__} import main\nmain()")
        try:  # a console's Ctrl-C reaches the parent only: it decides what Ctrl-C means
            if sys.platform == "win32":
                # a venv's python.exe only redirects to the base interpreter, in a process
                # of its own that killing the redirector would leave running: start the
                # base one (as multiprocessing does, bpo-35797); sys.path is passed anyway
                args[0] = getattr(sys, "_base_executable", None) or sys.executable
                env = dict(os.environ, __PYVENV_LAUNCHER__=sys.executable)
                flags = subprocess.CREATE_NEW_PROCESS_GROUP
                popen = subprocess.Popen(args, stdin=subprocess.PIPE, creationflags=flags, env=env)
            else:
                fds = [theirs.fileno(), int(shared)]
                popen = subprocess.Popen(args, stdin=subprocess.PIPE, pass_fds=fds, process_group=0)
        except BaseException:
            mine.close()
            theirs.close()
            raise
        try:
            handoff: bytes | int
            if sys.platform == "win32":
                handoff = theirs.share(popen.pid)
            else:
                handoff = theirs.fileno()
            assert popen.stdin is not None
            popen.stdin.write(pickle.dumps((worker, handoff, shared)))
            popen.stdin.close()  # the worker reads to here, then owns its socket
        except OSError:  # it died at once: the parent sees EOF on the channel
            pass
        finally:
            theirs.close()
        return SpawnedProcess(popen), Channel(mine)


LAUNCHER = SpawnLauncher()
