"""The engine's parts on their own (no threads where none is needed), and the seams
between them: settlement, the queue, recording and frames, hooks, the clock, the
backend registry."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

import qlab
from qlab.core.batches import EMPTY, Batch, ReadyQueue
from qlab.core.codes import CANCELLED, FAILED, OK, RETRY, ST_CANCELLED, ST_FAILED, TIMEOUT
from qlab.core.protocol import BatchResult, Failure
from qlab.core.retry import Constant, Retry
from qlab.core.settle import JobFailed, settle
from qlab.queues.memory import MemoryQueue, Phase
from qlab.trace import frames
from qlab.trace.recorder import Recorder, Trace

QLAB = Path(qlab.__file__).parent


def rows(n: int, failures: list[Failure] = ()) -> BatchResult:
    """A batch result of ``n`` one-second rows."""
    return BatchResult(
        [float(i) for i in range(n)], [float(i + 1) for i in range(n)], [0.5] * n, list(failures)
    )


# -- settlement: a pure function ------------------------------------------------------


def test_settle_all_ok_ends_every_job():
    s = settle(Batch(range(3), 1, "abc"), rows(3), Retry(), seed=0)
    assert bytes(s.out) == bytes(3) and s.ok == 3 and s.done == 3
    assert not (s.finals or s.retry_now or s.retry_later) and s.rest is EMPTY


def test_settle_decides_retry_failure_and_cancel():
    fails = [
        Failure(0, RETRY, "OSError", "flaky", False),  # attempt 1 of 3: retry later
        Failure(1, RETRY, "OSError", "flaky", False),  # attempt 3 of 3: failed
        Failure(2, RETRY, "KeyError", "k", True),  # permanent: failed at once
        Failure(3, CANCELLED, "Cancelled", "stop", False),
        Failure(4, TIMEOUT, "TimeoutError", "slow", False),  # retryable, outcome timeout
    ]
    items = Batch([10, 11, 12, 13, 14], [1, 3, 1, 1, 2], "vwxyz")
    s = settle(items, rows(6, fails), Retry(2, Constant(0.5)), seed=0, rest=Batch([15], [1], "!"))
    assert list(s.out) == [RETRY, FAILED, FAILED, CANCELLED, TIMEOUT]
    assert s.ok == 0 and [f[:2] for f in s.finals] == [
        (11, ST_FAILED),
        (12, ST_FAILED),
        (13, ST_CANCELLED),
    ]
    assert isinstance(s.finals[0][2], JobFailed)  # no exception kept: one is made
    assert s.retry_later == [(1.5, (10, 2, "v")), (5.5, (14, 3, "z"))]
    assert s.backoff == {0: 0.5, 4: 0.5} and list(s.rest) == [(15, 1, "!")]
    assert [lvl for lvl, *_ in s.logs].count(logging.ERROR) == 2


def test_settle_while_stopping_cancels_what_would_run_again():
    fails = [Failure(0, RETRY, "OSError", "flaky", False)]
    s = settle(Batch(range(2), 1, "ab"), rows(1, fails), Retry(), seed=0, stopping=True,
               rest=Batch([1], [1], "b"))  # fmt: skip
    assert sorted(f[:2] for f in s.finals) == [(0, ST_CANCELLED), (1, ST_CANCELLED)]
    assert not s.retry_later and not s.retry_now and s.rest is EMPTY and not s.backoff


def test_settle_marks_a_failed_code_failed_even_with_retries_left():
    """Regression (defect 4): a row failed because its result could not be sent back
    is a failed attempt, never an ok one."""
    fails = [Failure(0, FAILED, "PicklingError", "result cannot be pickled", True)]
    s = settle(Batch(range(1), 1, "a"), rows(1, fails), Retry(3), seed=0)
    assert list(s.out) == [FAILED] and s.finals[0][:2] == (0, ST_FAILED)


# -- the queue ------------------------------------------------------------------------


def test_queue_put_take_apply_and_counts():
    q = MemoryQueue(capacity=4)
    assert q.put(["a", "b", "c"], now=1.0) == range(3)
    assert q.put(["d", "e"], now=1.0, timeout=0) is None  # no room: 3 + 2 > 4
    batch = q.take_nowait(k=2)
    assert list(batch) == [(0, 1, "a"), (1, 1, "b")] and q.busy == 1
    fails = [Failure(1, RETRY, "OSError", "x", False)]
    s = settle(batch, rows(2, fails), Retry(1, Constant(5)), seed=0)
    assert q.apply(s, lambda s: True)
    c = q.counts()
    assert (c["ok"], c["retries"], c["attempts"], c["unfinished"]) == (1, 1, 2, 2)
    assert q.promote(now=2.0) == 7.0  # job 1 waits until t1 (2.0) + 5
    assert q.promote(now=7.0) is None and len(q.ready) == 2


def test_queue_refuses_a_record_of_an_abandoned_worker():
    q = MemoryQueue(capacity=4)
    q.put(["a"], now=0.0)
    s = settle(q.take_nowait(), rows(1), Retry(), seed=0)
    assert not q.apply(s, lambda s: False)
    assert q.counts()["ok"] == 0 and q.busy == 1  # whoever took the batch over settles it


def test_queue_phases_only_move_forward_and_cancel_what_waits():
    q = MemoryQueue(capacity=10)
    q.put(list("abcd"), now=0.0)
    assert q.advance_phase(Phase.CANCELLING) == Phase.OPEN
    assert q.advance_phase(Phase.DRAINING) == Phase.CANCELLING  # never back
    assert q.take_nowait() is None  # nothing starts once cancelling
    assert q.cancel_waiting() == [0, 1, 2, 3]
    assert bytes(q.status) == bytes([ST_CANCELLED]) * 4 and q.wait_idle(0)
    with pytest.raises(RuntimeError, match="after shutdown"):
        q.put(["e"], now=0.0)


def test_queue_applies_a_settlement_as_stopped_once_cancelling():
    q = MemoryQueue(capacity=10)
    q.put(list("ab"), now=0.0)
    batch = q.take_nowait(k=2)
    q.advance_phase(Phase.CANCELLING)
    s = settle(batch[:1], rows(1), Retry(), seed=0, rest=batch[1:])  # decided before
    assert q.apply(s, lambda s: None)
    assert q.counts()["cancelled"] == 1 and q.counts()["unfinished"] == 0 and not len(q.ready)


def test_ready_queue_takes_by_offset_and_requeues_at_the_front():
    r = ReadyQueue()
    r.put(Batch(range(5), 1, "abcde"))
    assert r.take(2).ids == range(2)
    r.put(Batch([9], [2], "z"), front=True)
    assert [it[0] for it in r.take(10)] == [9, 2, 3, 4] and len(r) == 0


# -- recording and frames -------------------------------------------------------------


def test_recorder_rows_become_frames():
    tr = Trace(0.0, submitted=None, status=None)
    tr.submitted.extend([0.0, 0.0])
    tr.status.extend(bytes([0, ST_FAILED]))
    rec = Recorder(0)
    tr.recorders.append(rec)
    fails = [Failure(1, RETRY, "OSError", "boom", False)]
    s = settle(Batch(range(2), 1, "ab"), rows(2, fails), Retry(0), seed=0)
    rec.add(s.items, s.res, 2, s.out, s.errors, s.backoff)
    cols = frames.columns(tr)
    att = frames.attempts_frame(tr, cols)
    jobs = frames.jobs_frame(tr, cols)
    assert att.outcome.tolist() == ["ok", "failed"] and att.duration_s.tolist() == [1.0, 1.0]
    assert jobs.status.tolist() == ["ok", "failed"] and jobs.error.tolist()[1] == "boom"
    assert jobs.latency_s.tolist() == [1.0, 2.0]


def test_summary_of_the_arrays_is_the_summary_of_the_frames():
    flaky = qlab.workloads.flaky(qlab.workloads.noop(), transient=0.4, permanent=0.1)
    run = qlab.run(flaky, range(300), workers=2, retry=qlab.Retry(1, None), progress=False)
    first = qlab.Run(run._trace.snapshot(), run.meta, run.wall_s)
    before = first.summary()  # from the trace's arrays: no frame made
    assert "jobs" not in first.__dict__ and "attempts" not in first.__dict__
    made = qlab.Run(None, run.meta, run.wall_s, frames=(run.jobs, run.attempts))
    after = made.summary()  # from the frames' arrays
    assert list(before.index) == list(after.index)
    assert before.fillna(-1).tolist() == after.fillna(-1).tolist()
    assert before["failed"] > 0 and before["retries"] > 0
    assert after["cpu_s"] == run.attempts.cpu_s.sum()  # the sum pandas makes
    assert after["latency_p95_s"] == run.jobs.latency_s.quantile(0.95)


def test_a_queue_history_is_a_trace_of_the_same_frames():
    from qlab.core.codes import LOST, S_OK, S_OPEN
    from qlab.queues.history import build_run

    a, b = "web-1:1:2:aa", "web-2:3:4:bb"
    jobs = [(5, 10.0, S_OK), (9, 10.0, ST_FAILED), (12, 10.5, S_OPEN)]  # a consumer's subset
    rows = [  # (job, attempt, worker, start, end, cpu, outcome, etype, error, backoff, ...)
        (5, 1, 0, 12.0, 12.5, 0.1, OK, None, None, None, 0.0, b),
        (5, 1, -1, 11.0, 11.0, float("nan"), LOST, "Lost", "gone", None, 0.0, a),
        (9, 1, 1, 11.0, 11.5, 0.1, RETRY, "OSError", "try", 0.25, 0.0, a),
        (9, 2, 1, 12.0, 12.5, 0.1, FAILED, "KeyError", "bad", None, 0.0, None),
    ]
    run = build_run(jobs, rows, {"created": "10.0"})
    att, job = run.attempts, run.jobs
    assert list(att.columns) == [*frames.attempts_frame(Trace(0.0)).columns, "consumer"]
    assert att.job_id.tolist() == [5, 5, 9, 9] and att.attempt.tolist() == [1, 2, 1, 2]
    assert att.outcome.tolist() == ["lost", "ok", "retry", "failed"]
    assert att.host.tolist()[:3] == ["web-1", "web-2", "web-1"] and att.host.isna().iloc[3]
    assert att.start_s.tolist() == [1.0, 2.0, 1.0, 2.0] and att.backoff_s.iloc[2] == 0.25
    assert job.job_id.tolist() == [5, 9, 12] and job.attempts.tolist() == [2, 2, 0]
    assert job.status.tolist() == ["ok", "failed", "pending"]
    assert job.consumer.tolist()[0] == b and job.host.tolist()[0] == "web-2"
    assert job.error.tolist()[1] == "bad" and job.error_type.tolist()[1] == "KeyError"
    assert job.latency_s.tolist()[:2] == [2.5, 2.5] and run.meta["lost"] == 1
    assert run.wall_s == 2.5
    with pytest.raises(ValueError, match="jobs the queue does not hold: \\[7\\]"):
        build_run(jobs, [(7, *rows[0][1:])], {"created": "10.0"})


# -- seams ----------------------------------------------------------------------------


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_nothing_under_backends_imports_the_engine():
    engine_side = {
        "qlab.engine.pool",
        "qlab.engine.drivers",
        "qlab.engine.runner",
        "qlab.queues.memory",
        "qlab.core.settle",
    }
    for path in (QLAB / "backends").glob("*.py"):
        assert not (_imports(path) & engine_side), path.name


def test_no_module_is_much_over_300_lines():
    long = {p.relative_to(QLAB): n for p in QLAB.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 360}  # fmt: skip
    assert not long


def test_the_backend_registry_names_each_backend_once():
    from qlab import backends

    assert backends.BACKENDS[:3] == ("thread", "process", "inline")
    assert len(set(backends.BACKENDS)) == len(backends.BACKENDS)
    with pytest.raises(ValueError, match="backend must be one of"):
        backends.resolve("fork")
    with pytest.raises(TypeError, match="backend"):
        backends.resolve(42)
    inline = backends.resolve("inline")
    assert backends.resolve(inline) is inline  # an object passes through


def test_a_backend_object_can_be_passed():
    from qlab.backends.thread import ThreadBackend

    class Named(ThreadBackend):
        name = "my-threads"

    run = qlab.run(abs, range(5), workers=2, backend=Named())
    assert run.meta["backend"] == "my-threads" and run.summary()["ok"] == 5


def test_outcome_and_status_names_are_defined_once():
    from qlab.core.codes import JOB_STATUSES, OUTCOMES

    run = qlab.run(abs, range(3))
    assert list(run.attempts.outcome.cat.categories) == list(OUTCOMES)
    assert list(run.jobs.status.cat.categories) == list(JOB_STATUSES)
    assert OUTCOMES[OK] == "ok"
