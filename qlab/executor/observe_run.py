"""A :class:`qlab.Run` from per-call records (what :func:`qlab.observe` collects).

Each record is one job with at most one attempt; the records go into qlab's own
trace columns (:class:`qlab.trace.recorder.Trace`, one :class:`~qlab.trace.recorder.Recorder` per
worker), so the Run's frames, summary and plots are those of any qlab run.

Example:
    >>> import math
    >>> recs = [[0.0, 0.5, 1.0, 0.1, "t1", None, None, False],
    ...         [0.0, math.nan, math.nan, math.nan, None, None, None, True]]
    >>> run = build_run(recs, ["f", "f"], origin=0.0, meta={"backend": "demo"})
    >>> run.jobs[["job_id", "fn", "status", "queue_wait_s"]].values.tolist()
    [[0, 'f', 'ok', 0.5], [1, 'f', 'cancelled', nan]]
"""

from __future__ import annotations

import math
import time
from array import array
from typing import Any

from qlab.core.batches import Batch
from qlab.core.codes import CRASHED, FAILED, OK, ST_CANCELLED, ST_FAILED, ST_OPEN
from qlab.core.protocol import BatchResult
from qlab.trace.recorder import Recorder, Trace

__all__ = ["build_run"]


def build_run(records: list[list], fns: list[str], origin: float, meta: dict[str, Any]) -> Any:
    """The Run of ``records`` ([submitted, start, end, cpu, worker key, error type,
    error, cancelled-or-"crashed"], times on ``time.perf_counter``), with the
    function names ``fns`` in a ``fn`` column of ``run.jobs`` and ``run.attempts``."""
    import pandas as pd

    from qlab.trace.results import Run

    trace = Trace(origin)
    trace.submitted = array("d", [r[0] for r in records])
    status = bytearray(len(records))
    rows: dict[Any, list[int]] = {}  # worker key -> its jobs, in the order they ran
    for job_id, r in enumerate(records):
        if r[7] is True:
            status[job_id] = ST_CANCELLED
        elif r[5] is not None:
            status[job_id] = ST_FAILED
        if not math.isnan(r[2]):
            rows.setdefault(r[4], []).append(job_id)
        elif r[5] is None and r[7] is not True:
            status[job_id] = ST_OPEN  # running or queued: pending
    trace.status = status
    for worker, ids in enumerate(rows.values()):
        ids.sort(key=lambda j: records[j][1])
        rec = Recorder(worker)
        res = BatchResult(
            [records[j][1] for j in ids], [records[j][2] for j in ids], [records[j][3] for j in ids]
        )
        out = bytearray(OK for _ in ids)
        errors = {}
        for row, j in enumerate(ids):
            if records[j][5] is not None:
                out[row] = CRASHED if records[j][7] == "crashed" else FAILED
                errors[row] = (records[j][5], records[j][6] or "")
        rec.add(Batch(ids, 1, [None] * len(ids)), res, len(ids), out, errors)
        trace.recorders.append(rec)
    done = [r[2] for r in records if not math.isnan(r[2])]
    running = any(math.isnan(r[2]) and r[7] is False and r[5] is None for r in records)
    end = time.perf_counter() if running or not done else max(done)
    meta = dict(meta, workers=meta.get("workers") or len(rows) or None, batches=len(records))
    run = Run(trace, meta, wall_s=max(end - origin, 0.0))
    for df in (run.jobs, run.attempts):
        codes = pd.Categorical(fns)
        df.insert(1, "fn", codes[df["job_id"].to_numpy()] if len(df) else codes[:0])
    return run
