"""Where the time goes, in the two cases that miss their targets (issue 17).

1. Sleep 1 ms on 16 threads: how long does each wake-up wait? A ``time.sleep(0.001)``
   that returns late returned late because its thread waited for the GIL (or the
   scheduler) after the timer fired. We time every sleep inside the handler, on qlab's
   thread backend and on bare ``queue.Queue`` threads (the Go design in Python), side
   by side, and report the mean and p95 overshoot, and what each attempt costs the
   worker between sleeps (wall time of the attempt minus the sleep itself).
2. The seed workload on 2 processes: the parent's CPU time per batch, against the
   workers' CPU time per batch (the parent's share is what its workers lose on 2
   cores).

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

from jobs import seed_job  # noqa: E402

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


def seed_case(jobs: int) -> None:
    import qlab

    t_cpu = time.process_time()
    run = qlab.run(seed_job, range(jobs), workers=2, backend="process", retry=3)
    parent = time.process_time() - t_cpu
    batches = run.meta["batches"]
    workers_cpu = float(run.attempts.cpu_s.sum())
    print(
        f"seed, 2 processes: {run.summary()['throughput']:,.0f} jobs/s; {batches} batches; "
        f"parent CPU {parent / batches * 1e3:.2f} ms per batch (frames built included), "
        f"workers' CPU {workers_cpu / batches * 1e3:.2f} ms per batch: the parent costs "
        f"{parent / (parent + workers_cpu):.1%} of the CPU"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=2000)
    p.add_argument("--workers", type=int, default=16)
    args = p.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    sleep_case(args.jobs, args.workers)
    seed_case(args.jobs)


if __name__ == "__main__":
    main()
