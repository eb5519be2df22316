"""The DataFrames of a trace: ``run.attempts`` and ``run.jobs``, built in numpy passes.

The recorders' columns are joined once (:class:`_Columns`), with the permutation
that puts rows in (job, attempt) order; both frames are built from those arrays
without a Python object per row (error messages become an Arrow string array).
The ``host`` column is derived here, from the worker -> host map the backend put in
the run's meta (:func:`qlab.trace.hosts.host_codes`), not recorded per attempt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qlab.core.codes import JOB_STATUSES, OK, OUTCOMES, ST_CANCELLED, ST_FAILED
from qlab.trace.hosts import host_codes
from qlab.trace.recorder import DTYPES

if TYPE_CHECKING:
    import pandas as pd

    from qlab.trace.recorder import Trace

__all__ = ["attempts_frame", "columns", "jobs_frame"]


def columns(trace: Trace) -> _Columns:
    """The trace's columns joined (both frames can share them)."""
    return _Columns(trace)


def attempts_frame(
    trace: Trace, cols: _Columns | None = None, meta: dict[str, Any] | None = None
) -> pd.DataFrame:
    """One row per attempt, sorted by (job_id, attempt); see docs/design.md. ``meta``
    (the run's) says which host each worker was on; without it, this machine."""
    import pandas as pd

    c = cols if cols is not None else _Columns(trace)
    o = c.order
    srt = c.sorted(trace.origin)
    host, hosts = c.hosts(meta or {}, trace.origin)
    return pd.DataFrame(
        {
            "job_id": srt["job_id"],
            "attempt": c.attempt[o].astype("int16"),
            "worker": srt["worker"],
            "host": pd.Categorical.from_codes(host, hosts),
            "start_s": srt["start"],
            "end_s": srt["end"],
            "duration_s": srt["duration"],
            "cpu_s": c.cpu[o],
            "outcome": pd.Categorical.from_codes(srt["out"], OUTCOMES),
            "error_type": c.error_types(c.rank[c.err_rows]),
            "error": c.errors(c.rank[c.err_rows]),
            "backoff_s": c.backoff[o],
            "throttle_s": c.throttle[o],
        },
        copy=False,
    )


def jobs_frame(
    trace: Trace, cols: _Columns | None = None, meta: dict[str, Any] | None = None
) -> pd.DataFrame:
    """One row per job; see docs/design.md. Jobs that never started have NaN times.

    Built from the attempts in (job, attempt) order (``_Columns.sorted``): a job's
    attempts are consecutive rows, so its first and last rows are positions.
    """
    import numpy as np
    import pandas as pd

    c = cols if cols is not None else _Columns(trace)
    n = len(trace.submitted)
    srt = c.sorted(trace.origin)
    counts = c.counts
    has = counts > 0
    m = len(c.order)
    first = np.cumsum(counts, dtype=np.int64) - counts  # each job's first sorted row
    fi = first[has]
    la = fi + counts[has] - 1  # and its last
    del first
    single = m == n and bool(has.all())  # one attempt per job: rows are jobs

    def per_job(values: np.ndarray, rows: np.ndarray, fill: Any) -> np.ndarray:
        if single:
            return values.copy()
        col = np.full(n, fill, dtype=values.dtype if fill is not np.nan else np.float64)
        col[has] = values[rows]
        return col

    if single:
        service = srt["duration"].copy()
    else:
        service = np.full(n, np.nan)
        if m:
            service[has] = np.add.reduceat(srt["duration"], fi)
    status = np.frombuffer(trace.status, np.uint8)
    last_out = per_job(srt["out"].view(np.uint8), la, 255)
    code = np.full(n, 3, np.int8)  # pending
    code[last_out == OK] = 0
    code[status == ST_FAILED] = 1
    code[status == ST_CANCELLED] = 2
    del last_out
    submitted = np.frombuffer(trace.submitted, np.float64) - trace.origin
    first_start = per_job(srt["start"], fi, np.nan)
    end = per_job(srt["end"], la, np.nan)
    end[code == 2] = np.nan
    worker = per_job(srt["worker"], la, 0)
    host_codes, hosts = c.hosts(meta or {}, trace.origin)
    host = per_job(host_codes, la, -1)  # the host of the last attempt
    # a failed job's error is its last attempt's error
    err_pos = c.rank[c.err_rows]  # sorted positions of the rows with an error
    last_of_failed = np.full(n, -1, np.int64)
    last_of_failed[has] = la
    keep = np.isin(err_pos, last_of_failed[code == 1])
    del last_of_failed
    job_of_err = srt["job_id"][err_pos[keep]]
    df = pd.DataFrame(
        {
            "job_id": np.arange(n, dtype=np.int64),
            "status": pd.Categorical.from_codes(code, JOB_STATUSES),
            "attempts": counts.astype(np.int16),
            "submitted_s": submitted,
            "first_start_s": first_start,
            "end_s": end,
            "queue_wait_s": first_start - submitted,
            "service_s": service,
            "latency_s": end - submitted,
            "worker": pd.arrays.IntegerArray(worker, ~has),
            "host": pd.Categorical.from_codes(host, hosts),
            "error_type": c.error_types(job_of_err, n, keep),
            "error": c.errors(job_of_err, n, keep),
        },
        copy=False,
    )
    if trace.keep_results:
        result = np.full(n, None, dtype=object)
        ok = has & (code == 0)
        if c.results is not None:
            result[ok] = c.results[c.order[la[ok[has]]]]
        df["result"] = result
    return df


def _worker(rec: Any) -> Any:
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


class _Columns:
    """The recorders' columns joined, with the permutation that sorts rows by
    (job_id, attempt). Rows are in recorder order; ``order`` gives sorted -> row and
    ``rank`` row -> sorted position."""

    # numpy arrays (of dtypes chosen at run time), until release() drops the first ones
    t0: Any
    t1: Any
    cpu: Any
    backoff: Any
    attempt: Any
    throttle: Any
    job_id: Any
    worker: Any
    out: Any
    counts: Any

    def __init__(self, trace: Trace) -> None:
        import numpy as np

        self._sorted: dict[str, Any] | None = None
        self._hosts: tuple[Any, list] | None = None
        recs = [r for r in trace.recorders if len(r)]
        cat = np.concatenate

        def joined(name: str) -> np.ndarray:
            parts = [r.column(name) for r in recs]
            if len(parts) == 1:
                return parts[0]
            return cat(parts) if parts else np.zeros(0, DTYPES[name])

        self.job_id, self.attempt = joined("job_id"), joined("attempt")
        self.t0, self.t1, self.cpu = joined("t0"), joined("t1"), joined("cpu")
        self.out = joined("out").astype(np.int8)
        worker = cat([_worker(r) for r in recs]) if recs else np.zeros(0, np.int16)
        # lanes of an asyncio backend may number more than an int16 holds
        self.worker = worker.astype(np.int16 if worker.max(initial=0) < 2**15 else np.int32)
        m = len(self.job_id)
        n_jobs = len(trace.submitted)
        # sparse columns: rows with an error, with a backoff delay
        err_rows, err_types, err_msgs, results = [], [], [], []
        self.backoff = np.full(m, np.nan)
        self.throttle = np.zeros(m)  # seconds waited for a rate-limit token
        base = 0
        for r in recs:
            for row, (etype, msg) in r.errors.items():
                err_rows.append(base + row)
                err_types.append(etype)
                err_msgs.append(msg)
            for dense, sparse in ((self.backoff, r.backoff), (self.throttle, r.throttle)):
                if sparse:
                    rows = np.fromiter(sparse.keys(), np.int64, len(sparse))
                    dense[base + rows] = np.fromiter(sparse.values(), float, len(rows))
            if r.results is not None:
                results.extend(r.results)
            base += len(r)
        self.err_rows = np.array(err_rows, dtype=np.int64)
        self.err_types, self.err_msgs = err_types, err_msgs
        self.results = np.fromiter(results, object, len(results)) if results else None
        # a job's attempts are 1..k, each recorded once: place rows without sorting
        idx = np.int32 if m < 2**31 else np.int64  # row numbers: half the memory
        counts = np.bincount(self.job_id, minlength=n_jobs)[:n_jobs] if m else np.zeros(n_jobs)
        self.counts = counts.astype(idx)
        del counts
        first = np.cumsum(self.counts, dtype=idx) - self.counts
        dest = first[self.job_id] + (self.attempt.astype(idx) - 1) if m else self.job_id
        del first
        if m and (dest.min() < 0 or dest.max() >= m or not _covers(dest, m)):
            dest = np.empty(m, idx)
            dest[np.lexsort((self.attempt, self.job_id))] = np.arange(m, dtype=idx)
        self.rank = dest
        self.order = np.empty(m, idx)
        self.order[dest] = np.arange(m, dtype=idx)

    def sorted(self, origin: float) -> dict[str, Any]:
        """The columns that both frames use, in (job_id, attempt) order, made once:
        job_id, worker, out (outcome codes), and start, end, duration from ``origin``.
        The attempts frame holds these arrays; the jobs frame reads copies of them."""
        import numpy as np

        if self._sorted is None:
            o = self.order
            start, end = self.t0[o], self.t1[o]
            start -= origin
            end -= origin
            self._sorted = {
                "job_id": np.repeat(np.arange(len(self.counts), dtype=np.int64), self.counts),
                "worker": self.worker[o],
                "out": self.out[o],
                "start": start,
                "end": end,
                "duration": end - start,
            }
        return self._sorted

    def hosts(self, meta: dict[str, Any], origin: float) -> tuple[Any, list]:
        """Each sorted row's host code and the host names (made once)."""
        if self._hosts is None:
            srt = self.sorted(origin)
            self._hosts = host_codes(meta, srt["worker"], srt["start"], origin)
        return self._hosts

    def release(self) -> None:
        """Drop the columns in recorder order that only the attempts frame needs."""
        self.t0 = self.t1 = self.cpu = self.backoff = self.attempt = self.throttle = None
        self.job_id = self.worker = self.out = None

    def error_types(self, positions: Any, n: int | None = None, keep: Any = None) -> Any:
        """A categorical column with the error type at ``positions``, NA elsewhere."""
        import numpy as np
        import pandas as pd

        types = np.array(self.err_types, dtype=object)
        if keep is not None:
            types = types[keep]
        cats, codes = (
            np.unique(types.astype(str), return_inverse=True)
            if len(types)
            else (np.array([], str), np.zeros(0, np.int64))
        )
        col = np.full(len(self.order) if n is None else n, -1, np.int16)
        col[positions] = codes
        return pd.Categorical.from_codes(col, categories=list(cats))

    def errors(self, positions: Any, n: int | None = None, keep: Any = None) -> Any:
        """A string column with the error message at ``positions``, NA elsewhere,
        assembled as an Arrow array from buffers (no Python object per row)."""
        import numpy as np
        import pandas as pd
        import pyarrow as pa

        size = len(self.order) if n is None else n
        if not len(positions):
            return pd.array(pa.nulls(size, pa.string()), dtype=pd.StringDtype("pyarrow"))
        msgs = self.err_msgs
        if keep is not None:
            msgs = [m for m, k in zip(msgs, keep, strict=True) if k]
        encoded = [m.encode() for m in msgs]
        lengths = np.zeros(size + 1, np.int64)
        lengths[np.asarray(positions, np.int64) + 1] = [len(e) for e in encoded]
        offsets = np.cumsum(lengths).astype(np.int32)
        valid = np.zeros(size, bool)
        valid[positions] = True
        data = b"".join(e for _, e in sorted(zip(positions, encoded, strict=True)))
        arr = pa.StringArray.from_buffers(
            size,
            pa.py_buffer(offsets),
            pa.py_buffer(data),
            pa.py_buffer(np.packbits(valid, bitorder="little")),
            int(size - valid.sum()),
        )
        return pd.array(arr, dtype=pd.StringDtype("pyarrow"))
