"""``qlab.run``: a fresh pool over an iterable of payloads, returned as a traced Run.

It feeds the payloads with backpressure, waits for every job, and joins the pool.
Ctrl-C, SIGTERM or ``stop=`` (see :mod:`qlab.signals`) cancel the pending jobs, give
running attempts the pool's ``grace`` and still return the Run. With ``arrivals=``
(:mod:`qlab.arrivals`) the feeder is open-loop: it releases each payload at its
scheduled time, and that time is the job's ``submitted_s``.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from qlab import hooks
from qlab.arrivals import Arrivals, check_arrivals
from qlab.engine import _POLL_S, Pool
from qlab.signals import Interrupts, noting_signals, why

__all__ = ["run"]


def run(
    handler: Callable[[Any], Any],
    payloads: Iterable[Any],
    workers: int = 4,
    *,
    stop: threading.Event | None = None,
    arrivals: Any = None,
    **options: Any,
) -> Any:
    """Run ``handler`` over ``payloads`` on a fresh pool and return the traced Run.

    Takes the options of :class:`qlab.Pool`. Payloads are fed with backpressure, so a
    generator of a million payloads runs in bounded memory (only the trace grows).
    Ctrl-C or SIGTERM cancels the pending jobs, gives running attempts ``grace``
    seconds (a second Ctrl-C stops them at once) and still returns the Run, in which
    every job has one final status; ``run.meta["interrupted"]`` says why. Setting
    ``stop`` (a ``threading.Event``, from another thread) does the same as Ctrl-C.

    ``arrivals=qlab.Poisson(rate=500)`` (or ``qlab.Periodic(rate=500)``) releases
    payload k at the schedule's k-th time, whether or not the pool keeps up; each
    job's ``submitted_s`` is that intended time, so latency has no coordinated
    omission. The Poisson schedule is drawn from the run's ``seed`` unless it has its own.

    If iterating ``payloads`` raises, the pool is stopped as by Ctrl-C and the error
    propagates; the Run of what did run is attached to it as ``exc.qlab_run``.

    Returns:
        A :class:`qlab.Run`.

    Example:
        >>> import qlab
        >>> run = qlab.run(qlab.workloads.seed(), range(100), workers=4)
        >>> run.summary()[["ok", "failed"]].tolist()
        [10, 90]
    """
    try:
        if isinstance(payloads, str | bytes) or not isinstance(payloads, Iterable):
            raise TypeError(f"payloads must be an iterable of payloads, got {payloads!r}")
        arrivals = check_arrivals(arrivals)
        interrupts = Interrupts(stop=stop)
    except BaseException as exc:  # no pool: its hooks hear it here (a server stops)
        hooks.abort(options.get("hooks", ()), exc)
        raise
    total = len(payloads) if hasattr(payloads, "__len__") else None
    # In the main thread, Ctrl-C and SIGTERM are only noted, and raised by the engine
    # where it waits, so an interrupt never lands halfway through an update of the
    # queue's books (nor between the pool's start and this try).
    with noting_signals() as noted:
        interrupts.noted = noted
        pool = Pool(handler, workers, _futures=False, _interrupts=interrupts, _total=total,
                    **options)  # fmt: skip
        if arrivals is not None:
            pool._meta["arrivals"] = repr(arrivals)
        try:
            if arrivals is None:
                _feed(pool, payloads)
            else:
                _feed_open(pool, payloads, arrivals)
            pool.shutdown(wait=True)  # every job finished, every worker joined
        except KeyboardInterrupt as exc:
            if total is not None:
                pool._queue.cancel_unsubmitted(total)
            pool._interrupted(why(exc))
        except BaseException as exc:
            pool._interrupted("error")
            if isinstance(exc, Exception):
                exc.qlab_run = pool.trace()  # type: ignore[attr-defined]
                exc.add_note("the Run of the jobs that ran is attached as exc.qlab_run")
            raise
        # the Run is built while signals are still only noted: a Ctrl-C now cannot
        # escape from here and lose it (it is reported in the Run instead)
        result = pool.trace()
        late = interrupts.unseen()
        if late and "interrupted" not in result.meta:
            # a Ctrl-C after the last job, while the pool was being joined: still say so
            result.meta["interrupted"] = late
    return result


def _feed(pool: Pool, payloads: Iterable[Any]) -> None:
    """Submit every payload (no futures), in chunks that fit the free capacity.

    A list, tuple or range is sliced; any other iterable is read in chunks that
    grow while it is quick and shrink for a slow generator.
    """
    q = pool._queue
    sliceable = isinstance(payloads, list | tuple | range)
    it = iter(payloads)
    pos = 0
    chunk_cap = 64
    while True:
        pool._interrupts.check()  # a stop set before (or while) the pool started: no job
        while not q.wait_space(q.refill, _POLL_S):
            pool._idle_turn()
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
                    q.put(chunk, pool._clock.now())
                raise
            if time.perf_counter() - t < 0.002:
                chunk_cap = min(chunk_cap * 2, 4096)
            else:
                chunk_cap = max(chunk_cap // 2, 1)
        if not chunk:
            return
        q.put(chunk, pool._clock.now())
        pool._idle_turn()


def _feed_open(pool: Pool, payloads: Iterable[Any], arrivals: Arrivals) -> None:
    """Open loop: submit payload k at ``start + offset_k`` on the run's clock, with that
    intended time as its submission time, whether or not the pool keeps up. Payloads
    that are due already (the feeder fell behind, or the queue was full) go at once,
    each still stamped with its own intended time."""
    q, clock = pool._queue, pool._clock
    offsets = arrivals.offsets(pool._seed)
    start = clock.now()
    for payload in payloads:
        due = start + next(offsets)
        while (left := due - clock.now()) > 0:
            if clock.autojump:  # a fake clock: let the jobs so far finish, then jump
                if q.wait_idle(_POLL_S):
                    clock.advance(due - clock.now())
            else:
                time.sleep(min(left, _POLL_S))
            pool._idle_turn()
        while q.put([payload], due, timeout=_POLL_S) is None:
            pool._idle_turn()
        if pool._inline:
            pool._idle_turn()
