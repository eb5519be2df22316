"""Regression tests, one per defect that hostile use of the engine found (issue 10).

Each is named after the bug it pins down. Process-backend defects are in
test_process.py; the CLI's in test_cli.py; the USL fit's in test_usl.py.
"""

from __future__ import annotations

import logging
import threading

import pytest

import qlab
from qlab import workloads
from qlab.testing import FakeClock

# -- defect 2: Future.cancel() on a pending future -------------------------------------


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_cancelling_pending_futures_cancels_their_jobs_and_never_hangs(backend, gate):
    pool = qlab.Pool(gate, workers=1, backend=backend, batch_size=4)
    futures = [pool.submit(i) for i in range(40)]
    assert gate.started.wait(10)
    cancelled = [i for i, f in enumerate(futures) if i >= 4 and f.cancel()]
    gate.release()
    pool.shutdown(wait=True)
    run = pool.trace()
    jobs = run.jobs.set_index("job_id")
    # a job whose Future was cancelled before it left the queue is cancelled; one
    # already sent ahead to a worker process (at most one batch) runs, result dropped
    was_cancelled = jobs.status[cancelled].eq("cancelled")
    assert jobs.attempts[cancelled][was_cancelled].eq(0).all()
    dropped = int((~was_cancelled).sum())
    assert dropped == run.meta["results_dropped"] <= (4 if backend == "process" else 0)
    kept = [i for i in range(40) if i not in cancelled]
    assert all(futures[i].result(timeout=0) == i for i in kept)  # every other one resolved
    assert jobs.status[kept].eq("ok").all()


# -- defect 5: hooks that raise ------------------------------------------------------


class Exits(qlab.Hook):
    def __init__(self, where: str) -> None:
        self.where = where

    def on_start(self, meta):
        if self.where == "start":
            raise SystemExit(3)

    def on_progress(self, counts):
        if self.where == "progress":
            raise SystemExit(3)

    def on_end(self, run):
        if self.where == "end":
            raise SystemExit(3)


@pytest.mark.parametrize("where", ["start", "progress", "end"])
@pytest.mark.parametrize("backend", ["thread", "process"])
def test_a_hook_raising_system_exit_is_removed_and_the_run_completes(where, backend, gate, caplog):
    class Until(qlab.Hook):  # keeps the run going until a progress tick has happened
        def on_progress(self, counts):
            gate.release()

    with caplog.at_level(logging.WARNING, logger="qlab"):
        run = qlab.run(gate, range(20), workers=2, backend=backend,
                       hooks=[Exits(where), Until()])  # fmt: skip
    assert run.summary()["ok"] == 20
    assert any("removed" in r.getMessage() for r in caplog.records)


# -- defect 6: one clock for the whole run -------------------------------------------


def test_a_fake_clock_drives_deadlines_and_cancel_tokens():
    clock = FakeClock(start=1e9)  # far from time.perf_counter(): a mixed-up clock shows

    def handler(x):
        ctx = qlab.current()
        if x == 1 and ctx.attempt == 1:
            clock.advance(10)  # this attempt "takes" 10 s on the run's clock
            ctx.cancelled.check()  # past its 5 s deadline: Cancelled -> timeout
        return bool(ctx.cancelled)

    run = qlab.run(handler, range(3), workers=1, backend="thread", clock=clock, timeout=5,
                   keep_results=True, retry=qlab.Retry(1, backoff=None))  # fmt: skip
    assert run.jobs.result.tolist() == [False, False, False]  # nobody is cancelled by mistake
    first = run.attempts.query("job_id == 1").iloc[0]
    assert first.outcome == "timeout" and first.duration_s == 10.0


def test_a_fake_clock_is_refused_by_the_process_backend():
    with pytest.raises(ValueError, match="clock"):
        qlab.run(abs, range(3), backend="process", clock=FakeClock())


# -- defect 7: raise ... from qlab.Permanent(), and predicates -----------------------


def test_raising_from_permanent_fails_at_once():
    def handler(x):
        try:
            raise qlab.Permanent("bad payload")
        except qlab.Permanent as cause:
            raise KeyError(x) from cause

    run = qlab.run(handler, range(3), retry=qlab.Retry(3, backoff=None))
    assert run.jobs.attempts.tolist() == [1, 1, 1] and run.jobs.status.eq("failed").all()


def test_permanent_takes_a_predicate():
    def handler(x):
        raise OSError("quota exceeded" if x else "flaky")

    retry = qlab.Retry(2, backoff=None, permanent=lambda e: "quota" in str(e))
    run = qlab.run(handler, range(2), retry=retry)
    assert run.jobs.attempts.tolist() == [3, 1]


# -- defect 9: the smaller ones ------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "name"), [({"hooks": None}, "hooks"), ({"stop": True}, "stop")])
def test_bad_hooks_and_stop_name_the_parameter(kwargs, name):
    with pytest.raises(TypeError, match=name):
        qlab.run(abs, range(3), **kwargs)


def test_a_thread_backend_base_exception_keeps_its_type():
    def handler(x):
        if x == 2 and qlab.current().attempt == 1:
            raise SystemExit(1)
        return x

    run = qlab.run(handler, range(5), workers=1, retry=qlab.Retry(1, backoff=None))
    row = run.attempts.query("job_id == 2").iloc[0]
    assert row.outcome == "crashed" and row.error_type == "SystemExit"
    assert run.summary()["ok"] == 5  # the rest of its batch ran again, uncharged


def test_saving_csv_over_parquet_loads_the_csv(tmp_path):
    a = qlab.run(abs, range(3))
    b = qlab.run(abs, range(5))
    a.save(tmp_path / "r")
    b.save(tmp_path / "r", format="csv")
    assert len(qlab.load_run(tmp_path / "r").jobs) == 5
    assert not list((tmp_path / "r").glob("*.parquet"))


def test_a_generator_that_raises_gives_back_the_run_of_what_ran():
    def payloads():
        yield from range(10)
        raise OSError("source went away")

    with pytest.raises(OSError, match="source went away") as info:
        qlab.run(abs, payloads(), workers=2)
    run = info.value.qlab_run
    assert len(run.jobs) == 10 and run.jobs.status.isin(["ok", "cancelled"]).all()
    assert run.meta["interrupted"] == "error"


def test_abandoned_threads_are_named_and_counted(gate):
    def handler(x):
        if x == 0 and qlab.current().attempt == 1:
            gate(x)  # ignores its cancel token
        return x

    run = qlab.run(handler, range(3), workers=1, timeout=0.3, retry=qlab.Retry(1, None))
    assert run.meta["abandoned_threads"] == 1
    names = [t.name for t in threading.enumerate()]
    assert "qlab-abandoned-0" in names and names.count("qlab-worker-0") == 0
    gate.release()


# -- the inline backend ----------------------------------------------------------------


def test_inline_runs_every_job_in_the_callers_thread():
    me = threading.current_thread()
    run = qlab.run(lambda x: threading.current_thread() is me, range(50), workers=3,
                   backend="inline", keep_results=True, retry=qlab.Retry(2))  # fmt: skip
    assert run.jobs.result.all() and run.attempts.worker.nunique() == 3
    assert not [t for t in threading.enumerate() if t.name.startswith("qlab-worker")]


def test_inline_submit_returns_a_finished_future_with_retries_done():
    flaky = workloads.flaky(workloads.noop(), transient=0.5)
    with qlab.Pool(flaky, workers=1, backend="inline", retry=qlab.Retry(5)) as pool:
        futures = [pool.submit(i) for i in range(20)]
        assert all(f.done() for f in futures)
    assert pool.trace().jobs.attempts.max() > 1


def test_a_stop_set_before_the_run_starts_runs_no_job():
    stop = threading.Event()
    stop.set()
    run = qlab.run(abs, range(100), workers=2, stop=stop)
    assert run.jobs.status.eq("cancelled").all() and run.attempts.empty
    assert run.meta["interrupted"] == "stopped"


async def _awaits(x):
    return x


@pytest.mark.parametrize("backend", ["thread", "inline"])
def test_an_async_handler_on_a_sync_backend_is_refused_before_any_job(backend):
    # (workloads.asleep is accepted there: it has a blocking twin, __qlab_sync__)
    with pytest.raises(TypeError, match=r"async def.*asyncio"):
        qlab.run(_awaits, range(3), backend=backend)
