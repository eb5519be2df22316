"""Fault injection for the durable queues' tests: make a store fail on demand.

- :func:`tiny_disk`: a folder on a tmpfs of a few hundred KB (a full disk for a SQLite
  queue), grown back with :meth:`TinyDisk.grow` so that the queue can be resumed.
  Needs root (``mount``); skips the test with the reason if the mount is refused.
- :class:`RedisServer`: a real redis-server on a free loopback port (with a password if
  asked) that a test can kill (SIGKILL; with ``persist`` it comes back from its
  append-only file on :meth:`start`), restart empty, or freeze (SIGSTOP) and thaw
  (SIGCONT). Stopped by PID, never by name.
- :class:`SQLiteLock`: another connection that holds a queue file's write lock (a
  store that answers "database is locked" once its ``timeout=`` is over).

A fault is injected from inside a run by :class:`FaultAt`, a handler that triggers it
when a chosen job starts (no sleep, no timing: job ``at`` runs the fault, then returns).

Example (in a test)::

    with RedisServer(tmp_path, persist=True) as server:
        handler = FaultAt(200, server.kill)
        ...
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_redis

# -- a full disk ------------------------------------------------------------------------


class TinyDisk:
    """A tmpfs mounted at ``path`` (see :func:`tiny_disk`)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def grow(self, size: str = "64m") -> None:
        """Give the disk room again (to resume the queue it holds)."""
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)

    def fill(self) -> Path:
        """Take every free byte with a file (returned: unlink it to free them)."""
        filler = self.path / "filler"
        with contextlib.suppress(OSError), open(filler, "wb") as f:  # (full already: no file)
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        return filler

    def read_only(self) -> None:
        """Remount it read-only (every file on it must be closed first)."""
        subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)


@contextlib.contextmanager
def tiny_disk(path: Path, size: str = "600k") -> Iterator[TinyDisk]:
    """A tmpfs of ``size`` at ``path``, unmounted afterwards; skips if it cannot be made."""
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a tiny disk")
    got = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if got.returncode:
        pytest.skip(f"cannot mount a tmpfs (root needed): {got.stderr.strip()}")
    try:
        yield TinyDisk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


# -- a SQLite store that does not answer ---------------------------------------------------


class SQLiteLock:
    """Another connection holding ``path``'s write lock (BEGIN IMMEDIATE) until
    :meth:`release`: the queue's writes fail once their busy timeout is over."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.held = False

    def hold(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        self.held = True

    def release(self) -> None:
        if self.held:
            self.db.execute("ROLLBACK")
            self.held = False

    def close(self) -> None:
        self.release()
        self.db.close()


# -- a Redis server that fails ----------------------------------------------------------


class RedisServer:
    """A redis-server of its own for one test (see the module).

    Args:
        folder: where its append-only file lives.
        persist: keep an append-only file, fsynced at every write, so that a killed
            server comes back with its data; otherwise it restarts empty.
    """

    def __init__(self, folder: Path, persist: bool = False, password: str = "") -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
        self.exe, self.folder, self.persist, self.password = exe, folder, persist, password
        self.port = free_port()
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        self.frozen = False

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start it (again) on its port and wait until it answers."""
        import redis

        aof = ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else []
        if self.password:
            aof += ["--requirepass", self.password]
        self.proc = subprocess.Popen(
            [self.exe, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", *aof, "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, password=self.password or None,
                             socket_connect_timeout=1)  # fmt: skip
        try:
            wait_redis(self.proc, client)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL it and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            if self.frozen:
                self.thaw()
            self.proc.kill()
            self.proc.wait()

    def restart_empty(self) -> None:
        """Kill it and start it again with nothing in it."""
        self.kill()
        for f in self.folder.glob("appendonly*"):
            shutil.rmtree(f) if f.is_dir() else f.unlink()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: it keeps its connections and answers nothing."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        """SIGCONT."""
        if self.proc is not None and self.frozen:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.frozen = False

    def keys(self, name: str) -> list[bytes]:
        """The keys of the queue ``name``."""
        import redis

        with redis.Redis(port=self.port, password=self.password or None) as r:
            return sorted(r.keys(f"qlab:{name}:*"))

    def stop(self) -> None:
        """Stop it by its PID (SIGTERM, SIGKILL after 10 s)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        self.thaw()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- triggering a fault from inside a run --------------------------------------------------


class FaultAt:
    """A handler: job ``at`` injects ``fault`` once (in the worker that runs it), and
    every job with ``payload % fail_every == fail_at`` raises its own ValueError (the
    jobs that fail by their handler's fault). Returns the payload.

    For the thread backend (the fault runs in the test's process).
    """

    def __init__(self, at: int, fault: Callable[[], None] | None, fail_every: int = 50,
                 fail_at: int = 7) -> None:  # fmt: skip
        self.at, self.fault = at, fault
        self.fail_every, self.fail_at = fail_every, fail_at
        self.fired = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, payload: int) -> int:
        if payload == self.at and self.fault is not None:
            with self._lock:
                if not self.fired.is_set():
                    self.fault()
                    self.fired.set()
        if payload % self.fail_every == self.fail_at:
            raise ValueError(f"job {payload} fails by itself")
        return payload
