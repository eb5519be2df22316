"""What a durable queue costs: qlab on memory, SQLite and Redis queues, side by side.

Usage (from the repository root)::

    .venv/bin/python benchmarks/queue_bench.py            # 10,000 no-op, 2,000 x 1 ms sleep
    .venv/bin/python benchmarks/queue_bench.py --smoke    # small sizes, one round

For each workload (``noop``: 10,000 no-op jobs; ``sleep``: 2,000 jobs of 1 ms sleep)
and queue kind (``memory``; ``sqlite`` with synchronous=normal in a temporary folder;
``redis`` on a redis-server this script starts on a free loopback port with no
persistence), at ``--workers`` thread workers: one untimed warm-up round, then
``--rounds`` timed rounds of ``qlab.run``; jobs/s = jobs / wall seconds of the whole
call (queue creation and pool start included), median over rounds; ``ratio`` is that
over the memory queue's median for the same workload. ``serve-sqlite``/``serve-redis``:
the jobs enqueued first (``qlab.enqueue``, not timed), then one consumer
(``qlab.serve(..., until_empty=True)``, default prefetch) timed, reading its Run
back from the store included. Then the time a resume of a
queue holding 100,000 open jobs (10,000 with --smoke) takes until its first job runs.

Results: ``benchmarks/results/queue.csv`` (``queue-smoke.csv`` with --smoke), with how
they were measured in ``#`` header lines.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import qlab  # noqa: E402


def start_redis(folder: str) -> tuple[subprocess.Popen | None, str | None]:
    """A redis-server on a free loopback port (None if it is not installed)."""
    exe = shutil.which("redis-server")
    if exe is None:
        return None, None
    import redis

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", folder],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                proc.wait()
                raise RuntimeError("redis-server did not start") from None
            threading.Event().wait(0.02)
    client.close()
    return proc, f"redis://127.0.0.1:{port}/0"


class Urls:
    """A fresh queue URL of each kind for every round."""

    def __init__(self, folder: str, redis_url: str | None) -> None:
        self.folder, self.redis_url, self.n = folder, redis_url, 0

    def __call__(self, kind: str) -> str:
        self.n += 1
        if kind == "sqlite":
            return f"sqlite:///{self.folder}/q{self.n}.db"
        if kind == "redis":
            return f"{self.redis_url}?name=bench{self.n}-{os.getpid()}"
        return "memory"


def time_first_job(urls: Urls, kind: str, jobs: int) -> float:
    """Seconds from ``qlab.resume`` to its first job, on a queue of ``jobs`` open jobs
    (a run stopped at its first job leaves the rest open in the store)."""
    url = urls(kind)
    stop = threading.Event()
    qlab.run(StopAtFirst(stop), range(jobs), workers=1, queue=url, stop=stop, queue_size=jobs)
    first = FirstCall()
    t0 = time.perf_counter()
    qlab.resume(url, first, workers=4, force=True, stop=first.stop)
    return first.at - t0


class StopAtFirst:
    """Stops the run at its first job, and holds that job (0.5 s at most) until the
    stop is seen, so that the rest stays open."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def __call__(self, payload: int) -> None:
        self.stop.set()
        threading.Event().wait(0.5)


class FirstCall:
    """Notes when it is first called, and stops the run."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.at = float("nan")

    def __call__(self, payload: int) -> None:
        if not self.stop.is_set():
            self.at = time.perf_counter()
            self.stop.set()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--resume-only", action="store_true", help="only the resume measurement")
    args = ap.parse_args()
    if args.workers < 1 or args.rounds < 1:
        ap.error("--workers and --rounds must be >= 1")
    scale = 10 if args.smoke else 1
    rounds = 1 if args.smoke else args.rounds
    workloads = {
        "noop": (qlab.workloads.noop(), 10_000 // scale),
        "sleep": (qlab.workloads.sleep(ms=1), 2_000 // scale),
    }
    folder = tempfile.mkdtemp(prefix="qlab-queue-bench-")
    proc, redis_url = start_redis(folder)
    kinds = ["memory", "sqlite"] + (["redis"] if redis_url else [])
    urls = Urls(folder, redis_url)
    rows = []
    try:
        for name, (handler, jobs) in ({} if args.resume_only else workloads).items():
            base = None
            for kind in kinds:
                qlab.run(handler, range(min(jobs, 500)), workers=args.workers, queue=urls(kind))
                rates = []
                for _ in range(rounds):
                    url = urls(kind)
                    t0 = time.perf_counter()
                    run = qlab.run(handler, range(jobs), workers=args.workers, queue=url)
                    rates.append(jobs / (time.perf_counter() - t0))
                    assert run.summary()["ok"] == jobs
                med = statistics.median(rates)
                base = base or med
                rows.append((name, kind, args.workers, jobs, rounds, med, max(rates), med / base))
                print(f"{name:6} {kind:7} {med:10.0f} jobs/s  (best {max(rates):.0f})  "
                      f"x{med / base:.3f} of memory", flush=True)  # fmt: skip
            for kind in kinds[1:]:  # a consumer of a shared queue the jobs were enqueued to
                rates = []
                for _ in range(rounds):
                    url = urls(kind)
                    qlab.enqueue(url, range(jobs), handler=handler)
                    t0 = time.perf_counter()
                    run = qlab.serve(url, handler, args.workers, until_empty=True)
                    rates.append(jobs / (time.perf_counter() - t0))
                    assert run.summary()["ok"] == jobs
                med = statistics.median(rates)
                rows.append((name, f"serve-{kind}", args.workers, jobs, rounds, med, max(rates),
                             med / base))  # fmt: skip
                print(f"{name:6} serve-{kind:7} {med:10.0f} jobs/s  (best {max(rates):.0f})  "
                      f"x{med / base:.3f} of memory", flush=True)  # fmt: skip
        big = 100_000 // scale
        for kind in kinds[1:]:
            s = time_first_job(urls, kind, big)
            rows.append(("resume-first-job", kind, 4, big, 1, s, s, float("nan")))
            print(f"resume of {big} open jobs on {kind}: first job after {s:.3f} s", flush=True)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / ("queue-smoke.csv" if args.smoke else "queue.csv")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=HERE).stdout.strip()  # fmt: skip
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True,
                                   text=True).stdout.strip() if redis_url else "none"  # fmt: skip
    with open(path, "w") as f:
        f.write(f"# qlab queue benchmark; commit {commit}; {time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
        f.write(f"# {platform.platform()}; cpus {os.cpu_count()}; load {os.getloadavg()}\n")
        f.write(f"# python {platform.python_version()}; {redis_version}\n")
        f.write("# jobs_per_s: jobs / wall of qlab.run (queue creation and pool start "
                "included), median of rounds after one warm-up; ratio: over memory; "
                "resume-first-job rows: seconds from qlab.resume to its first job\n")  # fmt: skip
        f.write("workload,queue,workers,jobs,rounds,jobs_per_s,best_jobs_per_s,ratio\n")
        for r in rows:
            f.write(",".join(str(round(v, 4) if isinstance(v, float) else v) for v in r) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
