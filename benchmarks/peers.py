"""The peers that the benchmark runs side by side with qlab, one function each.

A peer is a context manager factory ``peer(case) -> ContextManager[Runner]``.
Entering it does the start-up that can be separated from the work (starting a
process pool and making sure its workers are up); the :data:`Runner` it yields
runs every job of the case once and returns an :class:`Outcome`. Peers whose
start-up cannot be separated (thread pools made per call, a subprocess) start
inside the runner; a runner that knows how much of its call was start-up says
so in ``Outcome.startup_s`` and the harness subtracts it.

:data:`PEERS` is the registry, in the order of the table.
"""

from __future__ import annotations

import atexit
import json
import multiprocessing
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Literal

from jobs import MAX_RETRIES, noop_job, retrying

GO_DIR = Path(__file__).resolve().parent / "go"

#: Start method of the multiprocessing.Pool peers: the platform default (fork on Linux).
MP_START_METHOD = multiprocessing.get_start_method()


class Skip(Exception):
    """A peer cannot run (a case of) the benchmark; the message says why."""


@dataclass(frozen=True)
class Case:
    """One measurement point: ``n_jobs`` jobs of one workload on ``workers`` workers."""

    workload: str  # "noop" | "seed" | "sleep_1ms"
    job: Callable[[int], object]  # the plain job; peers add the retries themselves
    n_jobs: int
    workers: int

    @property
    def payloads(self) -> range:
        """The job payloads: the integers ``0 .. n_jobs - 1``."""
        return range(self.n_jobs)


@dataclass(frozen=True)
class Outcome:
    """What one run of a case gave."""

    ok: int
    failed: int
    startup_s: float = 0.0  # part of the runner's call that was start-up (subtracted)
    reported_jobs_per_s: float | None = None  # the peer's own figure, if it has one
    service_s: float | None = None  # mean attempt time, from the peer's own trace (qlab)
    batch_mean: float | None = None  # attempts per batch that the peer chose (qlab)

    @classmethod
    def count(cls, results: Iterable[bool], n_jobs: int) -> Outcome:
        """Outcome from one success flag per job."""
        ok = sum(1 for r in results if r)
        return cls(ok=ok, failed=n_jobs - ok)


Runner = Callable[[], Outcome]
PeerFactory = Callable[[Case], AbstractContextManager[Runner]]
Startup = Literal["included", "separate", "self-reported"]


@dataclass(frozen=True)
class Peer:
    """An entry of the registry."""

    name: str
    factory: PeerFactory
    kind: Literal["thread", "process", "external"]
    startup: Startup
    includes: str  # what the timed region includes, for the CSV header and README


# --------------------------------------------------------------------------- thread peers


@contextmanager
def tpe_submit(case: Case) -> Iterator[Runner]:
    """ThreadPoolExecutor: one ``submit`` per job, then ``.result()`` on every future."""
    job = retrying(case.job)

    def run() -> Outcome:
        with ThreadPoolExecutor(case.workers) as ex:
            futures = [ex.submit(job, p) for p in case.payloads]
            return Outcome.count((f.result() for f in futures), case.n_jobs)

    yield run


@contextmanager
def tpe_map(case: Case) -> Iterator[Runner]:
    """ThreadPoolExecutor.map over the payloads."""
    job = retrying(case.job)

    def run() -> Outcome:
        with ThreadPoolExecutor(case.workers) as ex:
            return Outcome.count(ex.map(job, case.payloads), case.n_jobs)

    yield run


@contextmanager
def joblib_threading(case: Case) -> Iterator[Runner]:
    """joblib.Parallel(backend="threading"), a new Parallel per run."""
    from joblib import Parallel, delayed

    job = retrying(case.job)

    def run() -> Outcome:
        parallel = Parallel(n_jobs=case.workers, backend="threading")
        return Outcome.count(parallel(delayed(job)(p) for p in case.payloads), case.n_jobs)

    yield run


def _queue_worker(jobs: queue.Queue, results: queue.Queue, job: Callable[[int], bool]) -> None:
    """Worker of the Go design: take jobs until the sentinel, report each job's outcome."""
    while (payload := jobs.get()) is not None:
        results.put(job(payload))


@contextmanager
def queue_threads(case: Case) -> Iterator[Runner]:
    """The Go original's design in Python: a job queue, N worker threads, retries
    in the worker, result aggregation, shutdown by sentinels and join."""
    job = retrying(case.job)

    def run() -> Outcome:
        jobs: queue.Queue = queue.Queue()
        results: queue.Queue = queue.Queue()
        workers = [
            threading.Thread(target=_queue_worker, args=(jobs, results, job))
            for _ in range(case.workers)
        ]
        for w in workers:
            w.start()
        for p in case.payloads:
            jobs.put(p)
        for _ in workers:  # close the queue: one sentinel per worker
            jobs.put(None)
        for w in workers:  # the WaitGroup
            w.join()
        return Outcome.count((results.get_nowait() for _ in range(case.n_jobs)), case.n_jobs)

    yield run


# --------------------------------------------------------------------------- process peers


def tuned_chunksize(case: Case) -> int:
    """The tuned chunk size of the multiprocessing peer: ``n_jobs // (4 * workers)``."""
    return max(1, case.n_jobs // (4 * case.workers))


@contextmanager
def _mp_pool(case: Case, chunksize: int) -> Iterator[Runner]:
    """A warm multiprocessing.Pool running ``imap_unordered`` with ``chunksize``."""
    ctx = multiprocessing.get_context(MP_START_METHOD)
    with ctx.Pool(case.workers) as pool:
        pool.map(noop_job, range(case.workers), chunksize=1)  # workers are up
        job = retrying(case.job)
        yield lambda: Outcome.count(
            pool.imap_unordered(job, case.payloads, chunksize=chunksize), case.n_jobs
        )


def mp_imap_chunk1(case: Case) -> AbstractContextManager[Runner]:
    """multiprocessing.Pool.imap_unordered, chunksize=1 (one IPC round trip per job)."""
    return _mp_pool(case, 1)


def mp_imap_tuned(case: Case) -> AbstractContextManager[Runner]:
    """multiprocessing.Pool.imap_unordered, chunksize = n_jobs // (4 * workers)."""
    return _mp_pool(case, tuned_chunksize(case))


@contextmanager
def joblib_loky(case: Case) -> Iterator[Runner]:
    """joblib.Parallel(backend="loky", batch_size="auto") kept open, so its workers stay warm."""
    from joblib import Parallel, delayed

    job = retrying(case.job)
    with Parallel(n_jobs=case.workers, backend="loky", batch_size="auto") as parallel:
        parallel(delayed(noop_job)(i) for i in range(case.workers))  # workers are up
        executor = getattr(parallel._backend, "_workers", None)  # the reusable executor
        yield lambda: Outcome.count(parallel(delayed(job)(p) for p in case.payloads), case.n_jobs)
    if executor is not None:  # stop the workers: the next case starts its own
        executor.shutdown(wait=True)


# --------------------------------------------------------------------------- qlab


@cache
def import_qlab() -> ModuleType:
    """qlab, or :class:`Skip` saying why it cannot be used yet."""
    try:
        import qlab
    except Exception as exc:  # any import failure means: skip
        raise Skip(f"qlab is not importable yet ({type(exc).__name__}: {exc})") from None
    missing = [n for n in ("run", "Retry", "workloads") if not hasattr(qlab, n)]
    if missing:
        raise Skip(f"qlab has no {', '.join(missing)} yet")
    return qlab


def _qlab_handler(qlab: ModuleType, workload: str) -> Callable[..., object]:
    """qlab's own picklable handler for a workload."""
    makers: dict[str, Callable[[], Callable[..., object]]] = {
        "noop": lambda: qlab.workloads.noop(),
        "noop_threads": lambda: qlab.workloads.noop(),
        "seed": lambda: qlab.workloads.seed(),
        "sleep_1ms": lambda: qlab.workloads.sleep(ms=1),
    }
    try:
        return makers[workload]()
    except (AttributeError, KeyError, TypeError) as exc:
        raise Skip(f"qlab.workloads has no handler for {workload!r} ({exc})") from None


@contextmanager
def _qlab(case: Case, name: str) -> Iterator[Runner]:
    """qlab.run on the backend ``name`` ("process-spawn": the process backend with the
    spawn launcher); the traces are built (run.jobs, run.attempts) inside the timing."""
    qlab = import_qlab()
    processes = name.startswith("process")
    backend = qlab.backends.Process(start="spawn") if name == "process-spawn" else name
    handler = _qlab_handler(qlab, case.workload)
    retry = qlab.Retry(max_retries=MAX_RETRIES, backoff=None)

    def run() -> Outcome:
        result = qlab.run(
            handler,
            case.payloads,
            workers=case.workers,
            backend=backend,
            retry=retry,
            seed=0,
            progress=False,
        )
        _, attempts = (result.jobs, result.attempts)  # build the DataFrames inside the timing
        summary = result.summary()
        # process backend: start-up, and shutdown once qlab reports it (meta["shutdown_s"]);
        # the warm multiprocessing/loky peers pay neither inside their timed rounds
        startup = 0.0
        if processes:
            startup = sum(float(result.meta.get(k) or 0.0) for k in ("startup_s", "shutdown_s"))
        return Outcome(
            ok=int(summary["ok"]),
            failed=int(summary["failed"]),
            startup_s=startup,
            reported_jobs_per_s=float(summary["throughput"]),
            service_s=float(attempts["duration_s"].mean()),
            batch_mean=len(attempts) / max(1, int(result.meta.get("batches") or 0)),
        )

    if not processes:
        yield run
        return
    # like the warm multiprocessing and loky peers: the workers stay up across the rounds
    # (the warm-up round pays the start-up), as inside a qlab sweep
    from qlab.backends.process.backend import warm_workers

    with warm_workers():
        yield run


def qlab_thread(case: Case) -> AbstractContextManager[Runner]:
    """qlab.run(..., backend="thread")."""
    return _qlab(case, "thread")


def qlab_process(case: Case) -> AbstractContextManager[Runner]:
    """qlab.run(..., backend="process") inside ``warm_workers()``: the workers stay up across
    rounds, as the warm multiprocessing/loky peers do; start-up (meta["startup_s"]) apart."""
    return _qlab(case, "process")


def qlab_process_spawn(case: Case) -> AbstractContextManager[Runner]:
    """As qlab_process, with Process(start="spawn"): a fresh interpreter per worker, as
    on macOS and Windows."""
    return _qlab(case, "process-spawn")


# --------------------------------------------------------------------------- Go original

GO_WORKLOADS = {"noop": "noop", "seed": "seed", "sleep_1ms": "sleep"}


@cache
def go_binary() -> Path:
    """Build ``benchmarks/go`` once into a temporary directory (removed at exit)."""
    go = shutil.which("go")
    if go is None:
        raise Skip("`go` is not on PATH (apt-get install golang-go)")
    tmp = Path(tempfile.mkdtemp(prefix="qlabbench-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    binary = tmp / "qlabbench"
    proc = subprocess.run(
        [go, "build", "-o", str(binary), "."], cwd=GO_DIR, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise Skip(f"go build failed: {proc.stderr.strip()[:300]}")
    return binary


@contextmanager
def go_original(case: Case) -> Iterator[Runner]:
    """The Go original's design (benchmarks/go), one process per run, stdout to /dev/null."""
    if case.workload not in GO_WORKLOADS:
        raise Skip(f"the Go program has no {case.workload!r} workload")
    cmd = [
        str(go_binary()),
        f"-workers={case.workers}",
        f"-jobs={case.n_jobs}",
        f"-workload={GO_WORKLOADS[case.workload]}",
        "-json",
    ]

    def run() -> Outcome:
        t0 = time.perf_counter()
        proc = subprocess.run(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True
        )
        outside_s = time.perf_counter() - t0
        summary = json.loads(proc.stderr)
        return Outcome(
            ok=summary["ok"],
            failed=summary["failed"],
            startup_s=max(0.0, outside_s - summary["wall_s"]),  # exec, runtime init, exit
            reported_jobs_per_s=summary["throughput"],
        )

    yield run


# --------------------------------------------------------------------------- registry

_WARM = "warm pool: start-up (pool creation + one tiny job per worker) is reported apart"

PEERS: tuple[Peer, ...] = (
    Peer(
        "qlab-thread",
        qlab_thread,
        "thread",
        "included",
        "qlab.run(backend='thread') + building run.jobs/run.attempts + run.summary()",
    ),
    Peer(
        "qlab-process",
        qlab_process,
        "process",
        "self-reported",
        "qlab.run(backend='process') + traces + summary, minus meta['startup_s'] (and"
        " meta['shutdown_s'] if qlab reports it; until then worker shutdown is inside)",
    ),
    Peer(
        "qlab-process-spawn",
        qlab_process_spawn,
        "process",
        "self-reported",
        "as qlab-process, with qlab.backends.Process(start='spawn') (macOS, Windows)",
    ),
    Peer(
        "tpe-submit",
        tpe_submit,
        "thread",
        "included",
        "ThreadPoolExecutor creation + submit per job + result() on all + shutdown",
    ),
    Peer("tpe-map", tpe_map, "thread", "included", "ThreadPoolExecutor creation + map + shutdown"),
    Peer(
        "joblib-threading",
        joblib_threading,
        "thread",
        "included",
        "Parallel(backend='threading') call, thread pool made per call",
    ),
    Peer(
        "queue-threads",
        queue_threads,
        "thread",
        "included",
        "queue.Queue + N threads started, jobs enqueued, sentinels, join, aggregation",
    ),
    Peer(
        "mp-imap-chunk1",
        mp_imap_chunk1,
        "process",
        "separate",
        f"imap_unordered(chunksize=1) over all jobs; {_WARM}",
    ),
    Peer(
        "mp-imap-tuned",
        mp_imap_tuned,
        "process",
        "separate",
        f"imap_unordered(chunksize=n//(4*workers)) over all jobs; {_WARM}",
    ),
    Peer(
        "joblib-loky",
        joblib_loky,
        "process",
        "separate",
        f"Parallel(backend='loky', batch_size='auto') call in an open Parallel; {_WARM}",
    ),
    Peer(
        "go-original",
        go_original,
        "external",
        "self-reported",
        "the Go program's own wall time (pool start to aggregated results, printf per job"
        " to /dev/null); process exec/exit reported as start-up",
    ),
)
