"""run.to_perfetto: Chrome trace-event JSON, one slice per attempt."""

from __future__ import annotations

import json
from collections import Counter

import pytest

import qlab

pytestmark = pytest.mark.timeout(60)

REQUIRED = {"ph", "ts", "pid", "tid"}


@pytest.fixture(scope="module")
def run():
    flaky = qlab.workloads.flaky(qlab.workloads.sleep(ms=1), transient=0.3)
    retry = qlab.Retry(max_retries=2, backoff=qlab.Constant(0.002))
    return qlab.run(flaky, range(60), workers=3, retry=retry, rate_limit=5000)


def test_events_have_the_required_fields_in_microseconds(run, tmp_path) -> None:
    doc = json.loads(run.to_perfetto(tmp_path / "run.json").read_text())
    events = doc["traceEvents"]
    for e in events:
        assert set(e) >= REQUIRED, e
        assert isinstance(e["ts"], int | float) and isinstance(e["pid"], int)
    xs = [e for e in events if e["ph"] == "X"]
    assert len(xs) == len(run.attempts)  # one slice per attempt
    att = run.attempts.set_index(["job_id", "attempt"])
    for e in xs:
        row = att.loc[(e["args"]["job_id"], e["args"]["attempt"])]
        assert e["ts"] == pytest.approx(row.start_s * 1e6, abs=1e-3)
        assert e["dur"] == pytest.approx(row.duration_s * 1e6, abs=1e-3) and e["dur"] >= 0
        assert e["tid"] == row.worker + 1
        assert e["cat"] == e["args"]["outcome"] == row.outcome
        if row.outcome == "retry":
            assert e["args"]["error_type"] == row.error_type
            assert e["args"]["backoff_s"] == pytest.approx(row.backoff_s)
    assert {(e["args"]["job_id"], e["args"]["attempt"]) for e in xs} == set(att.index)


def test_tracks_flows_and_counters(run, tmp_path) -> None:
    doc = json.loads(run.to_perfetto(tmp_path / "run.json").read_text())
    kinds = Counter(e["ph"] for e in doc["traceEvents"])
    retries = int((run.attempts.attempt > 1).sum())
    assert retries > 0 and kinds["s"] == kinds["f"] == retries  # an arrow per retry
    assert kinds["i"] == int((run.attempts.backoff_s > 0).sum())
    names = {e["args"]["name"] for e in doc["traceEvents"] if e.get("name") == "thread_name"}
    assert names == {"worker 0", "worker 1", "worker 2"}
    counters = {e["name"] for e in doc["traceEvents"] if e["ph"] == "C"}
    assert counters == {"jobs in flight", "busy workers", "queue depth"}
    busy = [e["args"]["value"] for e in doc["traceEvents"] if e.get("name") == "busy workers"]
    assert max(busy) <= 3 and busy[-1] == 0
    assert doc["otherData"]["attempts"] == len(run.attempts)


def test_max_attempts_keeps_the_first_ones(run, tmp_path) -> None:
    doc = json.loads(run.to_perfetto(tmp_path / "small.json", max_attempts=5).read_text())
    xs = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert len(xs) == 5 and doc["otherData"]["attempts_written"] == 5
    first = sorted(run.attempts.start_s)[:5]
    assert sorted(e["ts"] for e in xs) == pytest.approx([t * 1e6 for t in first], abs=1e-3)
    with pytest.raises(ValueError, match="max_attempts must be an int >= 1, got 0"):
        run.to_perfetto(tmp_path / "x.json", max_attempts=0)
