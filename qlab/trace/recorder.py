"""Columnar recording of attempts.

The engine records each batch of attempts into a :class:`Recorder` (one per worker):
compact ``array`` columns extended once per batch, with the rare columns (errors,
backoff delays) kept sparse. Nothing is a Python object per attempt, so a run of a
million jobs costs tens of bytes per attempt. :class:`Trace` gathers the recorders and
the per-job columns; :mod:`qlab.trace.frames` builds ``run.attempts`` and ``run.jobs``.
A durable queue's history is a Trace too (:meth:`Recorder.of_columns`), so one
builder makes every Run's frames.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from qlab.core.batches import Batch
    from qlab.core.protocol import BatchResult


_SHORT = 64  # runs shorter than this are written out value by value
DTYPES = {  # a recorder's columns as numpy dtypes
    "job_id": "int64",
    "attempt": "uint16",
    "t0": "float64",
    "t1": "float64",
    "cpu": "float64",
    "out": "uint8",
}


def _extend(dest: array, values: Any, n: int) -> None:
    """Append the first ``n`` of ``values`` (a list, or an array("d") from a worker
    process) to ``dest``."""
    part = values if len(values) == n else values[:n]
    if isinstance(part, list):
        dest.fromlist(part)
    else:
        dest.extend(part)


def _put(chunks: list, chunk: Any) -> None:
    """Append a chunk to a chunked column: an array joins a trailing array."""
    if isinstance(chunk, array) and chunks and isinstance(chunks[-1], array):
        chunks[-1].extend(chunk)
    else:
        chunks.append(chunk)


def _copy_chunks(chunks: list) -> list:
    """A copy of a chunked column that later appends do not change."""
    if chunks and isinstance(chunks[-1], array):
        return [*chunks[:-1], chunks[-1][:]]
    return list(chunks)


class Recorder:
    """The attempts one worker ran, in columns. Mutated only under the engine's lock.

    ``t0``, ``t1`` and ``out`` are compact arrays. ``job_id``, ``attempt`` and ``cpu``
    are chunked: a batch of fresh jobs adds its ids as one ``range``, its attempt
    number as one ``(attempt, n)`` and, when its CPU time was measured once for the
    batch, ``(share, n)`` (a row's CPU time is its wall time times the share); other
    batches add arrays. So a quick batch of thousands of jobs costs a few objects.
    """

    __slots__ = (
        "attempt",
        "backoff",
        "cpu",
        "errors",
        "job_id",
        "lanes",
        "out",
        "results",
        "t0",
        "t1",
        "throttle",
        "worker",
    )

    def __init__(self, worker: int, keep_results: bool = False) -> None:
        self.worker = worker
        self.job_id: list[range | array] = []
        self.attempt: list[tuple[int, int] | array] = []
        self.t0 = array("d")
        self.t1 = array("d")
        self.cpu: list[tuple[float, int] | array] = []
        self.out = bytearray()
        self.errors: dict[int, tuple[str | None, str | None]] = {}
        self.backoff: dict[int, float] = {}
        self.throttle: dict[int, float] = {}  # row -> seconds waited for a rate-limit token
        self.results: list[Any] | None = [] if keep_results else None
        # each row's worker, when a backend runs many workers as lanes behind this
        # recorder's driver (``BatchResult.lanes``); None: every row is ``worker``'s
        self.lanes: array | None = None

    def __len__(self) -> int:
        return len(self.out)

    def add(
        self,
        items: Batch,
        res: BatchResult,
        n: int,
        out: bytes | bytearray,
        errors: dict[int, tuple[str, str]] | None = None,
        backoff: dict[int, float] | None = None,
        results: list[Any] | None = None,
    ) -> None:
        """Append the first ``n`` rows of a batch (``items`` and its ``res``), with
        their outcome codes; ``errors``/``backoff`` map a row to its value."""
        base = len(self.out)
        ids = items.ids if len(items) == n else items.ids[:n]
        if isinstance(ids, range) and n >= _SHORT:
            self.job_id.append(ids)
        else:
            _put(self.job_id, array("q", ids))
        att = items.attempts
        if isinstance(att, int):
            _put(self.attempt, (att, n) if n >= _SHORT else array("H", [att]) * n)
        else:
            _put(self.attempt, array("H", att[:n]))
        _extend(self.t0, res.t0, n)
        _extend(self.t1, res.t1, n)
        if res.cpu_share is not None and n >= _SHORT:
            self.cpu.append((res.cpu_share, n))
        else:
            cpu = res.cpu if res.cpu_share is None else res.cpu_list()
            _put(self.cpu, array("d", cpu[:n]))
        self.out.extend(out)
        if errors:
            for row, err in errors.items():
                self.errors[base + row] = err
        if backoff:
            for row, delay in backoff.items():
                self.backoff[base + row] = delay
        if res.throttle is not None:
            for row, waited in enumerate(res.throttle[:n]):
                if waited:
                    self.throttle[base + row] = waited
        if self.results is not None:
            self.results.extend(results if results is not None else [None] * n)
        if res.lanes is not None or self.lanes is not None:
            self._add_lanes(res.lanes, base, n)

    def _add_lanes(self, lanes: list[int] | None, base: int, n: int) -> None:
        """Note each row's lane (rows without one are the driver's own)."""
        if self.lanes is None:
            self.lanes = array("i", [self.worker]) * base
        part = [] if lanes is None else list(lanes[:n])
        self.lanes.fromlist(part + [self.worker] * (n - len(part)))

    @classmethod
    def of_columns(
        cls,
        cols: dict[str, Any],
        lanes: Any,
        errors: dict[int, tuple[str | None, str | None]],
        backoff: dict[int, float],
        throttle: dict[int, float],
    ) -> Recorder:
        """A recorder of columns made elsewhere (a durable queue's attempt rows): ``cols``
        maps each name of ``DTYPES`` to a numpy array of that dtype, ``lanes`` is each
        row's worker (int32), the dicts map a row to its sparse value."""
        rec = cls(0)
        rec.job_id, rec.attempt, rec.cpu = [cols["job_id"]], [cols["attempt"]], [cols["cpu"]]
        rec.t0, rec.t1, rec.out, rec.lanes = cols["t0"], cols["t1"], cols["out"], lanes
        rec.errors, rec.backoff, rec.throttle = errors, backoff, throttle
        return rec

    def frozen(self) -> Recorder:
        """A copy that later appends do not change (for snapshots)."""
        rec = Recorder(self.worker, self.results is not None)
        n = len(self.out)
        rec.job_id, rec.attempt = _copy_chunks(self.job_id), _copy_chunks(self.attempt)
        rec.t0, rec.t1, rec.out = self.t0[:n], self.t1[:n], self.out[:n]
        rec.cpu = _copy_chunks(self.cpu)
        rec.errors, rec.backoff = dict(self.errors), dict(self.backoff)
        rec.throttle = dict(self.throttle)
        rec.results = None if self.results is None else self.results[:n]
        rec.lanes = None if self.lanes is None else self.lanes[:n]
        return rec

    def column(self, name: str) -> np.ndarray:
        """A column as one numpy array (a view of a compact array; chunks joined)."""
        import numpy as np

        dtype = DTYPES[name]
        col = getattr(self, name)
        if not isinstance(col, list):
            return np.frombuffer(col, dtype)
        parts = []
        row = 0
        for chunk in col:
            if isinstance(chunk, range):
                parts.append(np.arange(chunk.start, chunk.stop, dtype=dtype))
                row += len(chunk)
            elif isinstance(chunk, tuple):
                value, n = chunk
                if name == "cpu":
                    t0 = np.frombuffer(self.t0, np.float64, n, row * 8)
                    t1 = np.frombuffer(self.t1, np.float64, n, row * 8)
                    parts.append((t1 - t0) * value)
                else:
                    parts.append(np.full(n, value, dtype))
                row += n
            else:
                parts.append(np.frombuffer(chunk, dtype))
                row += len(chunk)
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.zeros(0, dtype)


class Trace:
    """Everything recorded about a run: per-job columns plus the workers' recorders."""

    def __init__(
        self,
        origin: float,
        keep_results: bool = False,
        submitted: array | None = None,
        status: bytearray | None = None,
    ) -> None:
        self.origin = origin  # the clock reading that is t = 0 s
        self.keep_results = keep_results
        # per job id (the queue's own columns while the run goes on)
        self.submitted = array("d") if submitted is None else submitted
        self.status = bytearray() if status is None else status  # qlab.core.codes ST_*
        self.recorders: list[Recorder] = []
        # each job's id, where it is not its position (a queue history's subset of jobs)
        self.ids: np.ndarray | None = None
        # categorical columns per attempt row (recorder order) that only some traces have:
        # name -> (int codes, categories); frames add them, and the jobs frame gives each
        # job its last attempt's; a name that is a column already ("host") replaces it
        self.extra: dict[str, tuple[np.ndarray, list]] = {}

    def snapshot(self) -> Trace:
        """A frozen copy (take it under the engine's lock)."""
        tr = Trace(self.origin, self.keep_results)
        tr.submitted, tr.status = self.submitted[:], self.status[:]
        tr.recorders = [r.frozen() for r in self.recorders]
        tr.ids, tr.extra = self.ids, dict(self.extra)
        return tr
