"""A spawned worker's first steps (see :mod:`qlab.backends.process.spawn`).

The interpreter starts as :mod:`qlab.backends.process.boot` says, then :func:`main` reads
from stdin what the parent sent (its worker number, its socket, its shared memory),
and runs the same worker loop as a forked worker,
:func:`qlab.backends.process.worker.child_main`.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import sys

__all__ = ["main"]


def main() -> None:
    """Adopt the socket and the shared memory the parent passed, then run the worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    from qlab.backends.process.forkserver_main import LazyPackage

    sys.modules["qlab"].__class__ = LazyPackage
    from qlab.backends.process import worker

    number, handoff, shared = pickle.load(sys.stdin.buffer)
    null = os.open(os.devnull, os.O_RDONLY)  # stdin as a forked worker has it
    os.dup2(null, 0)
    os.close(null)
    if sys.platform == "win32":  # socket.share()'s blob
        sock = socket.fromshare(handoff)
    else:
        sock = socket.socket(fileno=handoff)
    worker.child_main(worker.Channel(sock), shared, number)
