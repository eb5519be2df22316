"""Feeding a pool from its caller's thread, with backpressure.

:func:`feed` submits an iterable of payloads as fast as the queue has room (closed
loop: ``qlab.run``); :func:`feed_open` releases payload k at its scheduled arrival time
whether or not the pool keeps up (open loop: ``qlab.run(..., arrivals=)``). Both wait
through :meth:`Pool.idle_turn <qlab.engine.pool.Pool.idle_turn>`, which runs inline
jobs and raises on Ctrl-C, SIGTERM or ``stop=``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from typing import Any

from qlab.engine.arrivals import Arrivals
from qlab.engine.pool import POLL_S, Pool

__all__ = ["feed", "feed_open"]


def feed(pool: Pool, payloads: Iterable[Any]) -> None:
    """Submit every payload (no futures), in chunks that fit the free capacity.

    A list, tuple or range is sliced; any other iterable is read in chunks that
    grow while it is quick and shrink for a slow generator.
    """
    q = pool.parts.queue
    sliceable = isinstance(payloads, list | tuple | range)
    it = iter(payloads)
    pos = 0
    chunk_cap = 64
    while True:
        pool.parts.interrupts.check()  # a stop set before (or while) the pool started: no job
        while not q.wait_space(q.refill, POLL_S):
            pool.idle_turn()
        room = q.space()
        if sliceable:
            chunk = payloads[pos : pos + room]  # type: ignore[index]
            pos += len(chunk)
        else:
            t = time.perf_counter()
            chunk = []
            try:
                chunk.extend(itertools.islice(it, min(room, chunk_cap)))
            except BaseException:
                if chunk:  # what the iterable gave before it raised still runs
                    q.put(chunk, pool.parts.clock.now())
                raise
            if time.perf_counter() - t < 0.002:
                chunk_cap = min(chunk_cap * 2, 4096)
            else:
                chunk_cap = max(chunk_cap // 2, 1)
        if not chunk:
            return
        q.put(chunk, pool.parts.clock.now())
        pool.idle_turn()


def feed_open(pool: Pool, payloads: Iterable[Any], arrivals: Arrivals) -> None:
    """Open loop: submit payload k at ``start + offset_k`` on the run's clock, with that
    intended time as its submission time, whether or not the pool keeps up. Payloads
    that are due already (the feeder fell behind, or the queue was full) go at once,
    each still stamped with its own intended time."""
    q, clock = pool.parts.queue, pool.parts.clock
    offsets = arrivals.offsets(pool.parts.seed)
    start = clock.now()
    for payload in payloads:
        due = start + next(offsets)
        while (left := due - clock.now()) > 0:
            if clock.autojump:  # a fake clock: let the jobs so far finish, then jump
                if q.wait_idle(POLL_S):
                    clock.advance(due - clock.now())
            else:
                time.sleep(min(left, POLL_S))
            pool.idle_turn()
        while q.put([payload], due, timeout=POLL_S) is None:
            pool.idle_turn()
        if pool.inline:
            pool.idle_turn()
