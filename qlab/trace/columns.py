"""A trace's columns joined: the arrays that ``run.attempts``, ``run.jobs`` and
``run.summary()`` hold or reduce.

:class:`Columns` joins the recorders' columns once, with the permutation that puts the
rows in (job_id, attempt) order, and derives the per-job arrays (:class:`PerJob`) on
first use. Everything is a numpy pass: nothing is a Python object per row, except the
sparse columns (errors, backoff delays), which cost per row that has one.
:mod:`qlab.trace.frames` wraps these arrays in DataFrames; :mod:`qlab.trace.summary`
reduces them.

Example:
    >>> from array import array
    >>> from qlab.trace.recorder import Trace
    >>> tr = Trace(0.0, submitted=array("d", [0.0, 0.0]), status=bytearray(2))
    >>> c = Columns(tr)  # no attempt recorded: both jobs pending
    >>> c.per_job({}).code.tolist(), len(c.order)
    ([3, 3], 0)
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from qlab.core.codes import OK, ST_OPEN, STATUS_INDEX
from qlab.trace.recorder import DTYPES

if TYPE_CHECKING:
    import numpy as np

    from qlab.trace.recorder import Recorder, Trace

__all__ = ["Columns", "PerJob"]


def _worker(rec: Recorder) -> Any:
    """A recorder's ``worker`` column: its rows' lanes, or its own worker number."""
    import numpy as np

    if rec.lanes is not None:
        return np.frombuffer(rec.lanes, np.int32)
    return np.full(len(rec), rec.worker, np.int16)


def _covers(dest: Any, m: int) -> bool:
    """True if ``dest`` (m values in [0, m)) hits every position: a permutation."""
    import numpy as np

    seen = np.zeros(m, bool)
    seen[dest] = True
    return bool(seen.all())


class Columns:
    """The recorders' columns joined. Rows are in recorder order; ``order`` gives
    sorted position -> row and ``rank`` row -> sorted position; ``counts`` is each
    job's attempts. Sorted columns are made once, on first use (:meth:`sorted`)."""

    # numpy arrays whose dtypes are chosen at run time (release() drops ``out``)
    counts: Any
    out: Any

    def __init__(self, trace: Trace) -> None:
        import numpy as np

        recs = [r for r in trace.recorders if len(r)]
        self.origin, self.keep_results = trace.origin, trace.keep_results
        self.n = n = len(trace.submitted)
        self.submitted = np.frombuffer(trace.submitted, np.float64) - trace.origin
        self.status = np.frombuffer(trace.status, np.uint8).copy()
        self.ids, self.extra = trace.ids, trace.extra
        self._sorted: dict[str, Any] = {}
        self._per_job: PerJob | None = None
        self._hosts: tuple[Any, list] | None = None
        self._raw = {name: self._joined(recs, name) for name in DTYPES}
        self.out = self._raw["out"].view(np.int8)
        worker = np.concatenate([_worker(r) for r in recs]) if recs else np.zeros(0, np.int16)
        # lanes of an asyncio backend may number more than an int16 holds
        self._raw["worker"] = worker.astype(
            np.int16 if worker.max(initial=0) < 2**15 else np.int32, copy=False
        )
        self.m = m = len(self.out)
        self._sparse(recs, m)
        self._place(self._raw["job_id"], self._raw["attempt"], n, m)

    @staticmethod
    def _joined(recs: list[Recorder], name: str) -> np.ndarray:
        import numpy as np

        parts = [r.column(name) for r in recs]
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.zeros(0, DTYPES[name])

    def _sparse(self, recs: list[Recorder], m: int) -> None:
        """The rare columns: errors (rows, types, messages), backoff, throttle, results."""
        import numpy as np

        err_rows: list[int] = []
        self.err_types: list[str | None] = []
        self.err_msgs: list[str | None] = []
        results: list[Any] = []
        backoff, throttle = np.full(m, np.nan), np.zeros(m)  # throttle: 0 if none
        base = 0
        for r in recs:
            if r.errors:
                err_rows.extend(base + row for row in r.errors)
                for etype, msg in r.errors.values():
                    self.err_types.append(etype)
                    self.err_msgs.append(msg)
            for dense, sparse in ((backoff, r.backoff), (throttle, r.throttle)):
                if sparse:
                    rows = np.fromiter(sparse.keys(), np.int64, len(sparse))
                    dense[base + rows] = np.fromiter(sparse.values(), float, len(rows))
            if r.results is not None:
                results.extend(r.results)
            base += len(r)
        self._raw["backoff"], self._raw["throttle"] = backoff, throttle
        self.err_rows = np.array(err_rows, dtype=np.int64)
        self.results = np.fromiter(results, object, len(results)) if results else None

    def _place(self, job_id: np.ndarray, attempt: np.ndarray, n: int, m: int) -> None:
        """``counts``, ``rank`` and ``order``: a job's attempts are 1..k, each recorded
        once, so rows are placed without sorting (a lexsort if they are not)."""
        import numpy as np

        idx = np.int32 if m < 2**31 else np.int64  # row numbers: half the memory
        counts = np.bincount(job_id, minlength=n)[:n] if m else np.zeros(n, np.int64)
        self.counts = counts.astype(idx)
        self.single = m == n and bool((counts == 1).all())  # one attempt per job
        if self.single:
            dest = job_id.astype(idx)
            ok = bool((attempt == 1).all())  # ids 0..n-1 once each: a permutation
        else:
            first = np.cumsum(self.counts, dtype=idx) - self.counts
            dest = first[job_id] + (attempt.astype(idx) - 1) if m else job_id.astype(idx)
            del first
            ok = not m or (dest.min() >= 0 and dest.max() < m and _covers(dest, m))
        if not ok:
            dest = np.empty(m, idx)
            dest[np.lexsort((attempt, job_id))] = np.arange(m, dtype=idx)
        self.rank = dest
        self.order = np.empty(m, idx)
        self.order[dest] = np.arange(m, dtype=idx)

    def sorted(self, name: str) -> np.ndarray:
        """A column in (job_id, attempt) order, made once: any of the recorder's (job_id,
        attempt, worker, cpu, out, backoff, throttle) and start, end, duration (seconds
        from the trace's origin). The attempts frame holds these arrays."""
        import numpy as np

        col = self._sorted.get(name)
        if col is not None:
            return col
        if name == "job_id":
            col = np.arange(self.n, dtype=np.int64)
            if not self.single:
                col = np.repeat(col, self.counts)
            if self.ids is not None:
                col = self.ids[col]
        elif name in ("start", "end"):
            col = self._raw["t0" if name == "start" else "t1"][self.order]
            col -= self.origin
        elif name == "duration":
            col = self.sorted("end") - self.sorted("start")
        elif name == "out":
            col = self.out[self.order]
        else:
            col = self._raw[name][self.order]
        self._sorted[name] = col
        return col

    def hosts(self, meta: dict[str, Any]) -> tuple[Any, list]:
        """Each sorted row's host code and the host names (made once): from an extra
        ``host`` column if the trace has one, else from ``meta`` (see
        :func:`qlab.trace.hosts.host_codes`)."""
        if self._hosts is None:
            if "host" in self.extra:
                codes, cats = self.extra["host"]
                self._hosts = codes[self.order], list(cats)
            else:
                from qlab.trace.hosts import host_codes

                start = self.sorted("start")
                self._hosts = host_codes(meta, self.sorted("worker"), start, self.origin)
        return self._hosts

    @cached_property
    def job_ids(self) -> np.ndarray:
        """Each job's id (its position, unless the trace names them)."""
        import numpy as np

        return np.arange(self.n, dtype=np.int64) if self.ids is None else self.ids

    def per_job(self, meta: dict[str, Any]) -> PerJob:
        """The per-job arrays (made once; ``meta``: the run's, for the hosts)."""
        if self._per_job is None:
            self._per_job = PerJob(self, meta)
        return self._per_job

    def release(self) -> None:
        """Drop the columns in recorder order (once the sorted ones are made)."""
        self._raw = {}
        self.out = None


class PerJob:
    """Per job: its first and last sorted rows, status code (index in
    ``JOB_STATUSES``), the times that ``run.jobs`` and ``run.summary()`` share
    (submitted, first_start, end: NaN for a cancelled job, service: time in attempts,
    latency, queue_wait) and its last attempt's worker, host and extra columns. A job's
    attempts are consecutive sorted rows, so its first and last rows are positions, not
    a group-by. Everything the jobs frame needs of the sorted columns is taken here, so
    the attempts frame may hand those arrays out before the jobs frame is made."""

    def __init__(self, c: Columns, meta: dict[str, Any]) -> None:
        import numpy as np

        counts = c.counts
        self.has = has = counts > 0
        self.single = c.single
        fi = (np.cumsum(counts, dtype=np.int64) - counts)[has]  # each job's first row
        self.first, self.last = fi, fi + counts[has] - 1
        out = c.sorted("out").view(np.uint8)
        last_out = out if self.single else self.of_last(out, 255)  # read only: no copy
        self.code = code = np.frombuffer(STATUS_INDEX, np.uint8)[c.status].view(np.int8)
        code[(c.status == ST_OPEN) & (last_out == OK)] = 0
        del last_out
        self._times(c)
        self.worker = self.of_last(c.sorted("worker"), 0)
        self.host = self.of_last(c.hosts(meta)[0], -1)
        self.extra = {
            name: self.of_last(codes[c.order], -1)
            for name, (codes, _) in c.extra.items()
            if name != "host"
        }
        # the errors of failed jobs' last attempts: their index in c.err_rows, their job
        err_pos = c.rank[c.err_rows]
        mark = np.zeros(c.m, bool)
        mark[self.last[code[has] == 1]] = True
        self.err_keep = np.flatnonzero(mark[err_pos])
        with_rows = np.flatnonzero(has)
        self.err_jobs = with_rows[np.searchsorted(self.last, err_pos[self.err_keep])]

    def _times(self, c: Columns) -> None:
        import numpy as np

        if self.single:
            self.service = c.sorted("duration").copy()
        else:
            self.service = np.full(c.n, np.nan)
            if c.m:
                self.service[self.has] = np.add.reduceat(c.sorted("duration"), self.first)
        self.first_start = self.of_first(c.sorted("start"), np.nan)
        self.end = self.of_last(c.sorted("end"), np.nan)
        self.end[self.code == 2] = np.nan  # cancelled
        self.submitted = c.submitted
        self.queue_wait = self.first_start - c.submitted
        self.latency = self.end - c.submitted

    def _per_job(self, values: np.ndarray, rows: np.ndarray, fill: Any) -> np.ndarray:
        import numpy as np

        if self.single:
            return values.copy()
        dtype = np.float64 if fill is np.nan else values.dtype
        col = np.full(len(self.has), fill, dtype=dtype)
        col[self.has] = values[rows]
        return col

    def of_first(self, values: np.ndarray, fill: Any) -> np.ndarray:
        """Each job's value of its first attempt (``fill`` for a job without one)."""
        return self._per_job(values, self.first, fill)

    def of_last(self, values: np.ndarray, fill: Any) -> np.ndarray:
        """Each job's value of its last attempt (``fill`` for a job without one)."""
        return self._per_job(values, self.last, fill)
