"""Progress bars for runs and sweeps, on ``tqdm.auto``.

``tqdm.auto`` draws a widget in Jupyter and a text bar in a terminal. Both hooks here
only observe the engine (see :mod:`qlab.hooks`): the engine calls ``on_progress`` a few
times a second from its coordinator thread, never once per job.

- :class:`TqdmProgress`: one bar per run. Its total is the number of jobs requested
  (``total=``, or the engine's ``jobs_total``), else the jobs submitted so far (a
  generator of unknown length grows it); its postfix ok / failed / retries. The one
  rate it shows is tqdm's, in jobs/s; it closes when the run ends.
- :class:`SweepProgress`: one bar over the points of a sweep, advanced when each run
  ends, with the current run's jobs, then its throughput, in its postfix. It shows
  that one rate (jobs/s of the last run), not tqdm's points/s.

Create a hook (and so its bar) in the thread that will show it: in Jupyter, a widget
displayed from a background thread lands in whichever cell is running. In a widget app
use :class:`qlab.widgets.LiveView` instead.

Example:
    >>> import io, qlab
    >>> from qlab.hooks.progress import TqdmProgress
    >>> bar = TqdmProgress(file=io.StringIO())
    >>> _ = qlab.run(qlab.workloads.noop(), range(50), hooks=[bar])
    >>> bar.bar.n, bar.bar.total
    (50, 50)
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from typing import Any

from qlab.hooks.bars import make_bar
from qlab.hooks.base import Hook, LogProgress

__all__ = ["SweepProgress", "TqdmProgress", "final_counts", "progress_hook"]

log = logging.getLogger("qlab")
_ZERO = dict.fromkeys(("submitted", "ok", "failed", "cancelled", "retries", "attempts"), 0)


def _tqdm_class(tqdm_class: Any) -> Any:
    if tqdm_class is not None:
        return tqdm_class
    from tqdm.auto import tqdm  # ImportError without tqdm: the engine falls back to logs

    return tqdm


def final_counts(run: Any, fallback: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The counters of a finished run, as ``on_progress`` reports them.

    With a ``fallback`` (the last counters seen), a run whose tables cannot be built
    gives the fallback and a warning on the ``qlab`` logger instead of an error: a
    display must not break the run it shows (``on_end`` runs inside the engine).
    """
    if fallback is not None:
        try:
            return final_counts(run)
        except Exception:
            log.warning("progress: could not count the run's jobs", exc_info=True)
            return dict(fallback)
    status = run.jobs["status"].value_counts()
    attempts = run.attempts
    return {
        "submitted": len(run.jobs),
        "ok": int(status.get("ok", 0)),
        "failed": int(status.get("failed", 0)),
        "cancelled": int(status.get("cancelled", 0)),
        "retries": int((attempts["attempt"] > 1).sum()),
        "attempts": len(attempts),
        "unfinished": int(status.get("pending", 0)),
        "elapsed_s": float(run.wall_s),
    }


def rate(counts: Mapping[str, Any]) -> float:
    """Finished (ok + failed) jobs per second since the run started."""
    elapsed = counts.get("elapsed_s") or 0.0
    return (counts["ok"] + counts["failed"]) / elapsed if elapsed > 0 else math.nan


def _set_total(bar: Any, total: int) -> None:
    """Change a bar's total in place (``reset`` would also zero its count and clock)."""
    bar.total = total
    container = getattr(bar, "container", None)  # tqdm.notebook: [label, IntProgress, text]
    if container is not None and total:
        progress = container.children[1]
        progress.max = total
        if progress.bar_style == "info":  # tqdm's style for an unknown total
            progress.bar_style = ""
            progress.layout.width = None


class TqdmProgress(Hook):
    """A tqdm bar per run: done / requested jobs, with ok, failed and retries.

    The bar shows one rate: tqdm's jobs/s (the postfix does not add a second one).

    Args:
        desc: the bar's label; default ``"<backend> x<workers>"``.
        total: the number of jobs requested, when the engine cannot know it.
        tqdm_class: the bar class (default ``tqdm.auto.tqdm``; tests pass a fake).
        **tqdm_kwargs: passed to the bar (``file=``, ``leave=``, ``position=``, ...).

    Attributes:
        bar: the current (or last) bar, None before the first run starts.

    Raises:
        ImportError: tqdm is not installed (and no ``tqdm_class`` was given).
    """

    shows_progress = True

    def __init__(
        self,
        desc: str | None = None,
        *,
        total: int | None = None,
        tqdm_class: Any = None,
        **tqdm_kwargs: Any,
    ):
        self._tqdm = _tqdm_class(tqdm_class)
        self._kwargs = {"unit": "job", **tqdm_kwargs}
        self.desc = desc
        self.total = total
        self.bar: Any = None
        self._total: int | None = total
        self._last: dict[str, Any] = dict(_ZERO)
        # on_end may come from another thread than on_progress (coordinator vs. caller)
        self._lock = threading.Lock()

    def on_start(self, meta: dict[str, Any]) -> None:
        desc = self.desc or f"{meta.get('backend', 'run')} x{meta.get('workers', '?')}"
        # known when the caller says so, or when the engine was given a sized input
        self._total = self.total or meta.get("jobs_total")
        with self._lock:
            self.bar = make_bar(self._tqdm, total=self._total, desc=desc, **self._kwargs)

    def on_progress(self, counts: dict[str, Any]) -> None:
        with self._lock:
            if self.bar is not None and not getattr(self.bar, "disable", False):
                self._show(counts)

    def on_end(self, run: Any) -> None:
        with self._lock:
            if self.bar is None:
                return
            counts = final_counts(run, self._last)
            self._total = counts["submitted"]  # what really ran: the final word
            self._show(counts)
            self.bar.close()

    def _show(self, counts: Mapping[str, Any]) -> None:
        self._last = dict(counts)
        bar = self.bar
        total = max(counts["submitted"], self._total or 0)
        if bar.total != total:
            _set_total(bar, total)
        done = counts["ok"] + counts["failed"] + counts["cancelled"]
        if done != bar.n:
            bar.update(done - bar.n)  # tqdm measures the rate (and ETA) from updates
        postfix = {"ok": counts["ok"], "failed": counts["failed"], "retries": counts["retries"]}
        if counts["cancelled"]:
            postfix["cancelled"] = counts["cancelled"]
        bar.set_postfix(postfix, refresh=True)


class SweepProgress(Hook):
    """One tqdm bar over the points (runs) of a sweep.

    Pass it in a sweep's (or any series of runs') ``hooks``: each run's end advances the
    bar by one point and shows its backend, workers and throughput; while a run goes, the
    postfix shows its jobs done. The bar closes by itself after ``total`` points; call
    :meth:`close` (or use it as a context manager) when a sweep stops early.

    Args:
        total: the number of points (runs) expected, if known.
        desc: the bar's label.
        tqdm_class: the bar class (default ``tqdm.auto.tqdm``).
        **tqdm_kwargs: passed to the bar.

    Example:
        >>> import io, qlab
        >>> from qlab.hooks.progress import SweepProgress
        >>> with SweepProgress(total=2, file=io.StringIO()) as points:
        ...     for w in (1, 2):
        ...         _ = qlab.run(qlab.workloads.noop(), range(20), workers=w, hooks=[points])
        >>> points.bar.n
        2
    """

    shows_progress = True

    def __init__(
        self,
        total: int | None = None,
        desc: str = "sweep",
        *,
        tqdm_class: Any = None,
        **tqdm_kwargs: Any,
    ) -> None:
        self._tqdm = _tqdm_class(tqdm_class)
        self._kwargs = {"unit": "point", **tqdm_kwargs}
        self.total = total
        self.desc = desc
        self.bar: Any = None
        self._point = ""
        self._lock = threading.Lock()

    def _open(self) -> Any:
        if self.bar is None:
            # no {rate_fmt}: points/s would be a second rate next to the run's jobs/s
            eta = "<{remaining}" if self.total else ""
            form = "{l_bar}{bar}| {n_fmt}/{total_fmt} runs [{elapsed}" + eta + "{postfix}]"
            kwargs = {"bar_format": form, **self._kwargs}
            self.bar = make_bar(self._tqdm, total=self.total, desc=self.desc, **kwargs)
        return self.bar

    def note(self, text: str) -> None:
        """Show a line of text above the bar (the sweep's calibration, its plan)."""
        import sys

        write = getattr(self.bar, "write", None) or getattr(self._tqdm, "write", None)
        if write is not None:  # where the bar draws (tqdm.write alone prints to stdout)
            write(text, file=self._kwargs.get("file") or sys.stderr)

    def announce(self, total: int, text: str) -> None:
        """The plan is known: ``total`` runs, said in ``text``; opens the bar with an ETA."""
        with self._lock:
            self.total = total
            if self.bar is not None and self.bar.total != total:
                _set_total(self.bar, total)
            self.note(text)
            self._open()

    def on_start(self, meta: dict[str, Any]) -> None:
        with self._lock:
            self._open()
            self._point = f"{meta.get('backend')} x{meta.get('workers')}"
            self.bar.set_postfix_str(f"{self._point}: starting", refresh=True)

    def on_progress(self, counts: dict[str, Any]) -> None:
        with self._lock:
            if self.bar is None:
                return
            done = counts["ok"] + counts["failed"] + counts["cancelled"]
            self.bar.set_postfix_str(
                f"{self._point}: {done:,}/{counts['submitted']:,} jobs", refresh=True
            )

    def on_end(self, run: Any) -> None:
        with self._lock:
            bar = self._open()
            if bar.total is not None and bar.n >= bar.total:
                _set_total(bar, bar.n + 1)  # more points than announced
            done = final_counts(run, {**_ZERO, "elapsed_s": 0.0})
            bar.set_postfix_str(f"{self._point}: {rate(done):,.0f} jobs/s", refresh=False)
            bar.update(1)
            if self.total is not None and bar.n >= self.total:
                bar.close()

    def close(self) -> None:
        """Close the bar (idempotent)."""
        with self._lock:
            if self.bar is not None:
                self.bar.close()

    def __enter__(self) -> SweepProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress_hook() -> Hook:
    """``progress=True``: a tqdm bar (a widget in Jupyter), else a log line.

    Example:
        >>> isinstance(progress_hook(), Hook)
        True
    """
    try:
        return TqdmProgress()
    except ImportError:
        return LogProgress()
