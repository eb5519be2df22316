"""run.to_perfetto: Chrome trace-event JSON, one slice per attempt."""

from __future__ import annotations

import json
from collections import Counter

import pytest

import qlab
from qlab.trace.results import Run

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
        assert e["dur"] == pytest.approx(row.duration_s * 1e6, abs=2e-3) and e["dur"] >= 0
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


# -- the trace-event format, checked with a schema of its required fields -----------------
# Written from the Trace Event Format document (the JSON Object Format) and catapult's
# reserved colour names: every event has name, ph, pid and tid; ts (µs) unless it is
# metadata; an "X" slice has dur; flow events ("s", "t", "f") have an id and a cat;
# a counter's args are numbers; metadata names one of five kinds.

RESERVED_COLOURS = [
    "thread_state_uninterruptible", "thread_state_iowait", "thread_state_running",
    "thread_state_runnable", "thread_state_sleeping", "thread_state_unknown",
    "background_memory_dump", "light_memory_dump", "detailed_memory_dump",
    "vsync_highlight_color", "generic_work", "good", "bad", "terrible", "black", "grey",
    "white", "yellow", "olive", "rail_response", "rail_animation", "rail_idle", "rail_load",
    "startup", "heap_dump_stack_frame", "heap_dump_object_type",
    "heap_dump_child_node_highlight", "cq_build_running", "cq_build_passed",
    "cq_build_failed", "cq_build_abandoned", "cq_build_attempt_runnig",
    "cq_build_attempt_passed", "cq_build_attempt_failed",
]  # fmt: skip
PHASES = ["B", "E", "X", "i", "I", "C", "b", "n", "e", "s", "t", "f", "P",
          "N", "O", "D", "M", "V", "v", "R", "c", "(", ")"]  # fmt: skip


def _when(ph: object, then: dict) -> dict:
    match = {"const": ph} if isinstance(ph, str) else {"enum": ph}
    return {"if": {"properties": {"ph": match}, "required": ["ph"]}, "then": then}


EVENT_SCHEMA = {
    "type": "object",
    "required": ["name", "ph", "pid", "tid"],
    "properties": {
        "name": {"type": "string"},
        "cat": {"type": "string"},
        "ph": {"enum": PHASES},
        "ts": {"type": "number", "minimum": 0},  # microseconds
        "dur": {"type": "number", "minimum": 0},  # microseconds
        "pid": {"type": "integer"},
        "tid": {"type": "integer"},
        "id": {"type": ["integer", "string"]},
        "bp": {"const": "e"},
        "s": {"enum": ["g", "p", "t"]},
        "cname": {"enum": RESERVED_COLOURS},
        "args": {"type": "object"},
    },
    "allOf": [
        _when("X", {"required": ["ts", "dur"]}),
        _when(["B", "E", "i", "I", "C"], {"required": ["ts"]}),
        _when(["s", "t", "f"], {"required": ["ts", "id", "cat"]}),
        _when("C", {"required": ["args"], "properties": {"args": {
            "minProperties": 1, "additionalProperties": {"type": "number"}}}}),
        _when("M", {
            "required": ["args"],
            "properties": {"name": {"enum": ["process_name", "process_labels",
                                             "process_sort_index", "thread_name",
                                             "thread_sort_index"]}},
            "allOf": [
                {"if": {"properties": {"name": {"enum": ["process_name", "thread_name"]}}},
                 "then": {"properties": {"args": {"required": ["name"], "properties": {
                     "name": {"type": "string"}}}}}},
                {"if": {"properties": {"name": {"enum": ["process_sort_index",
                                                         "thread_sort_index"]}}},
                 "then": {"properties": {"args": {"required": ["sort_index"], "properties": {
                     "sort_index": {"type": "integer"}}}}}},
            ],
        }),
    ],
}  # fmt: skip
TRACE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["traceEvents"],
    "properties": {
        "traceEvents": {"type": "array", "items": EVENT_SCHEMA},
        "displayTimeUnit": {"enum": ["ms", "ns"]},
        "otherData": {"type": "object"},
    },
}
# the fields each phase needs, for a check that does not need jsonschema
NEEDS = {"X": {"ts", "dur"}, "C": {"ts", "args"}, "i": {"ts"}, "s": {"ts", "id", "cat"},
         "f": {"ts", "id", "cat"}, "M": {"args"}}  # fmt: skip


def _validator():
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(TRACE_SCHEMA)
    return jsonschema.Draft202012Validator(TRACE_SCHEMA)


def _slices_by_track(events: list[dict]) -> dict[tuple[int, int], list[tuple[int, int, dict]]]:
    """Each track's slices as (start, end) in whole nanoseconds, as viewers read them."""
    tracks: dict[tuple[int, int], list] = {}
    for e in events:
        if e["ph"] == "X":
            start = round(e["ts"] * 1000)
            tracks.setdefault((e["pid"], e["tid"]), []).append(
                (start, start + round(e["dur"] * 1000), e)
            )
    return {tid: sorted(s, key=lambda x: (x[0], -x[1])) for tid, s in tracks.items()}


def _partial_overlaps(events: list[dict]) -> int:
    """Slices that overlap another on their track without nesting in it (viewers
    draw a thread track as a stack of nested slices; others are dropped)."""
    bad = 0
    for slices in _slices_by_track(events).values():
        open_ends: list[float] = []
        for start, end, _ in slices:
            while open_ends and open_ends[-1] <= start:
                open_ends.pop()
            if open_ends and end > open_ends[-1]:
                bad += 1
            open_ends.append(end)
    return bad


def test_the_export_validates_against_the_trace_event_schema(run, tmp_path) -> None:
    doc = json.loads(run.to_perfetto(tmp_path / "run.json").read_text())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in _validator().iter_errors(doc)]
    assert not errors, errors[:5]
    phases = Counter(e["ph"] for e in doc["traceEvents"])
    assert phases.keys() == {"M", "X", "C", "s", "f", "i"}  # the schema met every kind
    assert phases["X"] == len(run.attempts)


def test_each_phase_has_its_required_fields(run, tmp_path) -> None:
    doc = json.loads(run.to_perfetto(tmp_path / "run.json").read_text())
    assert doc["displayTimeUnit"] in ("ms", "ns") and isinstance(doc["otherData"], dict)
    for e in doc["traceEvents"]:
        assert {"name", "ph", "pid", "tid"} <= set(e), e
        assert NEEDS.get(e["ph"], {"ts"}) <= set(e), e
        if e["ph"] == "X":
            assert {"job_id", "attempt", "outcome"} <= set(e["args"])  # design §7's args
            assert e["cname"] in RESERVED_COLOURS


def test_the_schema_rejects_what_viewers_reject(run, tmp_path) -> None:
    validator = _validator()
    doc = json.loads(run.to_perfetto(tmp_path / "run.json").read_text())
    first = {ph: next(e for e in doc["traceEvents"] if e["ph"] == ph) for ph in "XsCM"}
    broken = [
        ("X", lambda e: e.pop("dur")),
        ("X", lambda e: e.update(ts="12")),
        ("X", lambda e: e.update(cname="green")),
        ("X", lambda e: e.pop("tid")),
        ("s", lambda e: e.pop("id")),
        ("C", lambda e: e.update(args={"value": "3"})),
        ("M", lambda e: e.update(name="thread_title")),
    ]
    for ph, spoil in broken:
        event = json.loads(json.dumps(first[ph]))
        spoil(event)
        assert not validator.is_valid({"traceEvents": [event]}), (ph, event)
    assert validator.is_valid({"traceEvents": list(first.values())})


def test_each_flow_binds_a_failed_attempt_to_its_retry(run, tmp_path) -> None:
    events = json.loads(run.to_perfetto(tmp_path / "run.json").read_text())["traceEvents"]
    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    ends = {e["id"]: e for e in events if e["ph"] == "f"}
    assert len(starts) == sum(e["ph"] == "s" for e in events)  # ids are unique
    assert starts.keys() == ends.keys()
    tracks = _slices_by_track(events)

    def enclosing(e: dict) -> dict:  # the slice a flow event binds to on its track
        at = round(e["ts"] * 1000)
        inside = [x for a, b, x in tracks[(e["pid"], e["tid"])] if a <= at <= b]
        assert len(inside) == 1, e
        return inside[0]["args"]

    for fid, s in starts.items():
        f = ends[fid]
        assert (s["name"], s["cat"]) == (f["name"], f["cat"]) and f["bp"] == "e"
        failed, retry = enclosing(s), enclosing(f)
        assert failed["job_id"] == retry["job_id"]
        assert retry["attempt"] == failed["attempt"] + 1 and failed["outcome"] != "ok"


def test_slices_of_a_worker_track_nest(run, tmp_path) -> None:
    events = json.loads(run.to_perfetto(tmp_path / "run.json").read_text())["traceEvents"]
    assert _partial_overlaps(events) == 0


def test_asyncio_lane_slices_nest_on_their_tracks(tmp_path) -> None:
    """Regression: an asyncio lane running several tasks put overlapping attempts on
    one thread track; viewers need the slices of a track to nest."""
    from qlab.backends.aio.backend import AsyncioBackend

    run = qlab.run(qlab.workloads.asleep(ms=10), range(80), workers=2,
                   backend=AsyncioBackend(concurrency=8))  # fmt: skip
    events = json.loads(run.to_perfetto(tmp_path / "run.json").read_text())["traceEvents"]
    assert _partial_overlaps(events) == 0


BASE = {0: "node-a", 1: "node-a", 2: "node-b", 3: "node-b"}


def _on_two_hosts(tmp_path):
    """A run whose workers 0-1 are on node-a and 2-3 on node-b, and whose busiest
    worker moves to the other host half-way through its attempts (as a Dask slot does
    when its worker is replaced). The hosts go in meta as the Dask backend reports
    them, before the frames are built; a first snapshot of the same trace picks the
    worker and the moment."""
    flaky = qlab.workloads.flaky(qlab.workloads.sleep(ms=1), transient=0.3)
    with qlab.Pool(flaky, workers=4, retry=qlab.Retry(2, qlab.Constant(0.001))) as pool:
        for i in range(80):
            pool.submit(i)
    run = pool.trace()
    first = Run(run._trace.snapshot(), {}, run.wall_s)  # a copy to look at first
    origin = run._trace.origin
    starts = first.attempts.groupby("worker").start_s
    mover = int(starts.size().idxmax())
    split = float(starts.get_group(mover).median())
    other = "node-b" if BASE[mover] == "node-a" else "node-a"
    run.meta["worker_hosts"] = {w: [[0.0, h, f"tcp://{h}:{w}"]] for w, h in BASE.items()}
    run.meta["worker_hosts"][mover].append([origin + split, other, f"tcp://{other}:9"])
    path = run.to_perfetto(tmp_path / "hosts.json")
    att = run.attempts
    expected = att.worker.map(BASE)
    moved = (att.worker == mover) & (att.start_s >= split)
    expected[moved] = other
    assert moved.any() and not moved.all()
    return run, json.loads(path.read_text())["traceEvents"], expected


def test_tracks_are_grouped_by_host_one_process_each(tmp_path) -> None:
    run, events, expected = _on_two_hosts(tmp_path)
    att = run.attempts
    assert att.host.astype(str).tolist() == expected.tolist()
    procs = {e["pid"]: e["args"]["name"] for e in events if e.get("name") == "process_name"}
    assert procs == {1: "node-a", 2: "node-b", 3: "all hosts"}
    where = att.set_index(["job_id", "attempt"])
    xs = [e for e in events if e["ph"] == "X"]
    for e in xs:
        row = where.loc[(e["args"]["job_id"], e["args"]["attempt"])]
        assert procs[e["pid"]] == row.host and e["tid"] == row.worker + 1
    names: dict[str, set] = {}
    for e in events:
        if e.get("name") == "thread_name":
            names.setdefault(procs[e["pid"]], set()).add(e["args"]["name"])
    tracks = att.assign(host=expected).groupby("host").worker.unique()
    assert names == {h: {f"worker {w}" for w in ws} for h, ws in tracks.items()}
    assert {e["pid"] for e in events if e["ph"] == "C"} == {3}
    slices = {(e["pid"], e["tid"]) for e in xs}
    for e in events:  # flow ends and backoff instants sit on their attempt's track
        if e["ph"] in "sfi":
            assert (e["pid"], e["tid"]) in slices
    for pid in (1, 2):  # a worker's slices nest on its track in each host's process
        assert _partial_overlaps([e for e in events if e["pid"] == pid]) == 0
    _validator().validate({"traceEvents": events})


def test_consumers_of_a_shared_queue_get_a_process_each():
    # two consumers on one host both number their workers from 0: a process each, so
    # their worker 0 attempts that overlap in time need no extra track
    import pandas as pd

    from qlab.trace.perfetto.layout import processes, tracks

    att = pd.DataFrame({
        "worker": [0, 0, 0, 0], "start_s": [0.0, 0.1, 1.0, 1.1], "end_s": [1.0, 1.1, 2.0, 2.1],
        "host": ["h", "h", "h", "h"], "consumer": ["h:1:0:a", "h:2:0:b", "h:1:0:a", "h:2:0:b"],
    })  # fmt: skip
    pids, names = processes(att)
    assert names == ["h:1:0:a", "h:2:0:b"] and pids.tolist() == [1, 2, 1, 2]
    tids, extra = tracks(att, pids)
    assert tids.tolist() == [1, 1, 1, 1] and extra == {}
    # without the processes, the same attempts overlap on one worker: a second track
    assert tracks(att)[0].tolist() == [1, 2, 1, 2]
