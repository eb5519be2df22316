"""Test helpers: drive a qlab program in a subprocess and wait on its output."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import qlab


class Child:
    """A subprocess whose stderr lines can be awaited (no sleeping, with a timeout)."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        # read raw chunks: a progress bar redraws itself with "\r", not "\n"
        fd = self.proc.stderr.fileno()
        while chunk := os.read(fd, 4096):
            text = chunk.decode(errors="replace")
            self.stderr.append(text)
            self.lines.put(text)

    def wait_for(self, pattern: str, timeout: float = 30) -> str:
        """Block until stderr matches the regular expression ``pattern``."""
        seen = ""
        while True:
            try:
                seen += self.lines.get(timeout=timeout)
            except queue.Empty:
                self.proc.kill()
                stderr = "".join(self.stderr)
                raise AssertionError(f"no {pattern!r} in stderr: {stderr}") from None
            if re.search(pattern, seen):
                return seen

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        """Wait for exit; return (exit code, stdout)."""
        try:
            out = self.proc.stdout.read().decode()
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self._reader.join(5)
        return code, out


class SocketGate:
    """A picklable handler that blocks until released, on any backend.

    Each call connects to a socket served by the test (so the test knows, without
    sleeping, that a job has started) and waits for one byte, which ``release()``
    sends to every caller, present and future.
    """

    def __init__(self) -> None:
        import socket

        self._server = socket.create_server(("127.0.0.1", 0))
        self.address = self._server.getsockname()
        self.started = threading.Event()
        self._released = threading.Event()
        self._conns: list = []
        self._closing = False
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def __getstate__(self) -> dict:
        return {"address": self.address}

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            if self._closing:
                conn.close()
                return
            with self._lock:
                self._conns.append(conn)
                if self._released.is_set():
                    conn.sendall(b"x")
                self._arrived.notify_all()
            self.started.set()

    def wait_for(self, n: int, timeout: float = 30) -> bool:
        """Block until ``n`` callers have arrived at the gate; False after ``timeout``."""
        with self._lock:
            return self._arrived.wait_for(lambda: len(self._conns) >= n, timeout)

    def release(self) -> None:
        with self._lock:
            self._released.set()
            for conn in self._conns:
                with contextlib.suppress(OSError):  # that caller is gone (a killed worker)
                    conn.sendall(b"x")

    def close(self) -> None:
        import socket

        self.release()
        self._closing = True
        socket.create_connection(self.address, timeout=5).close()  # wakes accept()
        self._server.close()
        self._thread.join(5)
        for conn in self._conns:
            conn.close()

    def __call__(self, payload):
        import socket

        with socket.create_connection(self.address, timeout=30) as s:
            assert s.recv(1) == b"x", "gate closed without release"
        return payload


def png_count(out) -> int:
    """How many PNG images an ipywidgets Output holds."""
    return sum("image/png" in o.get("data", {}) for o in out.outputs)


def html_of(out) -> str:
    """The HTML that an ipywidgets Output holds, joined."""
    return "".join(o.get("data", {}).get("text/html", "") for o in out.outputs)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (nothing listens on it once closed)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OkAfter(qlab.Hook):
    """A hook that sets ``seen`` once a progress tick shows ``n`` jobs ok (a test waits
    on it to act mid-run, with no sleep)."""

    def __init__(self, n: int) -> None:
        self.n, self.seen = n, threading.Event()

    def on_progress(self, counts: dict) -> None:
        if counts["ok"] >= self.n:
            self.seen.set()


def wait_until(cond: Callable[[], bool], timeout: float = 20.0, what: str = "it") -> None:
    """Poll ``cond`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        threading.Event().wait(0.01)


def wait_redis(proc: subprocess.Popen, client: Any, timeout: float = 10.0) -> None:
    """Wait until the redis-server ``proc`` answers ``client``'s PING; fail if it exits
    or does not answer within ``timeout`` seconds."""
    import redis

    def up() -> bool:
        assert proc.poll() is None, "redis-server exited"
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    wait_until(up, timeout, "redis-server")
