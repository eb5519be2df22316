"""Test helpers: drive a qlab program in a subprocess and wait on its output."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading


class Child:
    """A subprocess whose stderr lines can be awaited (no sleeping, with a timeout)."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line)
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 30) -> str:
        """Block until a stderr line contains ``text``."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                self.proc.kill()
                stderr = "".join(self.stderr)
                raise AssertionError(f"no line with {text!r}; stderr: {stderr}") from None
            if text in line:
                return line

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        """Wait for exit; return (exit code, stdout)."""
        try:
            out = self.proc.stdout.read()
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self._reader.join(5)
        return code, out
