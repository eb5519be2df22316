"""qlab against its peers, side by side, in one run on the same jobs.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench.py            # full run (about 10 minutes on 2 cores)
    .venv/bin/python benchmarks/bench.py --smoke    # small sizes, one round (under a minute)
    .venv/bin/python benchmarks/bench.py --only qlab-thread,tpe-map,noop
    .venv/bin/python benchmarks/bench.py --memory   # peak RSS of qlab on 1,000,000 no-op jobs
    .venv/bin/python benchmarks/bench.py --list     # the peers and workloads
    .venv/bin/python benchmarks/bench.py --compare benchmarks/results/bench.csv  # vs a reference

Every measurement: the peer's start-up (reported apart where it can be
separated), ``warmup`` untimed rounds, then ``rounds`` timed rounds with
``time.perf_counter``; the table shows the median (and best) in jobs/s, where
jobs/s = jobs / wall seconds of one round. See README.md for what each number
includes. Results: ``<out>/bench.csv`` (metadata in ``#`` header lines) and
``<out>/bench.png``; ``--smoke`` writes ``bench-smoke.*`` and ``--only`` ``bench[-smoke]-only.*``
instead, so neither overwrites the full results.
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _path in (HERE, REPO):  # the job modules, and the qlab of this checkout
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from compare import compare, print_comparison, read_results  # noqa: E402
from jobs import (  # noqa: E402
    MAX_RETRIES,
    SLEEP_S,
    attempt_with_retries,
    expected_outcome,
    noop_job,
    seed_job,
    sleep_job,
)
from peers import MP_START_METHOD, PEERS, Case, Outcome, Peer, Skip, import_qlab  # noqa: E402
from report import CSV_COLUMNS, draw_chart, print_table, write_csv  # noqa: E402

T = TypeVar("T")

TIMER = "time.perf_counter"
NOOP_WORKERS = 2  # the machine's core count; pinned so runs compare across machines
MEMORY_JOBS = 1_000_000
ROUND_BUDGET_S = 30.0  # seconds of timed rounds per measurement, so the full run takes ~10 min


@dataclass(frozen=True)
class Workload:
    """A workload: its job, its sizes and the worker counts it is measured at."""

    name: str
    job: Callable[[int], object]
    n_full: int
    n_smoke: int
    workers: tuple[int, ...]
    description: str
    has_ideal: bool = False  # sleep jobs: ideal jobs/s = workers / sleep time
    peers: tuple[str, ...] | None = None  # the peers that run it (None: every peer)
    cpu_bound: bool = False  # CPU-bound in Python: CPython's limit = cores x the serial rate


WORKLOADS: tuple[Workload, ...] = (
    Workload("noop", noop_job, 200_000, 2_000, (NOOP_WORKERS,), "no-op jobs: pure overhead"),
    Workload(
        "seed",
        seed_job,
        2_000,
        200,
        (2, 4),
        "the Go seed's processor: 1000 chained SHA-256 of 'job-<i>', retryable failure"
        " when len(payload) % 3 == 0 (4 attempts, then failed)",
        cpu_bound=True,
    ),
    Workload(
        "sleep_1ms",
        sleep_job,
        2_000,
        100,
        (1, 2, 4, 8, 16),
        "time.sleep(1 ms): I/O-like, releases the GIL",
        has_ideal=True,
    ),
    Workload(
        "noop_threads",
        noop_job,
        200_000,
        2_000,
        (1, 4, 16),
        "no-op jobs, qlab's thread backend alone: its rate by worker count (issue 17: at"
        " every count >= 0.8x its 1-worker rate; the 2-worker point is the noop case)",
        peers=("qlab-thread",),
    ),
)


# ---- Dask (issue 12): qlab on Dask against client.map and client.submit per job, at
# equal workers, on cases of their own (benchmarks/dask_bench.py; --only 'dask*,qlab-dask')
from dask_bench import DASK_CASES, dask_peers, dask_selected  # noqa: E402

DASK_WORKLOADS: tuple[Workload, ...] = tuple(Workload(*case) for case in DASK_CASES)
DASK_PEERS = dask_peers()
DASK_NAMES = [p.name for p in DASK_PEERS] + [w.name for w in DASK_WORKLOADS]
# ---- end of the Dask block (also: select(), --list and main() name DASK_*)


@dataclass(frozen=True)
class Settings:
    """How much to measure."""

    smoke: bool
    warmup: int = 1
    rounds: int = 3
    budget_s: float = ROUND_BUDGET_S

    def rounds_for(self, round_s: float) -> int:
        """Timed rounds for a peer whose warm-up round took ``round_s``: ``rounds``, fewer
        (at least 1) when they would take more than ``budget_s`` in all."""
        return max(1, min(self.rounds, int(self.budget_s // max(round_s, 1e-9))))

    @property
    def mode(self) -> str:
        return "smoke" if self.smoke else "full"


# --------------------------------------------------------------------------- timing


def time_call(fn: Callable[[], T]) -> tuple[float, T]:
    """Seconds that ``fn()`` took (``time.perf_counter``), and what it returned."""
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def measure(peer: Peer, case: Case, settings: Settings) -> dict[str, Any]:
    """Start the peer, run the warm-up rounds, then time up to ``settings.rounds`` rounds."""
    walls: list[float] = []
    startups: list[float] = []
    outcomes: list[Outcome] = []
    with ExitStack() as stack:
        open_s, runner = time_call(lambda: stack.enter_context(peer.factory(case)))
        warm_s = sum(time_call(runner)[0] for _ in range(settings.warmup))
        for _ in range(settings.rounds_for(warm_s / max(1, settings.warmup))):
            wall, outcome = time_call(runner)
            walls.append(wall - outcome.startup_s)
            startups.append(outcome.startup_s)
            outcomes.append(outcome)
    outcome = outcomes[-1]
    startup_s = {
        "included": float("nan"),
        "separate": open_s,
        "self-reported": statistics.median(startups),
    }[peer.startup]
    wall_median, wall_best = statistics.median(walls), min(walls)
    return {
        "status": "ok",
        "startup_s": startup_s,
        "wall_s_median": wall_median,
        "wall_s_best": wall_best,
        "rounds_timed": len(walls),
        "jobs_per_s": case.n_jobs / wall_median,
        "jobs_per_s_best": case.n_jobs / wall_best,
        "reported_jobs_per_s": outcome.reported_jobs_per_s,
        "batch_mean": statistics.median(
            [o.batch_mean for o in outcomes if o.batch_mean is not None] or [math.nan]
        ),
        "own_service_s": statistics.median(
            [o.service_s for o in outcomes if o.service_s is not None] or [math.nan]
        ),
        "ok": outcome.ok,
        "failed": outcome.failed,
        "_seen": {(o.ok, o.failed) for o in outcomes},  # every timed round's outcome
    }


# --------------------------------------------------------------------------- the run


def cases(settings: Settings, workloads: list[Workload]) -> Iterator[Case]:
    """Every (workload, workers) point, in table order."""
    for w in workloads:
        n_jobs = w.n_smoke if settings.smoke else w.n_full
        for workers in w.workers:
            yield Case(w.name, w.job, n_jobs, workers)


@functools.cache
def sleep_service_s(workers: int, n_jobs: int) -> float:
    """The mean service time of one sleep job on this machine at this concurrency:
    ``workers`` bare threads share ``n_jobs`` timed ``time.sleep(SLEEP_S)`` calls (no
    pool, no queue). A sleep overshoots 1 ms by the timer slack and the wake-up, more
    so with many threads, so the ideal of a pool is ``workers`` / this, not / 1 ms."""
    times: list[float] = []
    per_thread = max(1, n_jobs // workers)

    def sleeper() -> None:
        mine = []
        for _ in range(per_thread):
            t0 = time.perf_counter()
            time.sleep(SLEEP_S)
            mine.append(time.perf_counter() - t0)
        times.extend(mine)

    threads = [threading.Thread(target=sleeper) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statistics.fmean(times)


@functools.cache
def serial_jobs_per_s(job: Callable[[int], object], n_jobs: int) -> float:
    """Jobs/s of ``job`` run serially in this process, every attempt and retry included
    (``jobs.attempt_with_retries``), no pool: what one core does in CPython; the faster
    of 2 passes (the limit is what the core can do when undisturbed)."""
    best = math.inf
    for _ in range(2):
        t0 = time.perf_counter()
        for i in range(n_jobs):
            attempt_with_retries(job, i)
        best = min(best, time.perf_counter() - t0)
    return n_jobs / best


def run_benchmark(settings: Settings, peers: list[Peer], workloads: list[Workload]) -> pd.DataFrame:
    """Measure every peer on every case; one row per (case, peer), skipped ones included."""
    by_name = {w.name: w for w in workloads}
    todo = [
        (case, peer)
        for case in cases(settings, workloads)
        for peer in peers
        if by_name[case.workload].peers is None or peer.name in by_name[case.workload].peers
    ]
    rows = []
    for k, (case, peer) in enumerate(todo, 1):
        label = f"[{k:>3}/{len(todo)}] {case.workload:<9} n={case.n_jobs:<7} w={case.workers:<2}"
        print(f"{label} {peer.name:<17}", end=" ", file=sys.stderr, flush=True)
        exp_ok, exp_failed = expected_outcome(case.job, case.n_jobs)
        row: dict[str, Any] = {
            "workload": case.workload,
            "n_jobs": case.n_jobs,
            "workers": case.workers,
            "peer": peer.name,
            "kind": peer.kind,
            "startup": peer.startup,
            "expected_ok": exp_ok,
            "expected_failed": exp_failed,
        }
        t0 = time.perf_counter()
        try:
            row |= measure(peer, case, settings)
        except Skip as exc:
            row |= {"status": "skipped", "note": str(exc)}
        except Exception as exc:  # a broken peer must not stop the others
            traceback.print_exc(file=sys.stderr)
            row |= {"status": "error", "note": f"{type(exc).__name__}: {exc}"[:300]}
        if row["status"] == "ok":
            seen = row.pop("_seen")
            good = seen == {(exp_ok, exp_failed)}
            row["check"] = "pass" if good else "MISMATCH"
            if not good:
                got = ", ".join(f"{ok}/{failed}" for ok, failed in sorted(seen))
                row["note"] = f"expected ok/failed {exp_ok}/{exp_failed}, rounds gave {got}"
            if by_name[case.workload].has_ideal:
                service = sleep_service_s(case.workers, case.n_jobs)
                row["sleep_service_s"] = service
                row["ideal_jobs_per_s"] = case.workers / service
                row["ratio_to_ideal"] = row["jobs_per_s"] / row["ideal_jobs_per_s"]
                # against the ideal of the sleep time the peer itself measured (qlab)
                row["ratio_to_own_ideal"] = row["jobs_per_s"] * row["own_service_s"] / case.workers
            if by_name[case.workload].cpu_bound:
                serial = serial_jobs_per_s(case.job, case.n_jobs)
                row["serial_jobs_per_s"] = serial
                row["cpu_limit_jobs_per_s"] = min(case.workers, os.cpu_count() or 1) * serial
                row["ratio_to_cpu_limit"] = row["jobs_per_s"] / row["cpu_limit_jobs_per_s"]
            shown = f"{row['jobs_per_s']:>12,.0f} jobs/s  {row['check']}"
        else:
            shown = f"{row['status']}: {row['note']}"
        print(f"{shown}  ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
        rows.append(row)
    df = pd.DataFrame(rows).reindex(columns=CSV_COLUMNS)
    counts = ["n_jobs", "workers", "rounds_timed", "ok", "failed", "expected_ok", "expected_failed"]
    df[counts] = df[counts].astype("Int64")
    return add_ratios(df)


def add_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """Columns ``x_qlab_thread`` and ``x_qlab_process``: a peer's jobs/s over qlab's, same case."""
    keys = ["workload", "n_jobs", "workers"]
    for backend in ("thread", "process"):
        ref = df.loc[df["peer"] == f"qlab-{backend}", [*keys, "jobs_per_s"]]
        ref = ref.rename(columns={"jobs_per_s": "_ref"})
        merged = df[keys].merge(ref, on=keys, how="left")
        df[f"x_qlab_{backend}"] = df["jobs_per_s"].to_numpy() / merged["_ref"].to_numpy()
    return df


# --------------------------------------------------------------------------- provenance


def git_commit() -> str:
    """The checkout's commit (``+dirty`` when there are local changes), or why there is none."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no commit yet)"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return commit + ("+dirty" if dirty else "")


def provenance(settings: Settings) -> dict[str, Any]:
    """Where and how the numbers were taken; written to the CSV header and as columns."""
    import joblib
    import numpy

    try:
        qlab_version = getattr(import_qlab(), "__version__", "unknown")
    except Skip as exc:
        qlab_version = f"not available ({exc})"
    return {
        "mode": settings.mode,
        "timer": TIMER,
        "warmup_rounds": settings.warmup,
        "rounds": settings.rounds,
        "round_budget_s": settings.budget_s,
        "statistic": "median of the rounds (best also given)",
        "git_commit": git_commit(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "qlab": qlab_version,
        "pandas": pd.__version__,
        "numpy": numpy.__version__,
        "joblib": joblib.__version__,
        "go": go_version(),
        "mp_start_method": MP_START_METHOD,
        "max_retries": MAX_RETRIES,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "loadavg_start": loadavg(),
    }


def loadavg() -> str:
    """1/5/15-minute load averages: above ~0 other work shared the CPUs with the benchmark."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def go_version() -> str:
    """``go version`` output, or "not installed"."""
    try:
        out = subprocess.run(["go", "version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "not installed"
    return out.stdout.strip()


# --------------------------------------------------------------------------- extra measures


def tracing_cost(settings: Settings) -> str:
    """qlab's tracing cost per attempt, measured by parts on no-op jobs in one thread.

    qlab has no switch to turn tracing off (the trace is its product), so the parts
    are timed directly, best of ``rounds``:

    - loop: qlab's batch loop (``execute``: a clock read and an append per attempt,
      CPU time once per batch) over the same loop bare (the stop check, the try and
      the call, without timing), per attempt;
    - recorder: appending a batch's rows to a worker's recorder, per attempt;
    - DataFrames: building ``run.jobs`` and ``run.attempts`` from those recorders
      (done once, on first access), per attempt.
    """
    try:
        qlab = import_qlab()
        from qlab.core.batches import Batch
        from qlab.core.context import WorkerState
        from qlab.core.loop import execute
        from qlab.core.protocol import BatchResult
        from qlab.trace import frames
        from qlab.trace.recorder import Recorder, Trace
    except (Skip, ImportError) as exc:
        return f"skipped: {exc}"
    n_jobs, size = (2_000 if settings.smoke else 200_000), 4096
    fn = qlab.workloads.noop()
    state = WorkerState(0, 0, None, threading.Event())
    batches = [
        Batch(range(a, min(a + size, n_jobs)), 1, range(a, min(a + size, n_jobs)))
        for a in range(0, n_jobs, size)
    ]

    def bare() -> None:
        for b in batches:
            for p in b.payloads:
                if state.stop:
                    break
                try:
                    fn(p)
                except Exception:  # the same try as qlab's loop
                    continue

    def looped() -> list:
        return [execute(fn, b, state, lambda e: False) for b in batches]

    def new_trace() -> Trace:
        tr = Trace(0.0)
        tr.submitted.extend([0.0] * n_jobs)
        tr.status.extend(bytes(n_jobs))
        tr.recorders = [Recorder(w) for w in range(NOOP_WORKERS)]
        return tr

    def record_into(tr: Trace, results: list[BatchResult]) -> Trace:
        for k, (b, res) in enumerate(zip(batches, results, strict=True)):
            tr.recorders[k % NOOP_WORKERS].add(b, res, len(b), bytes(len(b)))
        return tr

    def frames_of(tr: Trace) -> None:
        cols = frames.columns(tr)
        frames.attempts_frame(tr, cols)
        frames.jobs_frame(tr, cols)

    def best(parts: Callable[[], Callable[[], Any]]) -> float:
        """Best time of the callable that ``parts()`` makes afresh for each round."""
        times = []
        for _ in range(settings.rounds + 1):
            call = parts()
            times.append(time_call(call)[0])
        return min(times[1:])

    results = looped()
    loop = (best(lambda: looped) - best(lambda: bare)) / n_jobs
    record = best(lambda: functools.partial(record_into, new_trace(), results)) / n_jobs
    build = best(lambda: functools.partial(frames_of, record_into(new_trace(), results)))
    build /= n_jobs
    ns = lambda x: f"{x * 1e9:.0f} ns"  # noqa: E731
    return (
        f"{ns(loop + record)} per attempt recorded (loop {ns(loop)} + recorder {ns(record)}),"
        f" plus {ns(build)} per attempt to build run.jobs and run.attempts on first access"
        f" (noop, {n_jobs:,} attempts in batches of {size}, one thread; best of"
        f" {settings.rounds})"
    )


def memory_child(backend: str, n_jobs: int) -> dict[str, Any]:
    """In a fresh process: peak RSS of ``qlab.run`` on ``n_jobs`` no-op jobs from a generator.

    RSS (this process plus its children) is sampled every 5 ms by a thread;
    for the thread backend ``ru_maxrss`` (the kernel's high-water mark) is used
    when it is higher. The traces are built (run.jobs, run.attempts), as a user would.
    """
    import resource

    import psutil

    qlab = import_qlab()
    me = psutil.Process()

    def rss() -> int:
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            with suppress(psutil.Error):
                total += child.memory_info().rss
        return total

    baseline = rss()
    peak = baseline
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.005):
            peak = max(peak, rss())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    result = qlab.run(
        qlab.workloads.noop(),
        (i for i in range(n_jobs)),
        workers=NOOP_WORKERS,
        backend=backend,
        retry=qlab.Retry(max_retries=MAX_RETRIES, backoff=None),
        seed=0,
        progress=False,
    )
    _ = (result.jobs, result.attempts)
    wall = time.perf_counter() - t0
    peak = max(peak, rss())
    stop.set()
    sampler.join()
    if backend == "thread":
        peak = max(peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    summary = result.summary()
    return {
        "backend": backend,
        "n_jobs": n_jobs,
        "workers": NOOP_WORKERS,
        "ok": int(summary["ok"]),
        "wall_s": wall,
        "baseline_rss_mb": baseline / 2**20,
        "peak_rss_mb": peak / 2**20,
        "delta_mb": (peak - baseline) / 2**20,
        "bytes_per_job": (peak - baseline) / n_jobs,
    }


def measure_memory(out: Path, n_jobs: int, backends: list[str]) -> pd.DataFrame:
    """Run :func:`memory_child` in a fresh interpreter per backend; save ``memory.csv``."""
    rows = []
    for backend in backends:
        print(f"memory: qlab {backend}, {n_jobs:,} no-op jobs ...", file=sys.stderr, flush=True)
        proc = subprocess.run(
            [sys.executable, __file__, "--memory-child", backend, "--memory-jobs", str(n_jobs)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            note = (proc.stderr.strip().splitlines() or ["failed"])[-1]
            rows.append({"backend": backend, "n_jobs": n_jobs, "note": note})
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    df = pd.DataFrame(rows)
    timing_keys = ("warmup_rounds", "rounds", "round_budget_s", "statistic")
    meta = {k: v for k, v in provenance(Settings(smoke=False)).items() if k not in timing_keys}
    meta["what"] = (
        "peak RSS (MiB) of a fresh interpreter (+ its worker processes) running qlab.run on"
        " no-op jobs from a generator, traces built; baseline = RSS after imports"
    )
    write_csv(df, out / "memory.csv", meta, {})
    print(df.to_string(index=False))
    return df


# --------------------------------------------------------------------------- command line


def select(tokens: list[str]) -> tuple[list[Peer], list[Workload]]:
    """Peers and workloads named by ``--only`` (names or glob patterns, either kind)."""
    if not tokens:
        return list(PEERS), list(WORKLOADS)

    def matching(names: list[str]) -> set[str]:
        return {n for n in names for t in tokens if fnmatch.fnmatch(n, t)}

    peer_names = matching([p.name for p in PEERS])
    workload_names = matching([w.name for w in WORKLOADS])
    unknown = [
        t
        for t in tokens
        if not fnmatch.filter([p.name for p in PEERS] + [w.name for w in WORKLOADS] + DASK_NAMES, t)
    ]
    if unknown:
        raise SystemExit(f"--only: unknown peer or workload {unknown}; see --list")
    if not peer_names and not workload_names:  # only Dask names: the Dask block alone
        return [], []
    peers = [p for p in PEERS if p.name in peer_names] or list(PEERS)
    workloads = [w for w in WORKLOADS if w.name in workload_names] or list(WORKLOADS)
    return peers, workloads


def _existing(text: str) -> Path:
    """A path that exists now (so a typo fails before a ten-minute run)."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--smoke", action="store_true", help="small sizes, 1 round (about a minute)"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    parser.add_argument(
        "--only",
        type=lambda s: [t for t in s.replace(",", " ").split() if t],
        default=[],
        help="comma-separated peers and/or workloads (glob patterns), e.g. 'qlab-*,noop'",
    )
    parser.add_argument(
        "--memory", action="store_true", help="measure qlab's peak memory only (full mode only)"
    )
    parser.add_argument("--memory-jobs", type=int, default=MEMORY_JOBS, help=argparse.SUPPRESS)
    parser.add_argument("--memory-backends", default="thread,process", help="backends for --memory")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, help="warm-up rounds (default 1)")
    parser.add_argument("--rounds", type=int, help="timed rounds (default 3; --smoke: 1)")
    parser.add_argument("--list", action="store_true", help="list peers and workloads, exit")
    parser.add_argument(
        "--compare",
        type=_existing,
        metavar="REF.csv",
        help="print this run's ratio to a reference run, per case, with its spread",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.memory_jobs)))
        return 0
    if args.list:
        for p in PEERS:
            print(f"peer      {p.name:<17} {p.kind:<8} start-up {p.startup:<13} {p.includes}")
        for p in DASK_PEERS:
            print(f"peer      {p.name:<17} {p.kind:<8} start-up {p.startup:<13} {p.includes}")
        for w in (*WORKLOADS, *DASK_WORKLOADS):
            print(
                f"workload  {w.name:<17} n={w.n_full:,} (smoke {w.n_smoke:,}) workers={w.workers}"
            )
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    if args.memory:
        if args.smoke:
            print("--memory runs in full mode only: skipped with --smoke", file=sys.stderr)
            return 0
        measure_memory(args.out, args.memory_jobs, args.memory_backends.split(","))
        return 0

    settings = Settings(smoke=args.smoke, rounds=1 if args.smoke else 3)
    settings = replace(
        settings,
        warmup=settings.warmup if args.warmup is None else args.warmup,
        rounds=settings.rounds if args.rounds is None else max(1, args.rounds),
    )
    peers, workloads = select(args.only)
    t0 = time.perf_counter()
    meta = provenance(settings)
    df = run_benchmark(settings, peers, workloads)
    dask = dask_selected(args.only, DASK_PEERS, list(DASK_WORKLOADS))
    if dask[0]:  # the Dask block's rows
        peers = [*peers, *dask[0]]
        df = pd.concat([df, run_benchmark(settings, *dask)], ignore_index=True)
    meta["tracing_cost"] = (
        tracing_cost(settings) if any(p.name == "qlab-thread" for p in peers) else "not selected"
    )
    meta["duration_s"] = round(time.perf_counter() - t0, 1)
    meta["loadavg_end"] = loadavg()
    for column in (
        "timer",
        "warmup_rounds",
        "rounds",
        "git_commit",
        "cpu_count",
        "platform",
        "python",
    ):
        df[column] = meta[column]
    stem = "bench" + ("-smoke" if settings.smoke else "") + ("-only" if args.only else "")
    includes = {p.name: p.includes for p in peers}
    print_table(df, meta)
    write_csv(df, args.out / f"{stem}.csv", meta, includes)
    draw_chart(df, args.out / f"{stem}.png", meta)
    print(
        f"\nwrote {args.out / f'{stem}.csv'} and {args.out / f'{stem}.png'}"
        f" in {meta['duration_s']:.0f} s"
    )
    if args.compare:
        table = compare(df, read_results(args.compare))
        print_comparison(table, args.compare)
        table.to_csv(args.out / f"{stem}-compare.csv", index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
