"""The DataFrames of a trace: ``run.attempts`` and ``run.jobs`` (docs/design.md §4).

Both are built from the arrays of :class:`qlab.trace.columns.Columns`, which they hold
(numpy columns, categoricals built from codes, error messages as an Arrow string
column): no Python object per row. Every Run's frames come from here: a live run's,
a snapshot's, an observed executor's and a durable queue's history (whose trace
carries its ``consumer`` column and the ``host`` derived from it as extra categorical
columns: :attr:`qlab.trace.recorder.Trace.extra`). The ``host`` column of other runs
is derived from the worker -> host map the backend put in the run's meta
(:func:`qlab.trace.hosts.host_codes`), not recorded per attempt.

Example:
    >>> from array import array
    >>> from qlab.trace.recorder import Trace
    >>> tr = Trace(0.0, submitted=array("d", [0.0]), status=bytearray(1))
    >>> jobs_frame(tr).status.tolist()  # no attempt yet
    ['pending']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qlab.core.codes import JOB_STATUSES, OUTCOMES
from qlab.trace.columns import Columns

if TYPE_CHECKING:
    import pandas as pd

    from qlab.trace.recorder import Trace

__all__ = ["attempts_frame", "columns", "jobs_frame"]


def columns(trace: Trace) -> Columns:
    """The trace's columns joined (both frames can share them)."""
    return Columns(trace)


def attempts_frame(
    trace: Trace | None, cols: Columns | None = None, meta: dict[str, Any] | None = None
) -> pd.DataFrame:
    """One row per attempt, sorted by (job_id, attempt); see docs/design.md. ``meta``
    (the run's) says which host each worker was on; without it, this machine."""
    import numpy as np
    import pandas as pd

    c = cols if cols is not None else Columns(_given(trace))
    host, hosts = c.hosts(meta or {})
    err_pos = c.rank[c.err_rows]
    from_codes = pd.Categorical.from_codes
    data = {
        "job_id": c.sorted("job_id"),
        "attempt": c.sorted("attempt").astype(np.int16),
        "worker": c.sorted("worker"),
        "host": from_codes(host, hosts),
        "start_s": c.sorted("start"),
        "end_s": c.sorted("end"),
        "duration_s": c.sorted("duration"),
        "cpu_s": c.sorted("cpu"),
        "outcome": from_codes(c.sorted("out"), OUTCOMES),
        "error_type": _categories(c.err_types, err_pos, c.m),
        "error": _strings(c.err_msgs, err_pos, c.m),
        "backoff_s": c.sorted("backoff"),
        "throttle_s": c.sorted("throttle"),
    }
    for name, (codes, cats) in c.extra.items():
        if name != "host":
            data[name] = from_codes(codes[c.order], cats)
    return pd.DataFrame(data, copy=False)


def jobs_frame(
    trace: Trace | None, cols: Columns | None = None, meta: dict[str, Any] | None = None
) -> pd.DataFrame:
    """One row per job; see docs/design.md. Jobs that never started have NaN times; a
    job's worker, host and extra columns are its last attempt's, and a failed job's
    error is its last attempt's."""
    import numpy as np
    import pandas as pd

    c = cols if cols is not None else Columns(_given(trace))
    p = c.per_job(meta or {})
    n = c.n
    types = [c.err_types[i] for i in p.err_keep]
    msgs = [c.err_msgs[i] for i in p.err_keep]
    from_codes = pd.Categorical.from_codes
    data = {
        "job_id": c.job_ids,
        "status": from_codes(p.code, JOB_STATUSES),
        "attempts": c.counts.astype(np.int16),
        "submitted_s": p.submitted,
        "first_start_s": p.first_start,
        "end_s": p.end,
        "queue_wait_s": p.queue_wait,
        "service_s": p.service,
        "latency_s": p.latency,
        "worker": pd.arrays.IntegerArray(p.worker, ~p.has),
        "host": from_codes(p.host, c.hosts(meta or {})[1]),
        "error_type": _categories(types, p.err_jobs, n),
        "error": _strings(msgs, p.err_jobs, n),
    }
    if c.keep_results:
        result = np.full(n, None, dtype=object)
        ok = p.has & (p.code == 0)
        if c.results is not None:
            result[ok] = c.results[c.order[p.last[ok[p.has]]]]
        data["result"] = result
    for name, (_, cats) in c.extra.items():
        if name != "host":
            data[name] = from_codes(p.extra[name], cats)
    return pd.DataFrame(data, copy=False)


def _given(trace: Trace | None) -> Trace:
    if trace is None:
        raise ValueError("trace: give a Trace or its Columns (cols=)")
    return trace


def _categories(values: list, positions: Any, size: int) -> Any:
    """A categorical column of ``size`` rows with ``values`` (strings or None) at
    ``positions``, NA elsewhere; its categories are the values, sorted."""
    import numpy as np
    import pandas as pd

    types = np.array(values, dtype=object)
    known = np.fromiter((v is not None for v in values), bool, len(values))
    cats, codes = (
        np.unique(types[known].astype(str), return_inverse=True)
        if known.any()
        else (np.array([], str), np.zeros(0, np.int64))
    )
    col = np.full(size, -1, np.int16)
    col[np.asarray(positions, np.int64)[known]] = codes
    return pd.Categorical.from_codes(col, categories=list(cats))


def _strings(values: list, positions: Any, size: int) -> Any:
    """A string column (Arrow ``large_string``, as pandas keeps it) of ``size`` rows
    with ``values`` (strings or None) at ``positions``, NA elsewhere: an Arrow array of
    the values taken by index, no Python object per row."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if not len(values):
        return pd.array(pa.nulls(size, pa.large_string()), dtype=pd.StringDtype("pyarrow"))
    index = np.full(size, -1, np.int64)
    index[np.asarray(positions, np.int64)] = np.arange(len(values))
    taken = pa.array(values, pa.large_string()).take(pa.array(index, mask=index < 0))
    return pd.array(taken, dtype=pd.StringDtype("pyarrow"))
