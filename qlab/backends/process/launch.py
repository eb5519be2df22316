"""The seam between the process backend and how its worker processes start.

A :class:`Launcher` starts one worker process at a time and hands back a handle on
it and the channel to it; the backend never asks which launcher it has. Two exist:

- ``"forkserver"`` (:mod:`qlab.backends.process.forkserver`): a small server forks each
  worker in a few ms. Linux, and wherever :func:`qlab.backends.process.forkserver.unavailable`
  finds what it needs.
- ``"spawn"`` (:mod:`qlab.backends.process.spawn`): each worker is a fresh interpreter.
  Everywhere (macOS, Windows); slower to start a worker.

``qlab.backends.Process(start=...)`` picks one; ``"auto"`` (the default, and what
``backend="process"`` uses) is the fork server where it can run, else spawn.

Example:
    >>> choose("spawn").name
    'spawn'
    >>> choose("auto").name in ("forkserver", "spawn")
    True
"""

from __future__ import annotations

from typing import Protocol

from qlab.backends.process import forkserver, spawn
from qlab.backends.process.worker import Channel

__all__ = ["FORKSERVER", "START", "ForkServerLauncher", "Launcher", "WorkerHandle", "choose"]

START = ("auto", "forkserver", "spawn")


class WorkerHandle(Protocol):
    """The parent's view of one worker process (what :class:`multiprocessing.Process`
    offers, where a launcher can keep it)."""

    @property
    def pid(self) -> int | None: ...

    @property
    def exitcode(self) -> int | None: ...

    def is_alive(self) -> bool: ...

    def join(self, timeout: float | None = None) -> None: ...

    def kill(self) -> None: ...

    def close(self) -> None: ...


class Launcher(Protocol):
    """Starts worker processes that run :func:`qlab.backends.process.worker.child_main`.

    A pool calls ``hold()`` when it starts and ``release()`` when it closes (a
    ``warm_workers()`` block holds the fork server too), ``prepare()`` before it
    starts workers, then ``start_worker()`` per worker, and does not wait for it.
    """

    name: str

    def hold(self) -> None: ...

    def release(self) -> None: ...

    def prepare(self, config: bytes | None) -> None:
        """Get ready for workers whose job spec pickles to ``config`` (None: not known
        yet; the pool pickles it meanwhile)."""

    def start_worker(self, worker: int, shared: int | str) -> tuple[WorkerHandle, Channel]:
        """Start worker number ``worker``; it maps the shared memory ``shared`` (a file
        descriptor, or the name of a Windows mapping) and talks over the channel."""
        ...


class ForkServerLauncher:
    """The fork server as a launcher (:class:`qlab.backends.process.launch.Launcher`)."""

    name = "forkserver"

    def hold(self) -> None:
        forkserver.hold()

    def release(self) -> None:
        forkserver.release()

    def prepare(self, config: bytes | None) -> None:
        """Boot the server now (``config`` None: while the parent pickles the job
        spec), then have it import the modules the pickled spec ``config`` names."""
        forkserver.preload([] if config is None else forkserver.module_hints(config))

    def start_worker(self, worker: int, shared: int | str) -> tuple[WorkerHandle, Channel]:
        if not isinstance(shared, int):
            raise TypeError("the fork server passes shared memory as a file descriptor")
        return forkserver.fork_worker(worker, shared)


FORKSERVER = ForkServerLauncher()


def choose(start: str) -> Launcher:
    """The launcher for ``start`` (one of :data:`START`).

    Raises:
        ValueError: an unknown ``start``, or ``"forkserver"`` where it cannot run.
    """
    if start not in START:
        raise ValueError(f"start must be one of {START}, got {start!r}")
    why = forkserver.unavailable() if start != "spawn" else None
    if start == "forkserver" and why is not None:
        raise ValueError(f"start='forkserver' cannot work here: {why}; use start='spawn'")
    return spawn.LAUNCHER if start == "spawn" or why is not None else FORKSERVER
