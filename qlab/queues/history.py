"""A durable queue's whole history as a :class:`qlab.Run`, built from its store's rows.

Every job ever put and every attempt ever recorded, by any owner, before and after
crashes: ``run.jobs`` and ``run.attempts`` have the columns of docs/design.md §4, and
times are seconds from the queue's creation (so a crash's downtime is in ``wall_s``).
An attempt's ``attempt`` number counts every row of its job, lost ones included.
Both frames have one more column than a live run's: ``consumer``, the owner
(``host:pid:start-ms:random``) that ran the attempt (of the job's last attempt in
``run.jobs``), so the Run of a queue that several pools consumed shows who ran what;
``host`` is the host part of that name (the machine each attempt ran on).

Example:
    >>> jobs = [(0, 100.0, 1), (1, 100.0, 0)]
    >>> rows = [(0, 1, 0, 100.5, 101.0, 0.1, 0, None, None, None, 0.0, "h:1:2:ab")]
    >>> run = build_run(jobs, rows, {"created": "100.0"})
    >>> run.jobs.status.tolist(), run.attempts.start_s.tolist(), list(run.jobs.consumer)
    (['ok', 'pending'], [0.5], ['h:1:2:ab', nan])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qlab.core.codes import JOB_STATUSES, OUTCOMES, ST_CANCELLED, ST_FAILED
from qlab.queues.store import COLUMNS, S_OK, Row
from qlab.trace.results import Run, load_saved

__all__ = ["build_run", "host_of", "load_queue", "load_run"]


def host_of(consumer: str) -> str:
    """The host a consumer ran on (its name is ``host:pid:start-ms:random``).

    Example:
        >>> host_of("web-1:4242:1700000000000:ab12cd34")
        'web-1'
    """
    return consumer.rsplit(":", 3)[0]


def load_run(path: str | Path) -> Run:
    """A Run saved with :meth:`Run.save` (a folder of Parquet or CSV files), or the
    merged Run of a durable queue's URL (``redis://...``, ``sqlite:///...``: every
    consumer's jobs and attempts, see :func:`load_queue`).

    Raises:
        FileNotFoundError: a path that holds no saved run.
        ValueError: a damaged saved run (naming the folder); for a URL, a missing,
            empty or foreign queue.
        StoreError: the queue's store failed while it was read.

    Example:
        >>> import os, tempfile, qlab
        >>> run = qlab.run(abs, range(10))
        >>> folder = run.save(os.path.join(tempfile.mkdtemp(), "run"))
        >>> len(qlab.load_run(folder).jobs)
        10
    """
    if isinstance(path, str) and "://" in path:
        return load_queue(path)
    return load_saved(path)


def load_queue(url: str, consumer: str | None = None) -> Any:
    """The Run of the durable queue at ``url``: every job and attempt of every
    consumer, merged (``qlab.load_run(url)`` calls this for a queue URL); with
    ``consumer``, only the jobs it ran an attempt of (all their attempts).

    Raises:
        ValueError: an unknown kind, a missing or foreign queue.
        ConnectionError: Redis cannot be reached.
        StoreError: the store failed while it was read.
    """
    from qlab import queues

    store = queues.queue_class(url).open(url, readonly=True)
    try:
        jobs, rows = store.load()
        meta = store.meta()
    finally:
        store.close()
    meta["queue"] = queues.redact(url)
    if consumer is not None:
        mine = {row[0] for row in rows if row[-1] == consumer}
        jobs = [job for job in jobs if job[0] in mine]
        rows = [row for row in rows if row[0] in mine]
        meta["consumer"] = consumer
    return build_run(jobs, rows, meta)


def build_run(jobs: list[tuple[int, float, int]], rows: list[Row], meta: dict[str, Any]) -> Any:
    """The Run of a store's jobs ``(id, submitted, status)`` and attempt rows."""
    import numpy as np
    import pandas as pd

    origin = float(meta.get("created") or (min(j[1] for j in jobs) if jobs else 0.0))
    a = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
    a = a.sort_values(["job_id", "start", "attempt"], kind="stable").reset_index(drop=True)
    a["attempt"] = (a.groupby("job_id").cumcount() + 1).astype("int16")
    start = a["start"].to_numpy(float) - origin
    end = a["end"].to_numpy(float) - origin
    attempts = pd.DataFrame(
        {
            "job_id": a["job_id"].astype("int64"),
            "attempt": a["attempt"],
            "worker": a["worker"].astype("int16"),
            "host": pd.Categorical(a["consumer"].map(host_of, na_action="ignore")),
            "start_s": start,
            "end_s": end,
            "duration_s": end - start,
            "cpu_s": a["cpu_s"].astype(float),
            "outcome": pd.Categorical.from_codes(a["outcome"].astype("int8"), OUTCOMES),
            "error_type": pd.Categorical(a["error_type"]),
            "error": pd.array(a["error"], dtype=pd.StringDtype("pyarrow")),
            "backoff_s": a["backoff_s"].astype(float),
            "throttle_s": a["throttle_s"].astype(float),
            "consumer": pd.Categorical(a["consumer"]),
        }
    )
    j = pd.DataFrame.from_records(jobs, columns=["job_id", "submitted", "status"])
    n = len(j)
    g = attempts.groupby("job_id", sort=True)
    last = attempts.loc[g.tail(1).index].set_index("job_id") if len(attempts) else None
    per = pd.DataFrame(
        {
            "attempts": g.size(),
            "first_start_s": g["start_s"].min(),
            "service_s": g["duration_s"].sum(),
        }
    )
    per = per.reindex(j["job_id"])
    code = np.full(n, 3, np.int8)  # pending
    status = j["status"].to_numpy()
    code[status == S_OK] = 0
    code[status == ST_FAILED] = 1
    code[status == ST_CANCELLED] = 2
    submitted = j["submitted"].to_numpy(float) - origin
    end_s = np.full(n, np.nan)
    worker = pd.array([pd.NA] * n, dtype="Int16")
    etype = pd.Categorical([None] * n, categories=attempts["error_type"].cat.categories)
    error = pd.array([None] * n, dtype=pd.StringDtype("pyarrow"))
    consumer = pd.Categorical([None] * n, categories=attempts["consumer"].cat.categories)
    host = pd.Categorical([None] * n, categories=attempts["host"].cat.categories)
    if last is not None:
        pos = j["job_id"].map(pd.Series(np.arange(n), index=j["job_id"]))
        has = j["job_id"].isin(last.index).to_numpy()
        lj = last.reindex(j["job_id"][has])
        end_s[has] = lj["end_s"].to_numpy()
        worker[has] = lj["worker"].to_numpy()
        consumer[has] = lj["consumer"].to_numpy()
        host[has] = lj["host"].to_numpy()
        failed = has & (code == 1)
        lf = last.reindex(j["job_id"][failed])
        etype[failed] = lf["error_type"].to_numpy()
        error[pos[failed].to_numpy()] = lf["error"].to_numpy()
    end_s[code == 2] = np.nan
    first = per["first_start_s"].to_numpy(float)
    jobs_df = pd.DataFrame(
        {
            "job_id": j["job_id"].astype("int64"),
            "status": pd.Categorical.from_codes(code, JOB_STATUSES),
            "attempts": per["attempts"].fillna(0).to_numpy().astype("int16"),
            "submitted_s": submitted,
            "first_start_s": first,
            "end_s": end_s,
            "queue_wait_s": first - submitted,
            "service_s": per["service_s"].to_numpy(float),
            "latency_s": end_s - submitted,
            "worker": worker,
            "host": host,
            "error_type": etype,
            "error": error,
            "consumer": consumer,
        }
    )
    ends = [end_s.max() if n else np.nan, end.max() if len(end) else np.nan]
    wall = float(np.nanmax(ends)) if not np.isnan(ends).all() else 0.0
    info = {k: v for k, v in meta.items() if k not in ("created", "schema", "handler_pickle")}
    info["lost"] = int((attempts["outcome"] == "lost").sum())
    return Run(None, info, max(wall, 0.0), frames=(jobs_df, attempts))
