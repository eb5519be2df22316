"""Do the wins hold as the work grows? No-op jobs at 1k, 10k, 100k and 1M, at 1, 4 and
16 workers, on the thread and the process backend (issue 17).

Each point runs in a fresh interpreter: imports, one warm-up run of 1,000 jobs (it
starts the process workers, kept warm with ``warm_workers()``, as bench.py does),
then timed rounds (as many as fit in about a second, at least 1, at most 5; the
median is reported). Per point:

* ``jobs_per_s``: jobs / ``qlab.run`` seconds (start-up, ``meta["startup_s"]``,
  subtracted as bench.py does); ``jobs_per_s_traced``: the same with building
  ``run.jobs``, ``run.attempts`` and ``run.summary()`` inside the timing.
* ``trace_b_per_attempt``: the bytes the trace holds while the run goes on (the
  recorders' compact columns and the per-job columns, counted from their buffers)
  per attempt; ``attempts_b_per_attempt`` and ``jobs_b_per_job``: the DataFrames'
  ``memory_usage(deep=True)`` per attempt and per job (the figures of the earlier
  round: 63 B/attempt and 71 B/job).
* ``rss_delta_b_per_job``: the process's peak RSS (``ru_maxrss``, the kernel's
  high-water mark) after the last round minus its RSS before the first, per job:
  the parent only (a worker process holds no trace). Meaningful from 100k jobs;
  at 1k and 10k it is page noise.

Usage::

    .venv/bin/python benchmarks/scaling.py                 # all points (~2-4 min)
    .venv/bin/python benchmarks/scaling.py --max-jobs 100000 --backends thread

Results go to ``benchmarks/results/scaling.csv`` (``#`` lines: provenance).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIZES = (1_000, 10_000, 100_000, 1_000_000)
WORKERS = (1, 4, 16)
COLUMNS = [
    "backend",
    "workers",
    "n_jobs",
    "rounds",
    "wall_s",
    "jobs_per_s",
    "jobs_per_s_traced",
    "attempts",
    "batches",
    "trace_b_per_attempt",
    "attempts_b_per_attempt",
    "jobs_b_per_job",
    "rss_delta_b_per_job",
]

_CHILD = r"""
import json, resource, statistics, sys, time
from array import array
sys.path.insert(0, {root!r})
import qlab
from qlab.backends.process.backend import warm_workers

handler = qlab.workloads.noop()
retry = qlab.Retry(max_retries=3, backoff=None)

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()

def size(x):
    if isinstance(x, array):
        return x.itemsize * len(x)
    if isinstance(x, bytearray | bytes):
        return len(x)
    if isinstance(x, list):
        return sys.getsizeof(x) + sum(size(c) for c in x)
    return sys.getsizeof(x)

def trace_bytes(trace):
    total = size(trace.submitted) + size(trace.status)
    for rec in trace.recorders:
        total += sum(size(getattr(rec, c)) for c in ("job_id", "attempt", "t0", "t1", "cpu", "out"))
    return total

def one(n, traced):
    t = time.perf_counter()
    run = qlab.run(handler, range(n), workers={workers}, backend={backend!r}, retry=retry,
                   seed=0, progress=False)
    run_s = time.perf_counter() - t - float(run.meta.get("startup_s") or 0.0)
    run.trace_bytes = trace_bytes(run._trace)  # before the frames free the recorders
    if traced:
        run.jobs, run.attempts
        run.summary()
    return run_s, time.perf_counter() - t - float(run.meta.get("startup_s") or 0.0), run

with warm_workers():
    one(1000, True)
    before = rss()
    n = {n_jobs}
    walls, traced, run = [], [], None
    spent = 0.0
    while len(walls) < 5 and (spent < 1.0 or not walls):
        w, wt, run = one(n, True)
        walls.append(w); traced.append(wt); spent += wt
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    att, jobs = run.attempts, run.jobs
    print(json.dumps(dict(
        rounds=len(walls),
        wall_s=statistics.median(walls),
        traced_s=statistics.median(traced),
        attempts=len(att),
        batches=int(run.meta.get("batches") or 0),
        trace_bytes=run.trace_bytes,
        attempts_bytes=int(att.memory_usage(deep=True).sum()),
        jobs_bytes=int(jobs.memory_usage(deep=True).sum()),
        rss_delta=max(0, peak - before),
    )))
"""


def point(backend: str, workers: int, n_jobs: int) -> dict[str, object]:
    code = _CHILD.format(root=str(ROOT), backend=backend, workers=workers, n_jobs=n_jobs)
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "backend": backend,
        "workers": workers,
        "n_jobs": n_jobs,
        "rounds": r["rounds"],
        "wall_s": round(r["wall_s"], 6),
        "jobs_per_s": round(n_jobs / r["wall_s"]),
        "jobs_per_s_traced": round(n_jobs / r["traced_s"]),
        "attempts": r["attempts"],
        "batches": r["batches"],
        "trace_b_per_attempt": round(r["trace_bytes"] / r["attempts"], 1),
        "attempts_b_per_attempt": round(r["attempts_bytes"] / r["attempts"], 1),
        "jobs_b_per_job": round(r["jobs_bytes"] / n_jobs, 1),
        "rss_delta_b_per_job": round(r["rss_delta"] / n_jobs, 1),
    }


def provenance() -> list[str]:
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "qlab", "benchmarks"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return [
        f"git_commit: {commit}{'+dirty' if dirty else ''}",
        f"cpu_count: {os.cpu_count()}",
        f"python: {sys.version.split()[0]}",
        f"started: {time.strftime('%Y-%m-%dT%H:%M:%S%z')}",
        f"loadavg_start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        "what: no-op jobs, qlab.run; see the docstring of benchmarks/scaling.py",
    ]


def markdown(path: Path) -> str:
    """A scaling CSV as the README's table: jobs/s (run only / traces built) by size,
    and the bytes per attempt and per job at the largest size."""
    with path.open() as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    sizes = sorted({int(r["n_jobs"]) for r in rows})
    head = " | ".join(f"{n:,}" for n in sizes)
    out = [f"| backend | workers | {head} | trace B/attempt | frames B/attempt, B/job |"]
    out.append("|---|---|" + "---|" * len(sizes) + "---|---|")
    for key in dict.fromkeys((r["backend"], r["workers"]) for r in rows):
        mine = {int(r["n_jobs"]): r for r in rows if (r["backend"], r["workers"]) == key}

        def cell(r: dict[str, str]) -> str:
            return f"{int(r['jobs_per_s']) / 1e6:.2f} / {int(r['jobs_per_s_traced']) / 1e6:.2f}"

        cells = " | ".join(cell(mine[n]) if n in mine else "-" for n in sizes)
        big = mine[max(mine)]
        out.append(
            f"| {key[0]} | {key[1]} | {cells} | {big['trace_b_per_attempt']} | "
            f"{big['attempts_b_per_attempt']}, {big['jobs_b_per_job']} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", default="thread,process")
    ap.add_argument("--max-jobs", type=int, default=SIZES[-1])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "scaling.csv")
    ap.add_argument("--markdown", type=Path, help="print this CSV as the README's table")
    args = ap.parse_args()
    if args.markdown:
        print(markdown(args.markdown))
        return
    head = provenance()
    rows = []
    print(f"{'backend':8} {'w':>3} {'jobs':>9} {'jobs/s':>11} {'traced':>11} "
          f"{'B/att':>7} {'df B/att':>8} {'df B/job':>8} {'RSS B/job':>9}")  # fmt: skip
    for backend in args.backends.split(","):
        for workers in WORKERS:
            for n in (s for s in SIZES if s <= args.max_jobs):
                r = point(backend, workers, n)
                rows.append(r)
                print(
                    f"{backend:8} {workers:>3} {n:>9,} {r['jobs_per_s']:>11,} "
                    f"{r['jobs_per_s_traced']:>11,} {r['trace_b_per_attempt']:>7} "
                    f"{r['attempts_b_per_attempt']:>8} {r['jobs_b_per_job']:>8} "
                    f"{r['rss_delta_b_per_job']:>9}",
                    flush=True,
                )
    head.append(f"loadavg_end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        f.writelines(f"# {line}\n" for line in head)
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
