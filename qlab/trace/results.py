"""Result objects: :class:`Run`, what one run of a pool did.

A Run holds the trace of a run and builds its DataFrames on first use:
``run.jobs`` (one row per job), ``run.attempts`` (one row per attempt), ``run.failed``
(the dead letters), ``run.summary()`` and ``run.meta`` (provenance). It saves to and
loads from a folder of Parquet (or CSV) files with its metadata.
"""

from __future__ import annotations

import json
import math
import platform
import sys
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qlab.trace.tables import META_KEY, decode_results, encode_results, read_frame, write_frame

if TYPE_CHECKING:
    import pandas as pd

    from qlab.trace.columns import Columns
    from qlab.trace.recorder import Trace

__all__ = ["META_KEY", "Run", "load_saved", "provenance", "read_frame", "write_frame"]

_FILE_SUFFIXES = (".csv", ".parquet", ".pq", ".json")


def provenance() -> dict[str, Any]:
    """Where and with what a result was made: versions, platform, CPUs."""
    import os

    from qlab.core.version import __version__

    return {
        "qlab_version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }


class Run:
    """What one run did: jobs, attempts, summary and provenance.

    Attributes:
        meta: provenance: backend, workers, seed, retry policy, workload, versions,
            platform, cpu_count, start time, startup_s, and ``interrupted`` if so.

    Example:
        >>> import qlab
        >>> run = qlab.run(qlab.workloads.noop(), range(100), workers=2)
        >>> run.summary()["ok"], len(run.attempts)
        (100, 100)
    """

    def __init__(
        self,
        trace: Trace | None,
        meta: dict[str, Any],
        wall_s: float,
        frames: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    ) -> None:
        self._trace = trace
        self.meta = {**provenance(), **meta, "wall_s": wall_s}
        self.wall_s = wall_s
        if frames is not None:  # made elsewhere (a saved run, a queue's history)
            from qlab.trace.hosts import with_host

            frames = (with_host(frames[0], self.meta), with_host(frames[1], self.meta))
            self.__dict__["jobs"], self.__dict__["attempts"] = frames

    @cached_property
    def _cols(self) -> Columns:
        """The trace's columns joined (until both frames are made)."""
        from qlab.trace.columns import Columns

        trace = self._trace
        assert trace is not None
        cols = Columns(trace)
        trace.recorders = []  # joined into cols: free the recorders' arrays early
        self._trace = None
        return cols

    def _made(self) -> None:
        """A frame is made: once both are, the columns go (the frames hold them)."""
        if "jobs" in self.__dict__ and "attempts" in self.__dict__:
            self.__dict__.pop("_cols", None)

    @cached_property
    def jobs(self) -> pd.DataFrame:
        """One row per job: job_id, status, attempts, submitted_s, first_start_s, end_s,
        queue_wait_s, service_s (time in attempts), latency_s (submit to end), worker
        and host (of the last attempt), error_type, error, and result with keep_results=True."""
        from qlab.trace.frames import jobs_frame

        jobs = jobs_frame(None, self._cols, self.meta)
        self.__dict__["jobs"] = jobs
        self._made()
        return jobs

    @cached_property
    def attempts(self) -> pd.DataFrame:
        """One row per attempt: job_id, attempt, worker, host, start_s, end_s, duration_s,
        cpu_s, outcome, error_type, error, backoff_s (delay before the next attempt),
        throttle_s (time waited for a rate-limit token before the start; 0 if none)."""
        from qlab.trace.frames import attempts_frame

        cols = self._cols
        cols.per_job(self.meta)  # what run.jobs needs, taken before these arrays go out
        attempts = attempts_frame(None, cols, self.meta)
        cols.release()
        self.__dict__["attempts"] = attempts
        self._made()
        return attempts

    @property
    def failed(self) -> pd.DataFrame:
        """The dead letters: jobs that failed for good, with their last error."""
        jobs = self.jobs
        return jobs[jobs["status"] == "failed"].reset_index(drop=True)

    def summary(self) -> pd.Series:
        """Counts, wall time, throughput and latency percentiles, as a Series.

        ``throughput`` is finished (ok + failed) jobs per second of wall time, from the
        first submission to the last job's end (worker start-up excluded). Each latency
        percentile comes with its confidence interval (``latency_p95_s_ci_low`` and
        ``_ci_high``, 95 %, from order statistics: see :func:`qlab.core.stats.latency_cis`).
        """

        from qlab.trace import summary

        if "_cols" in self.__dict__ or self._trace is not None:  # the arrays, no frame
            arrays = summary.arrays_of_columns(self._cols, self.meta)
        else:
            arrays = summary.arrays_of_frames(self.jobs, self.attempts)
        workers = self.meta.get("workers") or 1
        data = summary.summarize(arrays, self.wall_s, workers)
        from qlab.trace.summary_view import Summary

        return Summary(data, name="summary", dtype=object)

    @cached_property
    def plot(self) -> Any:
        """Charts of this run: ``run.plot.timeline()``, ``.latency()``, ``.queue_depth()``."""
        from qlab.plot import RunPlots

        return RunPlots(self)

    def to_perfetto(self, path: str | Path, max_attempts: int = 100_000) -> Path:
        """Write the run as Chrome trace-event JSON, for ui.perfetto.dev: a track per
        worker, a slice per attempt, retry flows, counter tracks; at most
        ``max_attempts`` attempts (those that started first). See :mod:`qlab.perfetto`."""
        from qlab.trace.perfetto.export import to_perfetto

        return to_perfetto(self, path, max_attempts=max_attempts)

    def save(self, path: str | Path, format: str = "parquet") -> Path:
        """Save to the folder ``path``: jobs and attempts tables plus meta.

        Kept results (``keep_results=True``) that are plain JSON values (dicts, lists,
        numbers, text) are stored as JSON text and come back exactly as they were.

        Args:
            path: a folder (created if missing); a name ending in ``.csv``, ``.parquet``
                or ``.json`` is refused (it reads as one file, which a run is not).
            format: ``"parquet"`` (meta in the files' schema metadata and meta.json) or
                ``"csv"`` (meta.json beside the tables).
        """
        if format not in ("parquet", "csv"):
            raise ValueError(f"format must be 'parquet' or 'csv', got {format!r}")
        folder = Path(path)
        if folder.suffix.lower() in _FILE_SUFFIXES:
            raise ValueError(
                f"path {str(path)!r} names a file, but a run is saved as a folder of tables "
                "(jobs, attempts, meta.json): pass a folder such as "
                f"{str(folder.with_suffix(''))!r}, with format='csv' for CSV tables"
            )
        folder.mkdir(parents=True, exist_ok=True)
        jobs = encode_results(self.jobs)
        extra = {"format": format} | ({"results": "json"} if jobs is not None else {})
        meta = json.dumps(dict(self.meta, **extra), default=str)
        other = "csv" if format == "parquet" else "parquet"
        for name, df in (
            ("jobs", self.jobs if jobs is None else jobs),
            ("attempts", self.attempts),
        ):
            write_frame(df, folder / f"{name}.{format}", meta)
            (folder / f"{name}.{other}").unlink(missing_ok=True)  # an earlier save's
        (folder / "meta.json").write_text(meta)
        return folder

    def __repr__(self) -> str:
        from qlab.core import fmt

        s = self.summary()
        m = self.meta
        pending = s.get("pending", 0)
        return (
            f"<qlab.Run {m.get('backend')} workers={m.get('workers')}: "
            f"{fmt.plural(s['jobs'], 'job')}, {fmt.count(s['ok'])} ok, "
            f"{fmt.count(s['failed'])} failed, {fmt.count(s['cancelled'])} cancelled, "
            + (f"{fmt.count(pending)} pending, " if pending else "")
            + f"{fmt.rate(s['throughput'])}>"
        )

    def _repr_html_(self) -> str:
        """A headline and the summary as a formatted table (units, separators); the
        raw values stay in ``summary()``, ``jobs`` and ``attempts``."""
        import html

        return f"<p>{html.escape(repr(self))}</p>" + self.summary()._repr_html_()


def load_saved(path: str | Path) -> Run:
    """Load a Run saved with :meth:`Run.save` (Parquet or CSV); ``qlab.load_run``
    (:func:`qlab.queues.history.load_run`) also reads a durable queue's URL.

    Raises:
        FileNotFoundError: no saved run there (no meta.json).
        ValueError: a damaged saved run (the message names the folder and what is wrong).
    """
    folder = Path(path)
    if not (folder / "meta.json").exists():
        raise FileNotFoundError(f"path {str(path)!r} holds no saved qlab run (no meta.json)")
    from qlab.trace.hosts import with_host  # a run saved before the host column: from meta

    try:
        meta = json.loads((folder / "meta.json").read_text())
        if not isinstance(meta, dict):
            raise TypeError(f"meta.json holds a {type(meta).__name__}, not an object")
        fmt = meta.get("format") or ("parquet" if (folder / "jobs.parquet").exists() else "csv")
        jobs = read_frame(folder / f"jobs.{fmt}")
        if meta.pop("results", None) == "json":  # kept results saved as JSON text
            jobs = decode_results(jobs)
        attempts = read_frame(folder / f"attempts.{fmt}")
        jobs, attempts = with_host(jobs, meta), with_host(attempts, meta)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # (ArrowInvalid: a ValueError)
        raise ValueError(f"path {str(path)!r} holds a damaged saved run "
                         f"({type(exc).__name__}: {exc})") from exc  # fmt: skip
    run = Run(None, {}, meta.get("wall_s", math.nan), frames=(jobs, attempts))
    run.meta = meta
    return run
