"""qlab's queues against RQ and Dramatiq on one local redis-server, side by side.

Usage (from the repository root; RQ and Dramatiq come with ``pip install -e ".[bench]"``)::

    .venv/bin/python benchmarks/broker_bench.py            # 10,000 jobs, 3 rounds
    .venv/bin/python benchmarks/broker_bench.py --smoke    # 1,000 jobs, 1 round

At 8 workers (``--workers``), on 10,000 no-op jobs and on 10,000 jobs that sleep 1 ms,
each of:

- ``qlab-memory``, ``qlab-sqlite`` (synchronous=normal, a fresh file per round in a
  temporary folder), ``qlab-redis`` (a fresh stream name per round): one
  ``qlab.run(job, range(n), workers=8, queue=...)`` on the thread backend; timed from
  the call to its return (pool start, queue creation and writes included).
- ``rq``: ``rq worker-pool -n 8 -w rq.worker.SimpleWorker`` started once as its own
  processes (RQ's default worker forks a process per job; SimpleWorker runs jobs in the
  worker's own process, RQ's documented way to avoid that cost, and the pool gives 8 of
  them); timed from the first ``Queue.enqueue_many`` (one pipeline) until RQ's finished
  registry holds every job of the round.
- ``dramatiq``: ``dramatiq broker_bench -p 1 -t 8`` started once (its CLI, one process of
  8 worker threads, the Redis broker with its default middleware); timed from the first
  ``actor.send`` until the broker's message hash is empty (every message acked).

All five use the same redis-server, which this script starts on a free loopback port
with no persistence and stops by PID. Each system gets one warm-up round (1,000 jobs),
then ``--rounds`` timed rounds; jobs/s is the median. ``redis_cmds_per_job``: Redis's
``total_commands_processed`` over the timed rounds, minus this script's own polls, per
job (a Lua script counts once, each command in a pipeline or MULTI once).

Ratios printed and written (targets of issue 13): qlab-redis / dramatiq on no-op jobs
(>= 2x), and qlab-sqlite and qlab-redis / qlab-memory on 1 ms sleep jobs (>= 0.8x).
Results: ``benchmarks/results/broker.csv`` (``broker-smoke.csv`` with --smoke), how they
were measured and the load average in ``#`` header lines.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
QUEUE = "bench"  # the RQ queue and the Dramatiq queue


def noop_job(i: int) -> None:
    """A job that does nothing."""


def sleep_job(i: int) -> None:
    """A job that sleeps 1 ms (I/O-like: the GIL is free meanwhile)."""
    time.sleep(0.001)


JOBS = {"noop": noop_job, "sleep": sleep_job}


def dramatiq_actors(url: str) -> dict[str, object]:
    """The Dramatiq broker on ``url`` and an actor per job (the same in this process,
    which sends, and in the Dramatiq worker process, which imports this module)."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=url)
    dramatiq.set_broker(broker)
    return {
        name: dramatiq.actor(fn, actor_name=f"bench_{name}", queue_name=QUEUE, max_retries=0)
        for name, fn in JOBS.items()
    }


if os.environ.get("BROKER_BENCH_DRAMATIQ"):  # imported by the `dramatiq` worker process
    ACTORS = dramatiq_actors(os.environ["BROKER_BENCH_DRAMATIQ"])


def wait_until(cond: Callable[[], bool], what: str, timeout: float = 300.0) -> int:
    """Poll ``cond`` every 5 ms until it holds (5 ms at most added to a round of seconds);
    returns how many polls it took."""
    deadline, polls = time.monotonic() + timeout, 0
    while True:
        polls += 1
        if cond():
            return polls
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not finish within {timeout:.0f} s")
        threading.Event().wait(0.005)


class Systems:
    """The five systems, each with a ``run(job_name, n) -> (seconds, Redis commands of
    this script's own polls)``."""

    def __init__(self, redis_url: str, folder: str, workers: int) -> None:
        import redis

        self.url, self.folder, self.workers = redis_url, folder, workers
        self.r = redis.Redis.from_url(redis_url)
        self.n = 0
        self.procs: list[subprocess.Popen] = []

    def env(self, dramatiq: bool = False) -> dict[str, str]:
        path = os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")])
        extra = {"BROKER_BENCH_DRAMATIQ": self.url} if dramatiq else {}
        return {**os.environ, "PYTHONPATH": path, **extra}

    # -- qlab ---------------------------------------------------------------------------

    def qlab(self, kind: str, job: str, n: int) -> tuple[float, int]:
        import qlab

        self.n += 1
        queue = {
            "qlab-memory": "memory",
            "qlab-sqlite": f"sqlite:///{self.folder}/q{self.n}.db",
            "qlab-redis": f"{self.url}?name=bench{self.n}",
        }[kind]
        t0 = time.perf_counter()
        run = qlab.run(JOBS[job], range(n), workers=self.workers, queue=queue)
        took = time.perf_counter() - t0
        assert run.summary()["ok"] == n, run.summary()
        return took, 0

    # -- RQ -----------------------------------------------------------------------------

    def start_rq(self) -> None:
        from rq import Worker

        exe = str(Path(sys.executable).with_name("rq"))
        self.procs.append(subprocess.Popen(
            [exe, "worker-pool", QUEUE, "-n", str(self.workers), "-w", "rq.worker.SimpleWorker",
             "-u", self.url, "--quiet"],
            env=self.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        wait_until(lambda: Worker.count(connection=self.r) >= self.workers, "rq worker-pool", 60)

    def rq(self, job: str, n: int) -> tuple[float, int]:
        from rq import Queue
        from rq.registry import FailedJobRegistry, FinishedJobRegistry

        q = Queue(QUEUE, connection=self.r)
        keys = [FinishedJobRegistry(queue=q).key, FailedJobRegistry(queue=q).key]

        def counts() -> list[int]:  # one round trip, two commands (ZCARD each registry)
            p = self.r.pipeline(transaction=False)
            for key in keys:
                p.zcard(key)
            return p.execute()

        before = counts()[0]
        t0 = time.perf_counter()
        for at in range(0, n, 1000):  # enqueue_many: one pipeline per 1,000 jobs
            q.enqueue_many([Queue.prepare_data(f"broker_bench.{job}_job", (i,), result_ttl=3600)
                            for i in range(at, min(n, at + 1000))])  # fmt: skip
        polls = wait_until(lambda: (c := counts())[0] - before >= n or c[1] > 0, "rq")
        took = time.perf_counter() - t0
        assert counts()[1] == 0, "RQ jobs failed"
        return took, 2 * polls

    # -- Dramatiq -----------------------------------------------------------------------

    def start_dramatiq(self) -> None:
        exe = str(Path(sys.executable).with_name("dramatiq"))
        self.procs.append(subprocess.Popen(
            [exe, "broker_bench", "-p", "1", "-t", str(self.workers), "-Q", QUEUE],
            env=self.env(dramatiq=True), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        self.actors = dramatiq_actors(self.url)
        self.dramatiq("noop", 10)  # the worker has started once this is consumed

    def dramatiq(self, job: str, n: int) -> tuple[float, int]:
        actor = self.actors[job]
        key = f"dramatiq:{QUEUE}.msgs"
        t0 = time.perf_counter()
        for i in range(n):
            actor.send(i)
        polls = wait_until(lambda: self.r.hlen(key) == 0, "dramatiq")
        return time.perf_counter() - t0, polls

    def stop_workers(self) -> None:
        """Stop the worker processes (by PID: SIGTERM, then SIGKILL after 10 s), so that
        an idle system's polling does not load the machine or Redis while another runs."""
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        from rq import Worker

        for w in Worker.all(connection=self.r):  # a killed worker leaves its registration
            w.register_death()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="1,000 jobs, one round")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args()
    if args.workers < 1 or args.rounds < 1:
        ap.error("--workers and --rounds must be >= 1")
    from queue_bench import start_redis

    jobs = 1_000 if args.smoke else 10_000
    rounds = 1 if args.smoke else args.rounds
    folder = tempfile.mkdtemp(prefix="qlab-broker-bench-")
    proc, url = start_redis(folder)
    if proc is None:
        sys.exit("redis-server is not installed (apt-get install -y redis-server)")
    systems = Systems(url, folder, args.workers)
    rows, loads = [], [os.getloadavg()]
    starts = {"rq": systems.start_rq, "dramatiq": systems.start_dramatiq}
    try:
        runners = {
            "qlab-memory": lambda j, n: systems.qlab("qlab-memory", j, n),
            "qlab-sqlite": lambda j, n: systems.qlab("qlab-sqlite", j, n),
            "qlab-redis": lambda j, n: systems.qlab("qlab-redis", j, n),
            "rq": systems.rq,
            "dramatiq": systems.dramatiq,
        }
        for job in JOBS:
            for name, run in runners.items():
                if name in starts:
                    starts[name]()  # its workers: only while it is measured
                run(job, min(jobs, 1000))  # warm-up
                cmds0 = systems.r.info("stats")["total_commands_processed"]
                rates, polls = [], 0
                for _ in range(rounds):
                    took, p = run(job, jobs)
                    rates.append(jobs / took)
                    polls += p
                cmds = systems.r.info("stats")["total_commands_processed"] - cmds0 - polls - 1
                per_job = (
                    cmds / (jobs * rounds) if name not in ("qlab-memory", "qlab-sqlite") else 0.0
                )
                med = statistics.median(rates)
                rows.append([job, name, args.workers, jobs, rounds, med, max(rates), per_job])
                print(f"{job:5} {name:12} {med:10,.0f} jobs/s (best {max(rates):,.0f}); "
                      f"{per_job:.2f} Redis commands per job", flush=True)  # fmt: skip
                systems.stop_workers()
        loads.append(os.getloadavg())
    finally:
        systems.stop_workers()
        systems.r.close()
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
    rate = {(r[0], r[1]): r[5] for r in rows}
    ratios = [
        ("qlab-redis / dramatiq, no-op",
         rate["noop", "qlab-redis"] / rate["noop", "dramatiq"], 2.0),
        ("qlab-redis / rq, no-op", rate["noop", "qlab-redis"] / rate["noop", "rq"], float("nan")),
        ("qlab-sqlite / qlab-memory, 1 ms sleep",
         rate["sleep", "qlab-sqlite"] / rate["sleep", "qlab-memory"], 0.8),
        ("qlab-redis / qlab-memory, 1 ms sleep",
         rate["sleep", "qlab-redis"] / rate["sleep", "qlab-memory"], 0.8),
    ]  # fmt: skip
    for what, value, target in ratios:
        verdict = (
            ""
            if target != target
            else f" (target >= {target}x: {'met' if value >= target else 'not met'})"
        )
        print(f"{what}: {value:.3f}x{verdict}")
    write(
        Path(args.out) / ("broker-smoke.csv" if args.smoke else "broker.csv"), rows, ratios, loads
    )


def write(path: Path, rows: list, ratios: list, loads: list) -> None:
    import dramatiq
    import rq

    import qlab

    path.parent.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=HERE).stdout.strip()  # fmt: skip
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True,
                                   text=True).stdout.strip()  # fmt: skip
    with open(path, "w") as f:
        f.write(f"# broker benchmark; commit {commit}; {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
        load = [" ".join(f"{v:.2f}" for v in la) for la in loads]
        f.write(f"# {platform.platform()}; cpus {os.cpu_count()}; load average (1, 5, 15 min) "
                f"at start {load[0]}, at end {load[-1]}\n")  # fmt: skip
        versions = f"qlab {qlab.__version__}; rq {rq.__version__}; dramatiq {dramatiq.__version__}"
        f.write(f"# python {platform.python_version()}; {versions}; {redis_version}\n")
        f.write("# jobs_per_s: median over rounds of jobs / (enqueue + all done), after one "
                "warm-up round; see benchmarks/broker_bench.py\n")  # fmt: skip
        for what, value, target in ratios:
            goal = "no target" if target != target else f"target >= {target}"
            f.write(f"# ratio {what}: {value:.3f} ({goal})\n")
        f.write("workload,system,workers,jobs,rounds,jobs_per_s,best_jobs_per_s,"
                "redis_cmds_per_job\n")  # fmt: skip
        for r in rows:
            f.write(",".join(str(round(v, 3) if isinstance(v, float) else v) for v in r) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
