"""Columnar recording of attempts, and the DataFrames built from it.

The engine records each batch of attempts into a :class:`Recorder` (one per worker):
compact ``array`` columns extended once per batch, with the rare columns (errors,
backoff delays) kept sparse. Nothing is a Python object per attempt, so a run of a
million jobs costs tens of bytes per attempt. :class:`Trace` gathers the recorders and
the per-job columns and builds ``run.attempts`` and ``run.jobs`` on demand.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Any

from qlab.backends.base import OK, OUTCOMES

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

JOB_STATUSES = ("ok", "failed", "cancelled", "pending")
# job status codes in Trace.status: 0 = not settled by failure/cancel (ok if its last
# attempt is ok, else still pending), then the codes below
ST_FAILED, ST_CANCELLED = 2, 3


class Recorder:
    """The attempts one worker ran, in columns. Mutated only under the engine's lock."""

    __slots__ = (
        "attempt",
        "backoff",
        "cpu",
        "errors",
        "job_id",
        "out",
        "results",
        "t0",
        "t1",
        "worker",
    )

    def __init__(self, worker: int, keep_results: bool = False) -> None:
        self.worker = worker
        self.job_id = array("q")
        self.attempt = array("H")
        self.t0 = array("d")
        self.t1 = array("d")
        self.cpu = array("d")
        self.out = bytearray()
        self.errors: dict[int, tuple[str, str]] = {}
        self.backoff: dict[int, float] = {}
        self.results: list[Any] | None = [] if keep_results else None

    def __len__(self) -> int:
        return len(self.out)

    def add(self, items, t0, t1, cpu, out: bytearray, errors, backoff, results=None) -> None:
        """Append one batch: ``errors``/``backoff`` map batch row -> value."""
        base = len(self.out)
        self.job_id.extend([it[0] for it in items])
        self.attempt.extend([it[1] for it in items])
        self.t0.extend(t0)
        self.t1.extend(t1)
        self.cpu.extend(cpu)
        self.out.extend(out)
        for row, err in errors.items():
            self.errors[base + row] = err
        for row, delay in backoff.items():
            self.backoff[base + row] = delay
        if self.results is not None:
            self.results.extend(results if results is not None else [None] * len(items))

    def frozen(self) -> Recorder:
        """A copy that later appends do not change (for snapshots)."""
        rec = Recorder(self.worker, self.results is not None)
        n = len(self.out)
        rec.job_id, rec.attempt = self.job_id[:n], self.attempt[:n]
        rec.t0, rec.t1, rec.cpu, rec.out = self.t0[:n], self.t1[:n], self.cpu[:n], self.out[:n]
        rec.errors, rec.backoff = dict(self.errors), dict(self.backoff)
        rec.results = None if self.results is None else self.results[:n]
        return rec


class Trace:
    """Everything recorded about a run: per-job columns plus the workers' recorders."""

    def __init__(self, origin: float, keep_results: bool = False) -> None:
        self.origin = origin  # the clock reading that is t = 0 s
        self.keep_results = keep_results
        self.submitted = array("d")  # per job id
        self.status = bytearray()  # per job id: 0, ST_FAILED or ST_CANCELLED
        self.recorders: list[Recorder] = []

    def snapshot(self) -> Trace:
        """A frozen copy (take it under the engine's lock)."""
        tr = Trace(self.origin, self.keep_results)
        tr.submitted, tr.status = self.submitted[:], self.status[:]
        tr.recorders = [r.frozen() for r in self.recorders]
        return tr

    # -- DataFrames --------------------------------------------------------------------

    def _columns(self) -> dict[str, np.ndarray]:
        import numpy as np

        recs = [r for r in self.recorders if len(r)]
        if not recs:
            empty = np.array([], dtype=np.float64)
            return {
                "job_id": np.array([], np.int64),
                "attempt": np.array([], np.int64),
                "worker": np.array([], np.int64),
                "t0": empty,
                "t1": empty,
                "cpu": empty,
                "out": np.array([], np.uint8),
                "order": np.array([], np.int64),
                "backoff": empty,
                "error_type": np.array([], object),
                "error": np.array([], object),
                "result": np.array([], object),
            }
        cat = np.concatenate
        job_id = cat([np.frombuffer(r.job_id, np.int64) for r in recs])
        attempt = cat([np.frombuffer(r.attempt, np.uint16) for r in recs]).astype(np.int64)
        n = len(job_id)
        backoff = np.full(n, np.nan)
        error_type = np.full(n, None, dtype=object)
        error = np.full(n, None, dtype=object)
        result = np.full(n, None, dtype=object)
        base = 0
        for r in recs:
            for row, delay in r.backoff.items():
                backoff[base + row] = delay
            for row, (etype, msg) in r.errors.items():
                error_type[base + row], error[base + row] = etype, msg
            if r.results is not None:
                result[base : base + len(r)] = r.results
            base += len(r)
        order = np.lexsort((attempt, job_id))
        return {
            "job_id": job_id,
            "attempt": attempt,
            "worker": cat([np.full(len(r), r.worker, np.int64) for r in recs]),
            "t0": cat([np.frombuffer(r.t0, np.float64) for r in recs]),
            "t1": cat([np.frombuffer(r.t1, np.float64) for r in recs]),
            "cpu": cat([np.frombuffer(r.cpu, np.float64) for r in recs]),
            "out": cat([np.frombuffer(r.out, np.uint8) for r in recs]),
            "order": order,
            "backoff": backoff,
            "error_type": error_type,
            "error": error,
            "result": result,
        }

    def attempts_frame(self, cols: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
        """One row per attempt, sorted by (job_id, attempt); see DESIGN.md."""
        import numpy as np
        import pandas as pd

        c = cols if cols is not None else self._columns()
        o = c["order"]
        start, end = c["t0"][o] - self.origin, c["t1"][o] - self.origin
        return pd.DataFrame(
            {
                "job_id": c["job_id"][o],
                "attempt": c["attempt"][o].astype(np.int16),
                "worker": c["worker"][o].astype(np.int16),
                "start_s": start,
                "end_s": end,
                "duration_s": end - start,
                "cpu_s": c["cpu"][o],
                "outcome": pd.Categorical.from_codes(c["out"][o].astype(np.int8), OUTCOMES),
                "error_type": pd.Series(c["error_type"][o], dtype="category"),
                "error": pd.array(c["error"][o], dtype="string"),
                "backoff_s": c["backoff"][o],
            }
        )

    def jobs_frame(self, cols: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
        """One row per job; see DESIGN.md. Jobs that never started have NaN times."""
        import numpy as np
        import pandas as pd

        c = cols if cols is not None else self._columns()
        n = len(self.submitted)
        o = c["order"]
        job_id, out = c["job_id"][o], c["out"][o]
        t0, t1 = c["t0"][o] - self.origin, c["t1"][o] - self.origin
        counts = np.bincount(job_id, minlength=n)[:n]
        has = counts > 0
        # rows are sorted by (job, attempt): a job's first row is at the running count
        first = np.cumsum(counts) - counts
        last = first + counts - 1
        fi, la = first[has], last[has]

        def per_job(values: np.ndarray, rows: np.ndarray, fill: Any, dtype: Any) -> np.ndarray:
            col = np.full(n, fill, dtype=dtype)
            col[has] = values[rows]
            return col

        service = np.add.reduceat(t1 - t0, fi) if len(fi) else np.array([])
        status = np.frombuffer(bytes(self.status), np.uint8).copy()
        last_out = per_job(out, la, 255, np.int16)
        code = np.full(n, 3, np.int8)  # pending
        code[last_out == OK] = 0
        code[status == ST_FAILED] = 1
        code[status == ST_CANCELLED] = 2
        submitted = np.frombuffer(self.submitted, np.float64) - self.origin
        first_start = per_job(t0, fi, np.nan, np.float64)
        end = per_job(t1, la, np.nan, np.float64)
        failed_row = has & (code == 1)
        err_type = np.full(n, None, dtype=object)
        err = np.full(n, None, dtype=object)
        err_type[failed_row] = c["error_type"][o][last[failed_row]]
        err[failed_row] = c["error"][o][last[failed_row]]
        df = pd.DataFrame(
            {
                "job_id": np.arange(n, dtype=np.int64),
                "status": pd.Categorical.from_codes(code, JOB_STATUSES),
                "attempts": counts.astype(np.int16),
                "submitted_s": submitted,
                "first_start_s": first_start,
                "end_s": end,
                "queue_wait_s": first_start - submitted,
                "service_s": per_job(service, np.arange(len(fi)), np.nan, np.float64),
                "latency_s": end - submitted,
                "worker": pd.array(per_job(c["worker"][o], la, -1, np.int64), dtype="Int16"),
                "error_type": pd.Series(err_type, dtype="category"),
                "error": pd.array(err, dtype="string"),
            }
        )
        df.loc[~has, "worker"] = pd.NA
        df.loc[code == 2, ["end_s", "latency_s"]] = np.nan
        if self.keep_results:
            result = np.full(n, None, dtype=object)
            ok_rows = has & (code == 0)
            result[ok_rows] = c["result"][o][last[ok_rows]]
            df["result"] = result
        return df
