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

from array import array
from pathlib import Path
from typing import Any

from qlab.core.codes import LOST, ST_CANCELLED, STORE_STATUS
from qlab.queues.store import COLUMNS, Row
from qlab.trace.recorder import Recorder, Trace
from qlab.trace.results import Run, load_saved

__all__ = ["build_run", "history_trace", "host_of", "load_queue", "load_run"]


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
    """The Run of a store's jobs ``(id, submitted, status)``, sorted by id, and attempt
    rows: a trace (:func:`history_trace`) whose frames :mod:`qlab.trace.frames` makes."""
    origin = float(meta.get("created") or (min(j[1] for j in jobs) if jobs else 0.0))
    trace, wall = history_trace(jobs, rows, origin)
    info = {k: v for k, v in meta.items() if k not in ("created", "schema", "handler_pickle")}
    info["lost"] = sum(1 for row in rows if row[6] == LOST)
    return Run(trace, info, wall)


def history_trace(
    jobs: list[tuple[int, float, int]], rows: list[Row], origin: float
) -> tuple[Trace, float]:
    """A store's jobs and attempt rows as a trace, and its wall time (seconds from
    ``origin`` to the last end). One recorder holds every row; job ids are positions
    (``Trace.ids`` names them); statuses go through ``STORE_STATUS``; a job's attempts
    are numbered in order of start (lost rows counted); ``consumer`` and ``host`` are
    extra categorical columns.

    Raises:
        ValueError: rows of a job that ``jobs`` does not hold (a damaged store).
    """
    import numpy as np

    ids = np.array([j[0] for j in jobs], np.int64)
    status = np.frombuffer(STORE_STATUS, np.uint8)[np.array([j[2] for j in jobs], np.int64)]
    trace = Trace(origin, submitted=array("d", [j[1] for j in jobs]), status=bytearray(status))
    trace.ids = ids
    if not rows:
        trace.extra = _consumer_columns(())
        return trace, 0.0
    col = dict(zip(COLUMNS, zip(*rows, strict=True), strict=True))
    job = np.array(col["job_id"], np.int64)
    pos = np.minimum(np.searchsorted(ids, job), max(len(ids) - 1, 0))
    if not len(ids) or (ids[pos] != job).any():
        unknown = sorted(set(job[ids[pos] != job].tolist()) if len(ids) else set(job.tolist()))
        raise ValueError(f"attempt rows of jobs the queue does not hold: {unknown[:5]}")
    start, end = np.array(col["start"], np.float64), np.array(col["end"], np.float64)
    order = np.lexsort((np.array(col["attempt"], np.int64), start, pos))  # stable
    counts = np.bincount(pos, minlength=len(ids))
    first = np.cumsum(counts) - counts
    attempt = np.empty(len(rows), np.int64)  # each row's rank in its job, from 1
    attempt[order] = np.arange(len(rows)) - np.repeat(first, counts) + 1
    cpu, out = np.array(col["cpu_s"], np.float64), np.array(col["outcome"], np.uint8)
    cols = {"job_id": pos, "attempt": attempt.astype(np.uint16), "t0": start, "t1": end,
            "cpu": cpu, "out": out}  # fmt: skip
    pairs = zip(col["error_type"], col["error"], strict=True)
    errors = {i: (t, e) for i, (t, e) in enumerate(pairs) if t is not None or e is not None}
    backoff = {i: b for i, b in enumerate(col["backoff_s"]) if b is not None}
    throttle = {i: t for i, t in enumerate(col["throttle_s"]) if t}
    lanes = np.array(col["worker"], np.int32)
    trace.recorders.append(Recorder.of_columns(cols, lanes, errors, backoff, throttle))
    trace.extra = _consumer_columns(col["consumer"])
    # wall: to the jobs' last ends if every job has one, else to the attempts' last end
    jobs_end = np.full(len(ids), np.nan)
    jobs_end[counts > 0] = end[order[(first + counts - 1)[counts > 0]]]
    jobs_end[status == ST_CANCELLED] = np.nan
    ends = [jobs_end.max(), end.max()]
    wall = float(np.nanmax(ends)) - origin if not np.isnan(ends).all() else 0.0
    return trace, max(wall, 0.0)


def _consumer_columns(consumers: tuple) -> dict[str, tuple[Any, list]]:
    """The ``consumer`` column (codes, -1 for None, and sorted names) and the ``host``
    derived from it, as extra columns of a trace."""
    import numpy as np

    names = sorted({c for c in consumers if c is not None})
    index = {c: i for i, c in enumerate(names)}
    codes = np.array([index.get(c, -1) for c in consumers], np.int32)
    hosts = sorted({host_of(c) for c in names})
    to_host = np.array([hosts.index(host_of(c)) for c in names] + [-1], np.int32)
    return {"host": (to_host[codes], hosts), "consumer": (codes, names)}
