"""How many jobs a worker takes at once: batches sized by measured speed.

A pool's jobs run alike (one handler), and each worker's smoothed seconds per
attempt (``slot.ema``) sizes its next batch. An Executor runs many functions: each
submit carries its function's *kind* (:func:`qlab.executor.dispatch.fn_kind`), a
queued batch holds one kind, and :class:`Speeds` keeps the smoothed seconds per
attempt of each kind, so that a batch of a function is sized by that function's
speed, and a function never measured goes one call at a time (no call waits in a
batch behind one that may take long).

Example:
    >>> from qlab.core.context import WorkerState
    >>> from qlab.core.protocol import Slot
    >>> slot, speeds = Slot(0, WorkerState(0, 0, None, None)), Speeds()
    >>> take = speeds.sizer(slot, workers=2, target_s=0.02, cap=None)
    >>> take(100, "f")  # f never measured: one call
    1
    >>> speeds.note(slot, "f", 0.001)
    >>> take(100, "f"), take(100, None)  # 20 ms of f; the worker's own: unknown
    (20, 1)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qlab.core.batches import sizer
from qlab.core.protocol import Slot

__all__ = ["Speeds"]

_KINDS = 1024  # kinds whose speed is kept


class Speeds:
    """The smoothed seconds per attempt of each kind of job (shared by the drivers).

    Args:
        prior: whether a kind never measured takes the worker's own speed (a backend
            whose lanes run a batch's jobs at once), instead of one job.
    """

    def __init__(self, prior: bool = False) -> None:
        self.kinds: dict[Any, float] = {}
        self.prior = prior

    def known(self, kind: Any) -> bool:
        """Is the speed of ``kind`` known (None: the worker's, always)?"""
        return kind is None or kind in self.kinds

    def note(self, slot: Slot, kind: Any, per: float) -> None:
        """Smooth ``per`` seconds per attempt into the worker's speed (jobs of no
        kind) or the kind's."""
        if kind is None:
            slot.ema = 0.7 * slot.ema + 0.3 * per if slot.ema else per
            return
        kinds = self.kinds
        old = kinds.get(kind)
        if old is None and len(kinds) >= _KINDS:  # a new function per call: no growth
            kinds.clear()
        kinds[kind] = per if old is None else 0.7 * old + 0.3 * per

    def sizer(
        self, slot: Slot, workers: int, target_s: float, cap: int | None
    ) -> Callable[..., int]:
        """``take(ready, kind)``: how many of ``ready`` jobs of ``kind`` the slot takes
        (see :func:`qlab.core.batches.sizer`)."""
        kinds = self.kinds
        prior = slot.ema if self.prior else 0.0

        def take(ready: int, kind: Any = None) -> int:
            # no more jobs ready than workers: one each, so none waits in a batch behind
            # another while a worker idles (an Executor call that waits for another
            # call's result would wait for the whole batch: test_wait_first_exception)
            if ready <= workers:
                return 1
            ema = slot.ema if kind is None else kinds.get(kind, prior)
            return sizer(None, target_s, ema, workers, cap)(ready)

        return take
