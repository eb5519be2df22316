"""``Executor.map`` without a Future per call: a chunk of calls shares one lock.

A standard ``Future`` costs a ``threading.Condition`` to make and a notify to settle:
about as much as running a no-op call on qlab's engine. ``map`` hands its results
back in order from its own iterator, so nobody else holds its calls' Futures: it
puts a :class:`Cell` per call in the pool's futures table instead. A cell answers
the few Future methods that :mod:`qlab.futures` calls (``running``, ``cancelled``,
``set_running_or_notify_cancel``, ``set_result``, ``set_exception``, ``cancel``,
``done``), and keeps its state in its :class:`Chunk`'s columns, under the chunk's one
lock. The consumer waits on the chunk's condition only for the call at the head of
its window, and is woken only by that call.

Example:
    >>> chunk = Chunk(3)
    >>> a, b, c = chunk.cells()
    >>> b.set_running_or_notify_cancel(), b.set_result(42), c.cancel(), c.cancel()
    (True, None, True, True)
    >>> chunk.result(1, None), a.done(), c.set_running_or_notify_cancel()
    (42, False, False)
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError, InvalidStateError
from typing import Any

__all__ = ["Cell", "Chunk"]

PENDING, RUNNING, OK, ERROR, CANCELLED = range(5)


class Chunk:
    """The state of ``n`` calls in columns, and the one lock that guards them."""

    __slots__ = ("cond", "state", "values", "waiting")

    def __init__(self, n: int) -> None:
        self.cond = threading.Condition()
        self.state = bytearray(n)  # PENDING...
        self.values: list[Any] = [None] * n  # a result, or an exception
        self.waiting = -1  # the call the consumer waits for

    def cells(self) -> list[Cell]:
        return [Cell(self, i) for i in range(len(self.state))]

    def _settle(self, i: int, state: int, value: Any) -> None:
        with self.cond:
            if self.state[i] >= OK:
                raise InvalidStateError(f"call {i} of the chunk is already settled")
            self.values[i] = value
            self.state[i] = state
            if self.waiting == i:
                self.cond.notify()

    def result(self, i: int, end: float | None) -> Any:
        """Call ``i``'s result (raise its error), waiting until ``end`` (a
        ``time.monotonic`` reading; TimeoutError after it). The chunk lets go of it."""
        if self.state[i] < OK:  # settled cells never change: only a wait takes the lock
            with self.cond:
                while self.state[i] < OK:
                    left = None if end is None else end - time.monotonic()
                    if left is not None and left <= 0:
                        self.waiting = -1
                        raise TimeoutError()
                    self.waiting = i
                    self.cond.wait(left)
                self.waiting = -1
        state, value = self.state[i], self.values[i]
        self.values[i] = None
        if state == OK:
            return value
        if state == CANCELLED:
            raise CancelledError()
        try:
            raise value
        finally:
            value = None  # no cycle through the traceback's frame


class Cell:
    """One call of a chunk, standing in for its Future in the pool's table."""

    __slots__ = ("chunk", "i")

    def __init__(self, chunk: Chunk, i: int) -> None:
        self.chunk, self.i = chunk, i

    def running(self) -> bool:
        return self.chunk.state[self.i] == RUNNING

    def cancelled(self) -> bool:
        return self.chunk.state[self.i] == CANCELLED

    def done(self) -> bool:
        return self.chunk.state[self.i] >= OK

    def set_running_or_notify_cancel(self) -> bool:
        chunk = self.chunk
        with chunk.cond:
            if chunk.state[self.i] == CANCELLED:
                return False
            chunk.state[self.i] = RUNNING
            return True

    def cancel(self) -> bool:
        """Cancel the call if it has not started; True if it is cancelled."""
        chunk, i = self.chunk, self.i
        with chunk.cond:
            if chunk.state[i] == PENDING:
                chunk.state[i] = CANCELLED
                if chunk.waiting == i:
                    chunk.cond.notify()
            return chunk.state[i] == CANCELLED

    def set_result(self, value: Any) -> None:
        self.chunk._settle(self.i, OK, value)

    def set_exception(self, exc: BaseException) -> None:
        self.chunk._settle(self.i, ERROR, exc)
