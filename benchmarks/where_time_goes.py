"""Where the time goes, in the two cases that miss their targets (issue 17).

1. Sleep 1 ms on 16 threads: how long does each wake-up wait? A ``time.sleep(0.001)``
   that returns late returned late because its thread waited for the GIL (or the
   scheduler) after the timer fired. We time every sleep inside the handler, on qlab's
   thread backend and on bare ``queue.Queue`` threads (the Go design in Python), side
   by side, and report the mean and p95 overshoot, and what each attempt costs the
   worker between sleeps (wall time of the attempt minus the sleep itself).
   Between attempts: the gaps in qlab's own trace between one attempt's end and the
   next one's start on the same worker, inside a batch and at a batch boundary (where
   the driver settles, records and takes the next batch), and how long after the
   trace's origin the first attempt starts.
2. The seed workload on 2 processes: the parent's CPU time per batch, against the
   workers' CPU time per batch (the parent's share is what its workers lose on 2
   cores), and the parent's CPU per batch by part.
3. 200,000 no-op jobs on 2 warm processes: the parent's CPU by part (pickling the
   batch, unpickling its columns, settling and recording, taking from the queue,
   feeding it) and the workers' CPU per job (from /proc, via psutil).

The parts are timed by wrapping the engine's functions (``thread_time`` in and out),
which adds about a microsecond per call: a few percent of each part.

Usage::

    .venv/bin/python benchmarks/where_time_goes.py [--jobs 2000] [--workers 16]

It prints a few lines; benchmarks/README.md records a run and what it means.
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]


SLEEP_S = 0.001


class TimedSleep:
    """A handler that sleeps 1 ms and notes how late each sleep returned."""

    def __init__(self) -> None:
        self.late: list[float] = []

    def __call__(self, payload: int) -> None:
        t = time.perf_counter()
        time.sleep(SLEEP_S)
        self.late.append(time.perf_counter() - t - SLEEP_S)


def _describe(name: str, late: list[float], wall: float, n: int, workers: int) -> None:
    late_us = sorted(x * 1e6 for x in late)
    p95 = late_us[int(0.95 * (len(late_us) - 1))]
    ideal = workers / SLEEP_S
    print(
        f"{name:<22} {n / wall:8,.0f} jobs/s = {n / wall / ideal:.2f}x ideal; sleep returns "
        f"late by {statistics.fmean(late_us):6.0f} us on average (p95 {p95:,.0f} us)"
    )


def sleep_case(jobs: int, workers: int) -> None:
    import qlab

    h = TimedSleep()
    run = qlab.run(h, range(jobs), workers=workers)
    a = run.attempts
    overhead = (a.duration_s.mean() - SLEEP_S) * 1e6 - statistics.fmean(h.late) * 1e6
    _describe("qlab thread", h.late, run.wall_s, jobs, workers)
    print(f"{'':<22} per attempt, qlab's own time beside the sleep: {overhead:.1f} us")

    h2 = TimedSleep()
    q: queue.Queue = queue.Queue()
    for i in range(jobs):
        q.put(i)

    def worker() -> None:
        while True:
            try:
                i = q.get_nowait()
            except queue.Empty:
                return
            h2(i)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    _describe("queue.Queue threads", h2.late, time.perf_counter() - t, jobs, workers)


def gaps_case(jobs: int, workers: int) -> None:
    """Gaps between a worker's consecutive attempts in qlab's trace (sleep 1 ms)."""
    import numpy as np

    import qlab

    retry = qlab.Retry(max_retries=3, backoff=None)
    run = qlab.run(qlab.workloads.sleep(ms=1), range(jobs), workers=workers, retry=retry)
    a = run.attempts.sort_values(["worker", "start_s"])
    gaps = []
    for _, g in a.groupby("worker"):
        gaps.append(g.start_s.to_numpy()[1:] - g.end_s.to_numpy()[:-1])
    us = np.concatenate(gaps) * 1e6
    inner, edge = us[us < 30], us[us >= 30]  # a batch boundary costs far more than 30 us
    print(
        f"{'':<22} between attempts: {len(inner)} gaps inside a batch, mean {inner.mean():.1f} us;"
        f" {len(edge)} at a batch boundary ({run.meta['batches']} batches), mean "
        f"{edge.mean() if len(edge) else 0:.0f} us; first attempt {a.start_s.min() * 1e3:.2f} ms "
        f"after the origin; attempts {a.duration_s.mean() * 1e6:.0f} us on average"
    )


class Parts:
    """Wraps functions to add up the calling thread's CPU time spent in each."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._undo: list[tuple[object, str, object]] = []

    def wrap(self, owner: object, name: str, label: str) -> None:
        fn = getattr(owner, name)
        clock = time.thread_time

        def timed(*args, **kwargs):
            c = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                self.cpu[label] = self.cpu.get(label, 0.0) + clock() - c
                self.calls[label] = self.calls.get(label, 0) + 1

        self._undo.append((owner, name, fn))
        setattr(owner, name, timed)

    def undo(self) -> None:
        for owner, name, fn in reversed(self._undo):
            setattr(owner, name, fn)

    def report(self, per: int, unit: str) -> str:
        return (
            ", ".join(f"{k} {v / per * 1e6:.1f}" for k, v in self.cpu.items()) + f" us per {unit}"
        )


def _parent_parts() -> Parts:
    from qlab.backends.process import backend as process
    from qlab.engine import drivers
    from qlab.queues import memory as jobqueue
    from qlab.trace import recorder as trace

    parts = Parts()
    parts.wrap(process, "dumps", "pickle batch")
    parts.wrap(process, "unpack", "unpickle columns")
    parts.wrap(drivers, "settle", "settle")
    parts.wrap(trace.Recorder, "add", "record")
    parts.wrap(drivers.Drivers, "take_ahead", "take ahead")
    parts.wrap(jobqueue.MemoryQueue, "put", "feed")
    parts.wrap(drivers.Drivers, "_run", "run_batch (all, incl. the above)")
    return parts


def noop_process_case(jobs: int) -> None:
    import psutil

    import qlab
    from qlab.backends.process.backend import warm_workers

    retry = qlab.Retry(max_retries=3, backoff=None)
    handler = qlab.workloads.noop()
    with warm_workers():
        qlab.run(handler, range(1000), workers=2, backend="process", retry=retry)
        parts = _parent_parts()
        try:
            c, t = time.process_time(), time.perf_counter()
            first = qlab.run(handler, range(1), workers=2, backend="process", retry=retry)
            procs = [psutil.Process(p[0]) for p in first.meta["pids"].values()]
            w0 = sum(sum(p.cpu_times()[:2]) for p in procs)
            c, t = time.process_time(), time.perf_counter()
            run = qlab.run(handler, range(jobs), workers=2, backend="process", retry=retry)
            wall, parent = time.perf_counter() - t, time.process_time() - c
            w1 = sum(sum(p.cpu_times()[:2]) for p in procs)
        finally:
            parts.undo()
    batches = run.meta["batches"]
    print(
        f"no-op, 2 processes, {jobs:,} jobs: {jobs / wall:,.0f} jobs/s (qlab.run only); "
        f"{batches} batches ({jobs / batches:,.0f} jobs each); CPU per job: parent "
        f"{parent / jobs * 1e9:.0f} ns, workers {(w1 - w0) / jobs * 1e9:.0f} ns\n"
        f"{'':<22} parent by part: {parts.report(batches, 'batch')}"
    )


def seed_case(jobs: int) -> None:
    import qlab

    parts = _parent_parts()
    try:
        t_cpu = time.process_time()
        retry = qlab.Retry(max_retries=3, backoff=None)  # as bench.py runs it
        run = qlab.run(
            qlab.workloads.seed(), range(jobs), workers=2, backend="process", retry=retry
        )
        parent = time.process_time() - t_cpu
    finally:
        parts.undo()
    batches = run.meta["batches"]
    workers_cpu = float(run.attempts.cpu_s.sum())
    print(
        f"seed, 2 processes: {run.summary()['throughput']:,.0f} jobs/s; {batches} batches; "
        f"parent CPU {parent / batches * 1e3:.2f} ms per batch (frames built included), "
        f"workers' CPU {workers_cpu / batches * 1e3:.2f} ms per batch: the parent costs "
        f"{parent / (parent + workers_cpu):.1%} of the CPU\n"
        f"{'':<22} parent by part: {parts.report(batches, 'batch')}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=2000)
    p.add_argument("--workers", type=int, default=16)
    args = p.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    sleep_case(args.jobs, args.workers)
    gaps_case(args.jobs, args.workers)
    gaps_case(args.jobs, 1)
    seed_case(args.jobs)
    noop_process_case(200_000)


if __name__ == "__main__":
    main()
