"""The coordinator: one thread that keeps time for a pool.

It moves retries whose backoff is over to the ready queue, watches running
attempts for their deadlines, and ticks the progress hooks a few times a second.
It sleeps until the next of these is due (bounded, so a missed wake-up costs
little), and under a fake clock it jumps the clock ahead when every worker waits
for a backoff timer (as trio's ``MockClock`` autojumps).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from qlab.core.clock import Clock
from qlab.queues.memory import MemoryQueue, Phase

__all__ = ["Coordinator", "progress_counts"]

_MAX_SLEEP_S = 0.5  # the longest sleep
PROGRESS_EVERY_S = 0.25  # how often the progress hooks hear from the engine


class Coordinator:
    """Runs the pool's timers in a thread named ``qlab-coordinator``.

    Args:
        queue: the pool's queue (its ``tick`` condition wakes this thread).
        clock: the run's clock.
        timeout: attempts' time limit, or None (then no deadline is watched).
        overdue: ``overdue(now)`` deals with attempts past their deadline.
        progress: called every ``PROGRESS_EVERY_S``, or None.
    """

    def __init__(
        self,
        queue: MemoryQueue,
        clock: Clock,
        timeout: float | None,
        overdue: Callable[[float], None],
        progress: Callable[[], None] | None,
    ) -> None:
        self.queue = queue
        self.clock = clock
        self.poll = None if timeout is None else min(0.05, timeout / 4)
        self.overdue = overdue
        self.progress = progress
        self.thread = threading.Thread(target=self._loop, name="qlab-coordinator", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def join(self) -> None:
        if self.thread is not threading.current_thread() and self.thread.ident is not None:
            self.thread.join()

    def _loop(self) -> None:
        q, clock = self.queue, self.clock
        progress = self.progress
        tick = PROGRESS_EVERY_S if progress else None
        next_tick = clock.now() + (tick or 0)
        while q.phase < Phase.JOINED:
            now = clock.now()
            next_due = q.promote(now)
            if self.poll is not None:
                self.overdue(now)
            if progress is not None and tick and now >= next_tick:
                next_tick = now + tick
                progress()
                continue
            waits = [_MAX_SLEEP_S, self.poll, tick and next_tick - now]
            if next_due is not None:
                waits.append(next_due - now)
            wait = max(min(w for w in waits if w is not None), 0.0)
            if clock.autojump:
                if next_due is not None and q.all_wait_for_timers():
                    clock.advance(next_due - now)  # everyone waits for a timer: jump
                    continue
                wait = min(wait, 0.001)
            with q.lock:
                if q.phase < Phase.JOINED:
                    q.tick.wait(wait)


def progress_counts(q: Any, parts: Any) -> dict[str, Any]:
    """What a progress tick tells the hooks: the queue's counts, the seconds since the
    trace's origin, the busy workers and the queue depth (gauges read without the lock,
    from a queue that has them) and the total when it is known."""
    counts = q.counts()
    counts["elapsed_s"] = parts.clock.now() - parts.trace.origin
    if hasattr(q, "busy") and hasattr(q, "ready"):
        counts["busy_workers"] = min(q.busy, parts.workers)
        counts["queue_depth"] = len(q.ready) + len(getattr(q, "delayed", ()))
    total = parts.meta.get("jobs_total")
    if total is not None:
        counts["total"] = total
    return counts
