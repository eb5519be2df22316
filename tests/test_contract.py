"""The engine's contract (docs/design.md), run against every backend.

``dask`` runs on the session's real Dask cluster (a scheduler and two one-thread
workers started through the CLI: tests/dask_cluster.py) through a user's Client, so
its runs use at most 2 workers; a test that cannot apply there skips, saying why.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import pandas as pd
import pytest

import qlab
from qlab import workloads
from qlab.testing import FakeClock
from qlab.trace.hosts import local_host
from tests.helpers import SocketGate

ATTEMPT_COLUMNS = [
    "job_id",
    "attempt",
    "worker",
    "host",
    "start_s",
    "end_s",
    "duration_s",
    "cpu_s",
    "outcome",
    "error_type",
    "error",
    "backoff_s",
    "throttle_s",
]
JOB_COLUMNS = [
    "job_id",
    "status",
    "attempts",
    "submitted_s",
    "first_start_s",
    "end_s",
    "queue_wait_s",
    "service_s",
    "latency_s",
    "worker",
    "host",
    "error_type",
    "error",
]
OUTCOME = ["job_id", "status", "attempts", "error_type"]
DASK_WORKERS = 2  # the session cluster's worker threads


@pytest.fixture(params=["thread", "process", "process-spawn", "inline", "dask"])
def backend(request: pytest.FixtureRequest):
    """Each contract test runs once per backend; ``process`` on the platform's default
    launcher (the fork server, on Linux), ``process-spawn`` with a fresh interpreter
    per worker (as on macOS and Windows); ``dask`` is a Dask backend on the session
    cluster (a user's cluster: qlab never shuts it down)."""
    if request.param == "process-spawn":
        return qlab.backends.Process(start="spawn")
    if request.param != "dask":
        return request.param
    cluster = request.getfixturevalue("dask_cluster")
    return qlab.backends.Dask(client=cluster.client)


def name(backend) -> str:
    return getattr(backend, "name", backend)


def most(backend, workers: int) -> int:
    """``workers``, or as many as the session Dask cluster has."""
    return min(workers, DASK_WORKERS) if name(backend) == "dask" else workers


class Boom(Exception):
    pass


ALWAYS_FAILS = workloads.flaky(workloads.noop(), transient=1.0)


class FailFirst:
    """A handler whose attempts 1..n fail with ``exc``; returns the payload after."""

    def __init__(self, n: int, exc: type[Exception] = Boom) -> None:
        self.n, self.exc = n, exc

    def __call__(self, payload):
        if qlab.current().attempt <= self.n:
            raise self.exc(f"attempt {qlab.current().attempt}")
        return payload


def test_retries_then_success(backend):
    run = qlab.run(
        FailFirst(2),
        range(5),
        workers=2,
        backend=backend,
        retry=qlab.Retry(max_retries=3, backoff=None),
        keep_results=True,
    )
    assert run.jobs.status.eq("ok").all()
    assert run.jobs.attempts.tolist() == [3] * 5
    assert run.jobs.result.tolist() == list(range(5))
    counts = run.attempts.outcome.value_counts()
    assert counts[counts > 0].to_dict() == {"retry": 10, "ok": 5}


def test_max_retries_means_one_plus_retries_attempts(backend):
    run = qlab.run(
        ALWAYS_FAILS,
        range(4),
        workers=most(backend, 4),
        backend=backend,
        retry=qlab.Retry(max_retries=3, backoff=None),
    )
    assert run.jobs.attempts.tolist() == [4] * 4
    assert run.jobs.status.eq("failed").all()
    assert run.attempts.groupby("job_id").outcome.last().eq("failed").all()
    assert len(run.failed) == 4 and run.failed.error_type.eq("TransientError").all()


@pytest.mark.parametrize(
    ("handler", "retry"),
    [
        (FailFirst(9, qlab.Permanent), qlab.Retry(max_retries=5, backoff=None)),
        (FailFirst(9, KeyError), qlab.Retry(max_retries=5, backoff=None, permanent=(KeyError,))),
    ],
    ids=["qlab.Permanent", "permanent="],
)
def test_permanent_errors_fail_at_once(backend, handler, retry):
    run = qlab.run(handler, range(3), workers=2, backend=backend, retry=retry)
    assert run.jobs.attempts.tolist() == [1, 1, 1]
    assert run.jobs.status.eq("failed").all()


def test_exhausted_and_permanent_are_logged(backend, caplog):
    caplog.set_level(logging.INFO, logger="qlab")
    qlab.run(
        FailFirst(9, Boom), range(1), workers=2, backend=backend, retry=qlab.Retry(1, backoff=None)
    )
    levels = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "qlab"]
    assert (logging.INFO, "job 0 attempt 1 failed (Boom: attempt 1); retry in 0.000s") in levels
    assert (logging.ERROR, "job 0 failed (attempt 2 of 2): Boom: attempt 2") in levels


def test_exact_backoff_schedule_with_a_fake_clock(backend):
    if backend != "thread":
        pytest.skip("the fake clock drives the thread backend")
    retry = qlab.Retry(max_retries=4, backoff=qlab.Exponential(base=10, factor=2, cap=50))
    run = qlab.run(ALWAYS_FAILS, range(1), retry=retry, clock=FakeClock())
    att = run.attempts
    assert att.start_s.tolist() == [0, 10, 30, 70, 120]
    assert att.backoff_s.tolist()[:4] == [10, 20, 40, 50]
    assert pd.isna(att.backoff_s.iloc[-1])


def test_jitter_is_drawn_from_seed_job_and_attempt(backend):
    backoff = qlab.Exponential(base=0.001, cap=0.004, jitter=True)
    retry = qlab.Retry(max_retries=3, backoff=backoff)
    runs = [
        qlab.run(ALWAYS_FAILS, range(20), workers=w, backend=backend, retry=retry, seed=7)
        for w in (1, most(backend, 3))
    ]
    a, b = (r.attempts.set_index(["job_id", "attempt"]).backoff_s for r in runs)
    pd.testing.assert_series_equal(a, b)
    expected = [retry.delay(7, j, k) for j in range(20) for k in (1, 2, 3)]
    assert a.dropna().tolist() == expected
    assert len(set(expected)) == len(expected)  # jitter really varies
    other = qlab.run(ALWAYS_FAILS, range(20), workers=2, backend=backend, retry=retry, seed=8)
    assert other.attempts.backoff_s.dropna().tolist() != expected


def test_seeded_outcomes_identical_across_worker_counts(backend):
    handler = workloads.flaky(workloads.noop(), transient=0.3, permanent=0.05)
    retry = qlab.Retry(max_retries=2, backoff=None)
    counts = (1, 4, 16) if backend == "thread" else (1, most(backend, 3))  # processes start slowly
    frames = [
        qlab.run(handler, range(300), workers=w, backend=backend, retry=retry, seed=3).jobs
        for w in counts
    ]
    for df in frames[1:]:
        pd.testing.assert_frame_equal(frames[0][OUTCOME], df[OUTCOME])
    statuses = set(frames[0].status)
    assert {"ok", "failed"} <= statuses  # the workload really fails some jobs


def test_seed_workload_matches_the_go_original():
    run = qlab.run(workloads.seed(), range(100), workers=4, retry=qlab.Retry(3, backoff=None))
    s = run.summary()
    assert (s["ok"], s["failed"], s["attempts"]) == (10, 90, 10 + 90 * 4)


@pytest.fixture
def gate(backend):
    if backend == "inline":
        pytest.skip("inline runs jobs in the test's own thread: a job blocking on it blocks it")
    g = SocketGate()
    yield g
    g.close()


def test_leaving_the_block_drains_every_job(backend, gate):
    with qlab.Pool(gate, workers=2, backend=backend) as pool:
        futures = [pool.submit(i) for i in range(50)]
        assert gate.started.wait(10)
        gate.release()
    assert [f.result(timeout=0) for f in futures] == list(range(50))
    assert pool.trace().jobs.status.eq("ok").all()


def test_a_snapshot_shows_pending_jobs(backend, gate):
    with qlab.Pool(gate, workers=1, backend=backend) as pool:
        for i in range(3):
            pool.submit(i)
        assert gate.started.wait(10)
        snapshot = pool.trace()
        gate.release()
    assert snapshot.summary()["pending"] == 3
    assert "3 pending" in repr(snapshot)
    assert "pending" not in repr(pool.trace())


def test_cancel_pending_cancels_jobs_that_never_started(backend, gate):
    pool = qlab.Pool(gate, workers=1, backend=backend)
    futures = [pool.submit(i) for i in range(10)]
    assert gate.started.wait(10)
    pool.shutdown(wait=False, cancel_pending=True)
    gate.release()
    pool.shutdown(wait=True)
    jobs = pool.trace().jobs
    assert jobs.status.tolist() == ["ok"] + ["cancelled"] * 9
    assert jobs.attempts.tolist() == [1] + [0] * 9
    assert futures[0].result() == 0 and all(f.cancelled() for f in futures[1:])
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(1)


def test_map_keeps_order_and_raises_failures(backend):
    with qlab.Pool(FailFirst(9), workers=2, backend=backend, retry=1) as pool:
        assert list(pool.map([])) == []
        fut = pool.submit(1)
        with pytest.raises(Boom, match="attempt 2"):
            fut.result(timeout=10)
    with qlab.Pool(workloads.sha256(rounds=10), workers=2, backend=backend) as pool:
        assert list(pool.map(range(30))) == [workloads.sha256(rounds=10)(i) for i in range(30)]


def test_current_gives_the_job_and_attempt(backend):
    def who(payload):
        ctx = qlab.current()
        if ctx.attempt == 1 and payload % 2:
            raise Boom("odd")
        return (ctx.job_id, ctx.attempt, ctx.seed, bool(ctx.cancelled))

    run = qlab.run(
        who,
        range(6),
        workers=2,
        backend=backend,
        seed=11,
        keep_results=True,
        retry=qlab.Retry(2, backoff=None),
    )
    assert run.jobs.result.tolist() == [(j, 1 + j % 2, 11, False) for j in range(6)]
    with pytest.raises(RuntimeError, match="outside"):
        qlab.current()


def test_quick_batches_keep_current_times_and_cpu(backend):
    """Batches of quick jobs note no attempt one by one: current() and the trace must
    still be exact (ids, attempts, times in order, CPU time within wall time)."""

    def who(payload):
        ctx = qlab.current()
        if ctx.attempt == 1 and payload % 7 == 0:
            raise Boom("sevens fail once")
        return (ctx.job_id, ctx.attempt)

    n = 3000
    run = qlab.run(
        who,
        range(n),
        workers=2,
        backend=backend,
        batch_size=500,
        keep_results=True,
        retry=qlab.Retry(2, backoff=None),
    )
    assert run.jobs.result.tolist() == [(j, 1 + (j % 7 == 0)) for j in range(n)]
    a = run.attempts
    assert len(a) == n + len(range(0, n, 7))
    assert (a.start_s <= a.end_s).all()
    assert a.cpu_s.between(0, a.duration_s + 1e-6).all()
    for _, rows in a.sort_values("start_s").groupby("worker"):
        # one worker runs one attempt at a time
        assert (rows.start_s.to_numpy()[1:] >= rows.end_s.to_numpy()[:-1] - 1e-9).all()


def test_batches_slice_and_join():
    from qlab.core.batches import EMPTY, Batch

    b = Batch(range(10, 14), 1, ["a", "b", "c", "d"])
    assert b[1] == (11, 1, "b")
    assert list(b[2:]) == [(12, 1, "c"), (13, 1, "d")]
    joined = b[:2] + b[2:]
    assert joined.ids == range(10, 14) and joined.attempts == 1  # still compact
    mixed = b[:1] + Batch.of([(3, 2, "z")])
    assert list(mixed) == [(10, 1, "a"), (3, 2, "z")]
    assert mixed[1:].attempts == [2]
    assert list(EMPTY + b) == list(b) and not EMPTY
    assert Batch.join([b[:1], b[1:3], EMPTY, b[3:]]).ids == range(10, 14)
    many = Batch.join([*(Batch([i], [2], [i]) for i in range(3)), Batch(range(5, 7), 1, "xy")])
    assert list(many) == [(0, 2, 0), (1, 2, 1), (2, 2, 2), (5, 1, "x"), (6, 1, "y")]


def test_a_cooperative_handler_sees_its_deadline(backend):
    def slow_once(payload):
        ctx = qlab.current()
        if payload == 3 and ctx.attempt == 1:
            assert ctx.cancelled.deadline is not None
            ctx.cancelled.wait(30)  # wakes at the attempt's deadline
            ctx.cancelled.check()
        return payload

    run = qlab.run(
        slow_once,
        range(8),
        workers=2,
        backend=backend,
        timeout=1.0,
        retry=qlab.Retry(3, backoff=None),
        keep_results=True,
    )
    jobs = run.jobs.set_index("job_id")
    assert jobs.status.eq("ok").all() and jobs.result.tolist() == list(range(8))
    assert jobs.attempts[3] >= 2  # (a stall of a second on a busy machine may add one)
    first = run.attempts.query("job_id == 3").iloc[0]
    assert first.outcome == "timeout" and first.error_type == "Cancelled"
    assert "abandoned" not in first.error  # it stopped itself: nothing was taken away


class HangsOnce:
    """Job 3's first attempt blocks on the gate, ignoring cancellation."""

    def __init__(self, gate: SocketGate) -> None:
        self.gate = gate

    def __call__(self, payload):
        if payload == 3 and qlab.current().attempt == 1:
            self.gate(payload)
        return payload


def test_timeout_takes_a_stuck_attempt_away_and_retries(backend, gate):
    run = qlab.run(HangsOnce(gate), range(8), workers=2, backend=backend, timeout=0.5,
                   retry=qlab.Retry(3, backoff=None), keep_results=True)  # fmt: skip
    gate.release()  # the abandoned thread (thread backend) can now finish
    jobs = run.jobs.set_index("job_id")
    assert jobs.status.eq("ok").all() and jobs.result.tolist() == list(range(8))
    assert jobs.attempts[3] >= 2  # (a stall on a busy machine may add one)
    first = run.attempts.query("job_id == 3").iloc[0]
    assert first.outcome == "timeout" and first.error_type == "TimeoutError"
    assert "timeout=0.5" in first.error and first.duration_s >= 0.5
    assert ("thread was abandoned" if backend == "thread" else "process was killed") in first.error
    if backend == "thread":
        assert run.meta["abandoned_threads"] >= 1


def test_generator_runs_in_bounded_memory(backend):
    """The feeder takes payloads only as jobs finish: never more than queue_size ahead.
    (5,000 jobs on Dask: 10 jobs per batch is a Dask task each, a few ms apiece.)"""
    taken = []
    n = 5_000 if name(backend) == "dask" else 20_000

    def payloads():
        for i in range(n):
            taken.append(i)
            yield i

    run = qlab.run(workloads.noop(), payloads(), workers=2, backend=backend, queue_size=100,
                   batch_size=10)  # fmt: skip
    assert run.summary()["ok"] == len(taken) == n
    # when job j was submitted, at least j + 1 - 100 jobs had ended
    jobs = run.jobs
    ended_before = np.searchsorted(np.sort(jobs.end_s), jobs.submitted_s, side="right")
    assert (jobs.job_id + 1 - ended_before <= 100).all()


def test_trace_columns_and_dtypes(backend):
    run = qlab.run(
        FailFirst(1),
        range(10),
        workers=2,
        backend=backend,
        retry=qlab.Retry(1, backoff=qlab.Constant(0.001)),
    )
    att, jobs = run.attempts, run.jobs
    assert list(att.columns) == ATTEMPT_COLUMNS
    assert list(jobs.columns) == JOB_COLUMNS
    assert isinstance(att.outcome.dtype, pd.CategoricalDtype)
    assert isinstance(jobs.status.dtype, pd.CategoricalDtype)
    here = local_host()  # every backend here runs on this machine
    assert att.host.tolist() == [here] * len(att) and jobs.host.tolist() == [here] * 10
    assert att.start_s.dtype == "float64" and (att.end_s >= att.start_s).all()
    assert (att.cpu_s >= 0).all() and att.worker.between(0, 1).all()
    assert att.backoff_s.notna().sum() == 10 and (att.backoff_s.dropna() == 0.001).all()
    retried = att[att.attempt == 2].set_index("job_id").start_s
    failed = att[att.attempt == 1].set_index("job_id").end_s
    assert (retried - failed >= 0.001).all()  # the retry waited its backoff
    assert (jobs.latency_s >= jobs.service_s).all() and (jobs.queue_wait_s >= 0).all()
    meta = run.meta
    assert meta["backend"] == name(backend) and meta["workers"] == 2 and meta["seed"] == 0
    assert {"qlab_version", "python", "platform", "cpu_count", "start_time"} <= set(meta)


def test_summary_counts(backend):
    handler = workloads.flaky(workloads.noop(), transient=0.5, permanent=0.1)
    run = qlab.run(handler, range(200), workers=most(backend, 3), backend=backend,
                   retry=qlab.Retry(1, None))  # fmt: skip
    s = run.summary()
    assert s["jobs"] == 200 and s["ok"] + s["failed"] + s["cancelled"] == 200
    assert s["attempts"] == len(run.attempts) == s["jobs"] + s["retries"]
    assert s["throughput"] == pytest.approx((s["ok"] + s["failed"]) / s["wall_s"])
    assert s["latency_p50_s"] <= s["latency_p95_s"] <= s["latency_p99_s"]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_save_and_load_round_trip(backend, tmp_path, fmt):
    run = qlab.run(FailFirst(1), range(20), workers=2, backend=backend, retry=qlab.Retry(0))
    path = run.save(tmp_path / "run", format=fmt)
    back = qlab.load_run(path)
    assert back.meta["backend"] == name(backend) and back.meta["workers"] == run.meta["workers"]
    pd.testing.assert_frame_equal(back.jobs[OUTCOME], run.jobs[OUTCOME], check_categorical=False)
    assert back.attempts.outcome.tolist() == run.attempts.outcome.tolist()
    for table in ("attempts", "jobs"):  # the host column survives, a category again
        a, b = getattr(back, table).host, getattr(run, table).host
        assert isinstance(a.dtype, pd.CategoricalDtype) and a.tolist() == b.tolist()
    assert back.summary()["failed"] == 20


def test_hooks_observe_start_progress_and_end(backend, gate):
    class Spy(qlab.Hook):
        def __init__(self):
            self.calls = []

        def on_start(self, meta):
            self.calls.append(("start", meta["workers"]))

        def on_progress(self, counts):
            if not self.calls or self.calls[-1][0] != "progress":
                self.calls.append(("progress", counts["submitted"]))
            gate.release()  # the jobs can finish only after a progress report

        def on_end(self, run):
            self.calls.append(("end", len(run.jobs)))

    spy = Spy()
    qlab.run(gate, range(5), workers=2, backend=backend, hooks=[spy])
    assert spy.calls == [("start", 2), ("progress", 5), ("end", 5)]


BAD_INPUT = [
    ({"workers": 0}, ValueError, "workers"),
    ({"workers": 2.5}, ValueError, "workers"),
    ({"backend": "fork"}, ValueError, "backend"),
    ({"retry": "3"}, TypeError, "retry"),
    ({"retry": -1}, ValueError, "retry"),
    ({"timeout": -1}, ValueError, "timeout"),
    ({"timeout": 0}, ValueError, "timeout"),
    ({"seed": "x"}, ValueError, "seed"),
    ({"queue_size": 0}, ValueError, "queue_size"),
    ({"grace": -1}, ValueError, "grace"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"hooks": [object()]}, TypeError, "hooks"),
]


@pytest.mark.parametrize(("kwargs", "error", "name"), BAD_INPUT, ids=lambda v: str(v))
def test_bad_input_fails_fast_naming_the_parameter(backend, kwargs, error, name):
    ran = threading.Event()
    with pytest.raises(error, match=name):
        qlab.run(lambda x: ran.set(), range(3), **{"backend": backend, "workers": 2, **kwargs})
    assert not ran.is_set()


def test_bad_handler_and_payloads(backend):
    with pytest.raises(TypeError, match="handler must be callable"):
        qlab.run(42, range(3), backend=backend)
    with pytest.raises(TypeError, match="payloads"):
        qlab.run(abs, 5, backend=backend)


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: qlab.Retry(max_retries=-1), "max_retries"),
        (lambda: qlab.Retry(backoff=1.0), "backoff"),
        (lambda: qlab.Retry(permanent=("x",)), "permanent"),
        (lambda: qlab.Exponential(base=-1), "base"),
        (lambda: qlab.Exponential(factor=0.5), "factor"),
        (lambda: qlab.Constant(-0.1), "seconds"),
        (lambda: qlab.Uniform(2, 1), "high"),
        (lambda: workloads.flaky(transient=2), "transient"),
        (lambda: workloads.get("nope"), "workload"),
    ],
)
def test_bad_policy_values_name_the_parameter(make, name):
    with pytest.raises((ValueError, TypeError), match=name):
        make()


def test_fake_clock_jumps_only_when_every_worker_waits():
    """Regression: the fake clock jumped while attempts ran, so they seemed to take time
    and retries started late."""
    retry = qlab.Retry(max_retries=3, backoff=qlab.Exponential(base=1, jitter=True))
    run = qlab.run(FailFirst(3), range(200), workers=4, retry=retry, clock=FakeClock())
    att = run.attempts
    assert run.summary()["ok"] == 200 and (att.duration_s == 0).all()
    following = att.groupby("job_id").start_s.shift(-1).dropna()
    waited = following - att.loc[following.index].end_s
    assert (waited >= att.loc[following.index].backoff_s - 1e-9).all()


@pytest.mark.parametrize("keep_results", [False, True])
def test_an_empty_run_has_empty_tables(keep_results):
    run = qlab.run(abs, [], keep_results=keep_results)
    assert run.jobs.empty and run.attempts.empty
    assert list(run.jobs.columns[: len(JOB_COLUMNS)]) == JOB_COLUMNS
    assert ("result" in run.jobs.columns) == keep_results
    assert run.summary()["jobs"] == 0


def test_a_stuck_quick_batch_keeps_its_finished_rows_when_stopped():
    """Stopping for good while a quick batch is stuck in job 100: the 100 attempts
    before it are kept (ok), job 100 and the rest are cancelled."""
    started, release, stop = threading.Event(), threading.Event(), threading.Event()

    def handler(x):
        if x == 100:
            started.set()
            release.wait(30)  # ignores cancellation: only the engine can give up on it

    threading.Thread(target=lambda: started.wait(30) and stop.set(), daemon=True).start()
    run = qlab.run(handler, range(300), workers=1, batch_size=300, grace=0, stop=stop)
    release.set()
    jobs, attempts = run.jobs, run.attempts
    assert jobs.status.tolist() == ["ok"] * 100 + ["cancelled"] * 200
    assert attempts.outcome.tolist() == ["ok"] * 100 + ["cancelled"]
    ok = attempts.iloc[:100]
    assert (ok.start_s.to_numpy()[1:] == ok.end_s.to_numpy()[:-1]).all()
    assert ok.cpu_s.isna().all()  # the batch's CPU time was never read
