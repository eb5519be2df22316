"""Running a sweep: calibrate or warm up, measure one point's repeats, assemble the rows.

:class:`Sweeper` holds the state of one sweep between :func:`qlab.lab.sweep.sweep`'s
steps: the plan of jobs per run, the budget, the rows of the points measured so far,
and where the sweep is (for the message of an interrupt).

Example:
    >>> from qlab.lab.sweep_options import check_options
    >>> o = check_options(abs, workers=[1, 2], backend="thread", jobs=10, repeats=2,
    ...                   precision=None, max_repeats=10, confidence=0.95, queue=None,
    ...                   budget=None, run_options={})
    >>> s = Sweeper(o, {"seed": 0}, hooks=[], stop=None, keep_runs=False, bar=None)
    >>> s.prepare(warmup=False, meta={})
    >>> s.begin("thread", "memory")
    >>> for w in o.workers:
    ...     s.point("thread", "memory", w)
    >>> s.result({}).df["workers"].tolist()
    [1, 1, 2, 2]
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from qlab.core.stats import is_precise
from qlab.engine import runner
from qlab.lab.machine import LoadMeter
from qlab.lab.sweep_options import SweepOptions, backend_name
from qlab.lab.sweep_plan import CALIBRATION_SHARE, PLAN_SHARE, Budget, JobsPlan, plan_jobs
from qlab.lab.sweep_queues import RunQueues
from qlab.lab.sweep_result import COLUMNS, Sweep, frame
from qlab.lab.sweep_stats import finish_point
from qlab.trace.hosts import placement

__all__ = ["DEFAULT_JOBS", "HOW", "Sweeper"]

log = logging.getLogger("qlab.lab.sweep")
plan_log = logging.getLogger("qlab.lab.sweep.plan")

#: Jobs per run when neither ``jobs=`` nor a budget plans them; the most a plan gives.
DEFAULT_JOBS = 1000
HOW = (
    "throughput = (ok + failed) / wall_s of each run; wall_s from the first submission "
    "to the last job's end (time.perf_counter), worker start-up excluded; "
    "one unrecorded warm-up (or calibration) run per backend when warmup=True or planned"
)


class Sweeper:
    """One sweep's runs, point by point (see the module's docstring)."""

    def __init__(
        self,
        o: SweepOptions,
        options: dict[str, Any],
        hooks: list[Any],
        stop: Any,
        keep_runs: bool,
        bar: Any,
    ) -> None:
        self.o, self.options, self.stop, self.bar = o, options, stop, bar
        self.hooks = [*hooks, bar] if bar is not None else list(hooks)
        self.keep_runs = keep_runs
        self.fresh = RunQueues(o.queues)
        self.fresh.prepare()
        self.plans: dict[tuple[str, str], JobsPlan] = {}
        self.budget = Budget(None, 0)
        self.rows: list[dict[str, Any]] = []
        self.runs: list[Any] = []
        self.at = "start"
        self._point: list[dict[str, Any]] = []
        self._latencies: list[Any] = []
        self._cut = False
        self._warmup = False

    # -- before the points: calibration or warm-up, and the plan --------------------------

    def prepare(self, warmup: bool, meta: dict[str, Any]) -> None:
        """Calibrate and plan (no ``jobs=``, a budget) or warm up; state the plan."""
        o = self.o
        t0 = time.perf_counter()
        if o.planned:
            self._note(f"sweep: calibrating on {len(o.pairs)} backend(s)…")
            probes = {(backend_name(b), q): self._calibrate(b, q) for b, q in o.pairs}
            room = (o.budget_s - (time.perf_counter() - t0)) * PLAN_SHARE / len(o.pairs)  # type: ignore[operator]  # planned: a budget
            self.plans = {
                key: plan_jobs(o.workers, x1=x1, xmax=xm, repeats=o.repeats,
                               seconds=max(room, 0.0), overhead_s=over, max_jobs=DEFAULT_JOBS)
                for key, (x1, xm, over) in probes.items()
            }  # fmt: skip
            meta["jobs_per_run"] = {f"{k[0]} {k[1]}": {str(w): j for w, j in p.jobs.items()}
                                    for k, p in self.plans.items()}  # fmt: skip
        for b, q in [] if o.planned else o.pairs:
            jobs = DEFAULT_JOBS if o.jobs is None else o.jobs
            self.plans[(backend_name(b), q)] = JobsPlan(
                dict.fromkeys(o.workers, jobs), o.repeats, 0
            )
        self._warmup = warmup and not o.planned  # a planned sweep's calibration warmed up
        left = None if o.budget_s is None else o.budget_s - (time.perf_counter() - t0)
        self.budget = Budget(left, len(o.pairs) * len(o.workers))
        meta["plan"] = self._describe()
        meta["calibration_s"] = time.perf_counter() - t0
        plan_log.info("sweep plan: %s", meta["plan"])
        if self.bar is not None:
            self.bar.announce(len(o.pairs) * len(o.workers) * o.repeats, f"plan: {meta['plan']}")

    def begin(self, b: Any, q: str) -> None:
        """Before the points of (b, q): the warm-up run, unrecorded, on the most workers
        (a planned sweep's calibration was its warm-up)."""
        if self._warmup:
            top = self.o.workers[-1]
            jobs = self.plans[(backend_name(b), q)].jobs[top]
            self.at = f"warm-up of {self._where(b, q)}"
            self._run(b, q, top, range(min(jobs, 10 * top)), False)

    def _calibrate(self, b: Any, q: str) -> tuple[float, float, float]:
        """Two short unrecorded runs, on 1 worker and on the most (the warm-up too):
        their throughputs and the larger overhead."""
        o = self.o
        each = CALIBRATION_SHARE * o.budget_s / (2 * len(o.pairs))  # type: ignore[operator]  # planned: a budget
        self.at = f"calibration of {self._where(b, q)}"
        x1, over1 = self._probe(b, q, 1, each)
        top = o.workers[-1]
        xmax, over2 = (x1, over1) if top == 1 else self._probe(b, q, top, each)
        return x1, xmax, max(over1, over2)

    def _probe(self, b: Any, q: str, w: int, seconds: float) -> tuple[float, float]:
        """Throughput (jobs/s) and overhead (s beyond the jobs) of a run of about
        ``seconds`` on ``w`` workers; a small queue, so that the deadline is kept."""
        t = time.perf_counter()
        run = self._run(b, q, w, _until(seconds, 20 * DEFAULT_JOBS), False,
                        queue_size=max(2 * w, 8))  # fmt: skip
        elapsed = time.perf_counter() - t
        throughput = float(run.summary()["throughput"])
        return (throughput if throughput > 0 else 1e-9), max(elapsed - run.wall_s, 0.0)

    def _describe(self) -> str:
        o = self.o
        points = len(o.pairs) * len(o.workers)
        if not o.planned:
            jobs = DEFAULT_JOBS if o.jobs is None else o.jobs
            budget = "no budget" if o.budget_s is None else "the budget limits extra repeats"
            return f"{points} points × {jobs:,} jobs × {o.repeats} repeats ({budget})"
        plans = list(self.plans.values())
        merged = JobsPlan({i: j for i, j in enumerate(j for p in plans for j in p.jobs.values())},
                          o.repeats, sum(p.estimate_s for p in plans))  # fmt: skip
        return merged.describe(points, o.budget_s)

    # -- one point: its repeats, until precise, planned, or out of budget -----------------

    def point(self, b: Any, q: str, w: int) -> None:
        """Measure the point (b, q, w): the repeats asked for, then more while they are
        planned (or needed for ``precision``) and the budget has room for them."""
        o = self.o
        jobs = self.plans[(backend_name(b), q)].jobs[w]
        must = o.repeats if o.repeats_given else 1
        self.budget.start_point()
        last_s = 0.0
        for i in range(o.most_repeats):
            if i >= must and not self.budget.allows(last_s):
                self._cut = True
                plan_log.info("budget: %s stops after %d repeat(s)", self._where(b, q, w), i)
                break
            self.at = here = f"{self._where(b, q)} workers={w} repeat={i}"
            t = time.perf_counter()
            meter = LoadMeter()
            run = self._run(b, q, w, range(jobs), True)
            last_s = time.perf_counter() - t
            self._point.append(_row(run, backend_name(b), q, w, i) | meter.stop())
            self._latencies.append(run.jobs["latency_s"].to_numpy())
            self.at = f"the pause after {here}"
            if self.bar is not None:
                log.info("sweep %s: %.1f jobs/s", here, self._point[-1]["throughput"])
            thr = [r["throughput"] for r in self._point]
            if i + 1 >= o.repeats and (
                o.precision is None or is_precise(thr, o.precision, o.confidence)
            ):
                break
        self.finish_point()

    def finish_point(self) -> None:
        """Turn the point's runs into rows, with their intervals and budget flag."""
        o = self.o
        rows = finish_point(self._point, self._latencies, o.confidence, o.precision,
                            self.options.get("seed"))  # fmt: skip
        for row in rows:
            row["budget_cut"] = self._cut
            row["precise"] = bool(row["precise"]) and not self._cut
        self._cut = False
        self.rows += rows

    # -- runs, and the result -----------------------------------------------------------

    def _run(self, b: Any, q: str, w: int, payloads: Any, recorded: bool, **extra: Any) -> Any:
        opts = {**self.options, **extra}
        hooks = self.hooks if recorded else []
        run = runner.run(self.o.handler, payloads, w, backend=b, hooks=hooks, stop=self.stop,
                         queue=self.fresh(q), **opts)  # fmt: skip
        why = run.meta.get("interrupted")
        if why:  # qlab.run returns on Ctrl-C: the sweep ends here
            raise KeyboardInterrupt(why)
        if recorded and self.keep_runs:
            self.runs.append(run)
        return run

    def _where(self, b: Any, q: str, w: int | None = None) -> str:
        from qlab.queues import redact

        name = (
            backend_name(b) if len(self.o.queues) == 1 else f"{backend_name(b)} queue={redact(q)}"
        )
        return name if w is None else f"{name} workers={w}"

    def _note(self, text: str) -> None:
        plan_log.info(text)
        if self.bar is not None:
            self.bar.note(text)

    def close(self) -> None:
        """Close the progress bar (a sweep may end early)."""
        if self.bar is not None:
            self.bar.close()

    def result(self, meta: dict[str, Any]) -> Sweep:
        """The :class:`Sweep` of the rows measured so far."""
        return Sweep(frame(self.rows), meta, self.runs)


def _until(seconds: float, cap: int) -> Iterator[int]:
    """0, 1, 2... until ``seconds`` have passed since the first was taken (or ``cap``)."""
    end = time.perf_counter() + seconds
    for i in range(cap):
        if i and time.perf_counter() >= end:
            return
        yield i


def _row(run: Any, backend: str, queue: str, workers: int, repeat: int) -> dict[str, Any]:
    from qlab.queues import redact

    s = run.summary()
    row = {"backend": backend, "queue": redact(queue), "workers": workers, "repeat": repeat}
    row |= {c: s[c] for c in COLUMNS if c in s.index and c not in row}
    return row | placement(run.meta)  # hosts and cores the run used (qlab.hosts)
