"""``qlab.run``: a fresh pool over an iterable of payloads, returned as a traced Run.

It feeds the payloads with backpressure, waits for every job, and joins the pool.
Ctrl-C, SIGTERM or ``stop=`` (see :mod:`qlab.signals`) cancel the pending jobs, give
running attempts the pool's ``grace`` and still return the Run. With ``arrivals=``
(:mod:`qlab.arrivals`) the feeder is open-loop: it releases each payload at its
scheduled time, and that time is the job's ``submitted_s``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sized
from typing import TYPE_CHECKING, Any

from qlab.engine.arrivals import check_arrivals
from qlab.engine.feed import feed, feed_open
from qlab.engine.lifecycle import drive, finished, guarded
from qlab.engine.pool import Pool
from qlab.engine.signals import Interrupts
from qlab.hooks.base import abort

if TYPE_CHECKING:
    from qlab.trace.results import Run

__all__ = ["run"]


def run(
    handler: Callable[[Any], Any],
    payloads: Iterable[Any],
    workers: int = 4,
    *,
    stop: threading.Event | None = None,
    arrivals: Any = None,
    **options: Any,
) -> Run:
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
        Interrupts(stop=stop)  # checks stop= before any pool
    except BaseException as exc:  # no pool: its hooks hear it here (a server stops)
        abort(options.get("hooks", ()), exc)
        raise
    total = len(payloads) if isinstance(payloads, Sized) else None
    with guarded(stop) as interrupts:
        pool = Pool(handler, workers, futures=False, interrupts=interrupts, total=total,
                    **options)  # fmt: skip
        if arrivals is not None:
            pool.parts.meta["arrivals"] = repr(arrivals)
            drive(pool, lambda: feed_open(pool, payloads, arrivals), total=total)
        else:
            drive(pool, lambda: feed(pool, payloads), total=total)
        # the Run is built while signals are still only noted: a Ctrl-C now cannot
        # escape from here and lose it (it is reported in the Run instead)
        return finished(pool, interrupts)
