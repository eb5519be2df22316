"""Jobs in columns: the batches handed to workers, and the queue of ready jobs.

A batch of fresh jobs keeps its ids as a ``range`` and its attempt number as one int,
so that feeding, queueing and taking thousands of quick jobs costs a few objects and
C-level slices, not a tuple per job. Retries are batches with explicit lists.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["EMPTY", "Batch", "ReadyQueue"]


class Batch:
    """Jobs handed to a worker at once, in columns: job ids, attempt numbers, payloads.

    Fresh jobs fed from an iterable keep their ids as a ``range`` and their attempt as
    one int, so that a batch of thousands costs a few objects, not a tuple per job.
    Indexing gives an item ``(job_id, attempt, payload)``; slicing and ``+`` give
    batches.

    Example:
        >>> b = Batch(range(10, 13), 1, ["a", "b", "c"])
        >>> b[1], list(b[1:] + Batch.of([(4, 2, "z")]))
        ((11, 1, 'b'), [(11, 1, 'b'), (12, 1, 'c'), (4, 2, 'z')])
    """

    __slots__ = ("attempts", "ids", "kind", "payloads")

    def __init__(
        self, ids: range | list[int], attempts: int | list[int], payloads: Any, kind: Any = None
    ) -> None:
        self.ids = ids
        self.attempts = attempts  # one int for every job, or one per job
        self.payloads = payloads  # a list, tuple or range
        # what its jobs run, when the submitter says (an Executor's function): batches
        # are sized by its speed and hold one kind; None: unknown or mixed (retries)
        self.kind = kind

    @classmethod
    def of(cls, items: Any) -> Batch:
        """A batch of ``(job_id, attempt, payload)`` items."""
        items = list(items)
        return cls([it[0] for it in items], [it[1] for it in items], [it[2] for it in items])

    def __len__(self) -> int:
        return len(self.ids)

    def attempt(self, i: int) -> int:
        a = self.attempts
        return a if isinstance(a, int) else a[i]

    def __getitem__(self, k: int | slice) -> Any:
        if isinstance(k, slice):
            a = self.attempts
            a = a if isinstance(a, int) else a[k]
            return Batch(self.ids[k], a, self.payloads[k], self.kind)
        return (self.ids[k], self.attempt(k), self.payloads[k])

    def __iter__(self) -> Any:
        a = self.attempts
        attempts = itertools.repeat(a, len(self.ids)) if isinstance(a, int) else a
        return zip(self.ids, attempts, self.payloads, strict=True)

    def __add__(self, other: Batch) -> Batch:
        return Batch.join([self, other])

    @classmethod
    def join(cls, parts: list[Batch]) -> Batch:
        """The jobs of ``parts`` in order, as one batch built in one pass. Adjacent
        ranges with one attempt number stay a range."""
        parts = [p for p in parts if len(p)]
        if len(parts) <= 1:
            return parts[0] if parts else EMPTY
        chain = itertools.chain.from_iterable
        payloads = list(chain(p.payloads for p in parts))
        att, kind = parts[0].attempts, parts[0].kind
        kind = kind if all(p.kind == kind for p in parts) else None
        if (
            isinstance(att, int)
            and all(isinstance(p.ids, range) and p.attempts == att for p in parts)
            and all(a.ids.stop == b.ids.start for a, b in itertools.pairwise(parts))  # type: ignore[union-attr]
        ):
            return cls(range(parts[0].ids.start, parts[-1].ids.stop), att, payloads, kind)  # type: ignore[union-attr]
        ids = list(chain(p.ids for p in parts))
        attempts = list(
            chain(
                itertools.repeat(p.attempts, len(p)) if isinstance(p.attempts, int) else p.attempts
                for p in parts
            )
        )
        return cls(ids, attempts, payloads, kind)

    def __repr__(self) -> str:
        return f"Batch(ids={self.ids!r}, attempts={self.attempts!r}, n={len(self)})"


EMPTY = Batch(range(0), 1, ())

MIN_BATCH_S = 0.005  # a worker's share of the ready jobs is at least this much work
MAX_BATCH = 4096


def sizer(
    fixed: int | None, target_s: float, ema: float, workers: int, cap: int | None = None
) -> Callable[[int], int]:
    """How many of ``ready`` jobs a worker takes: ``fixed`` (the pool's ``batch_size``),
    or about ``target_s`` of work at ``ema`` seconds per attempt (1 job while nothing is
    measured), capped so that each of ``workers`` gets a share of what is ready, but not
    below ``MIN_BATCH_S`` of work, so that a batch's fixed cost (~0.1-0.3 ms: take,
    settle, record) stays a small part of it. ``cap`` bounds every size (rate limits).

    Example:
        >>> take = sizer(None, 0.02, 1e-6, workers=16)  # 1 us jobs: 5,000 at least
        >>> take(10_000), take(100)  # (the queue gives at most what it has)
        (4096, 4096)
        >>> sizer(None, 0.02, 1e-3, workers=16)(10_000)  # 1 ms jobs: 20 ms of them
        20
        >>> sizer(None, 0.02, 1e-3, workers=16)(64)  # few ready: a share each
        5
    """
    if fixed:
        size = fixed if cap is None else min(fixed, cap)

        def fixed_size(ready: int, kind: Any = None) -> int:
            return size

        return fixed_size
    per = int(target_s / ema) if ema > 0 else 1
    per = min(per, MAX_BATCH if cap is None else min(cap, MAX_BATCH))
    least = int(MIN_BATCH_S / ema) if ema > 0 else 1

    def share(ready: int, kind: Any = None) -> int:  # ``kind``: the queue's head's
        return max(1, min(per, max(least, -(-ready // workers))))

    return share


class ReadyQueue:
    """Jobs ready to run, as a deque of batches; taking from the head batch moves an
    offset instead of copying what is left of it. Not thread-safe: the engine's lock
    guards it.

    Example:
        >>> q = ReadyQueue()
        >>> q.put(Batch(range(5), 1, "abcde"))
        >>> q.take(2).ids, q.take(9).ids, len(q)
        (range(0, 2), range(2, 5), 0)
    """

    def __init__(self) -> None:
        self._batches: deque[Batch] = deque()
        self._off = 0  # jobs of the head batch already taken
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def put(self, batch: Batch, front: bool = False) -> None:
        """Queue ``batch`` at the back, or at the front (jobs going back uncharged)."""
        if not len(batch):
            return
        if front:
            self._trim()
            self._batches.appendleft(batch)
        else:
            self._batches.append(batch)
        self._n += len(batch)

    def head_kind(self) -> Any:
        """The kind of the job at the front (see :class:`Batch`), or None."""
        return self._batches[0].kind if self._batches else None

    def take(self, k: int) -> Batch:
        """Up to ``k`` jobs from the front, as one batch of one kind (it stops where
        the kind of the queued jobs changes)."""
        parts: list[Batch] = []
        want = k
        kind = self.head_kind()
        while want > 0 and self._batches:
            head, off = self._batches[0], self._off
            if head.kind != kind:
                break
            if len(head) - off > want:
                part = head[off : off + want]
                self._off += want
            else:
                part = head[off:] if off else head
                self._batches.popleft()
                self._off = 0
            parts.append(part)
            want -= len(part)
        out = Batch.join(parts)
        self._n -= len(out)
        return out

    def drain(self) -> list[tuple]:
        """Every queued job as ``(job_id, attempt, payload)``; the queue is left empty."""
        self._trim()
        items = [it for batch in self._batches for it in batch]
        self._batches.clear()
        self._n = 0
        return items

    def _trim(self) -> None:
        if self._off:
            self._batches[0] = self._batches[0][self._off :]
            self._off = 0
