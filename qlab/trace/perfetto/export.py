"""A run as a Chrome trace-event JSON file, for ui.perfetto.dev and chrome://tracing.

``run.to_perfetto("run.json")`` writes the JSON Object Format of the Trace Event
Format: ``{"traceEvents": [...], "displayTimeUnit": "ms", "otherData": meta}``, with
times in microseconds from the run's start:

- one process (pid 1) named after the run, one thread track per worker (tid
  ``worker + 1``, named ``worker N``), and extra tracks ``worker N (2)``... for a worker
  that ran attempts at once (an asyncio lane), so that slices on a track nest;
- one complete slice (``ph: "X"``, ``ts``, ``dur``) per attempt, named ``job J`` (``job J
  #A`` for attempt A > 1), its category and colour (``cname``) from the outcome, and
  job_id, attempt, outcome, cpu_s, throttle_s, backoff_s, error_type and error in its
  args;
- a flow arrow (``ph: "s"`` in the failed attempt, ``ph: "f"`` bound to the enclosing
  slice of the retry) from each failed attempt to its retry, and an instant
  (``ph: "i"``) where a backoff begins;
- counter tracks (``ph: "C"``): jobs in flight (submitted, not finished), busy
  workers (attempts running) and queue depth (the difference: jobs waiting), in the
  host's process, or with several hosts in a process of their own (``all hosts``).

A big run would make a big file (about 300 bytes per attempt): ``max_attempts=``
(100,000 by default) keeps the attempts that started first, a readable window of
the timeline, and ``otherData`` says how many were left out; counter tracks keep at
most ``max_counter_points`` points each.

Example:
    >>> import json, os, tempfile, qlab
    >>> run = qlab.run(qlab.workloads.noop(), range(3), workers=1)
    >>> path = os.path.join(tempfile.mkdtemp(), "run.json")
    >>> doc = json.load(open(to_perfetto(run, path)))
    >>> sorted({e["ph"] for e in doc["traceEvents"]}), doc["otherData"]["attempts_written"]
    (['C', 'M', 'X'], 3)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qlab.core.checks import check_int
from qlab.trace.perfetto.layout import counters, processes, tracks

__all__ = ["COLOURS", "to_perfetto"]

# outcome -> a colour name the trace viewers reserve (catapult's color scheme)
COLOURS = {
    "ok": "good",
    "retry": "yellow",
    "failed": "terrible",
    "timeout": "bad",
    "crashed": "black",
    "cancelled": "grey",
}


def to_perfetto(
    run: Any, path: str | Path, max_attempts: int = 100_000, max_counter_points: int = 20_000
) -> Path:
    """Write ``run`` as trace-event JSON to ``path``; return the path.

    Args:
        run: a :class:`qlab.Run`.
        path: the file to write (``.json``).
        max_attempts: attempts written at most (those that started first).
        max_counter_points: points per counter track at most.

    Raises:
        ValueError: ``max_attempts`` or ``max_counter_points`` below 1.
    """
    check_int("max_attempts", max_attempts, 1)
    check_int("max_counter_points", max_counter_points, 1)
    import numpy as np

    att = run.attempts
    total = len(att)
    if total > max_attempts:
        keep = np.sort(np.argsort(att["start_s"].to_numpy(), kind="stable")[:max_attempts])
        att = att.iloc[keep]
    path = Path(path)
    meta = {k: v for k, v in run.meta.items() if isinstance(v, str | int | float | bool)}
    meta.update(attempts=total, attempts_written=len(att), time_unit="microseconds")
    pids, hosts = processes(att)
    tids, names = tracks(att, pids)
    head = _metadata(run, att, tids, pids, hosts, names)
    xs, rest = _slices(att, tids, pids)
    rest += counters(run, max_counter_points, 1 if len(hosts) < 2 else len(hosts) + 1)
    with path.open("wb") as f:
        f.write(b'{"displayTimeUnit": "ms", "otherData": ')
        f.write(json.dumps(meta, default=str).encode())
        f.write(b', "traceEvents": [\n')
        f.write("".join(line + ",\n" for line in head[1:] + rest).encode())
        if xs is not None:  # one buffer of X events, each followed by ",\n"
            offsets = memoryview(xs.buffers()[1]).cast("i")
            data = memoryview(xs.buffers()[2])
            f.write(data[offsets[xs.offset] : offsets[xs.offset + len(xs)]])
        f.write(head[0].encode())  # the last event: no comma after it
        f.write(b"\n]}\n")
    return path


def _metadata(
    run: Any, att: Any, tids: Any, pids: Any, hosts: list[str], names: dict[int, str]
) -> list[str]:
    """Process names (a host each, labelled with the run) and their worker tracks'
    names and order. With one host, every worker has a track, even an idle one."""
    backend, workers = run.meta.get("backend", "?"), run.meta.get("workers", "?")
    title = f"qlab run: {run.meta.get('workload', '')} ({backend}, {workers} workers)"
    out = []
    for pid, host in enumerate(hosts, start=1):
        out.append(_meta("process_name", pid, 0, {"name": host}))
        out.append(_meta("process_labels", pid, 0, {"labels": title}))
        out.append(_meta("process_sort_index", pid, 0, {"sort_index": pid}))
    if len(hosts) > 1:  # the run-wide counters get a process of their own
        out.append(_meta("process_name", len(hosts) + 1, 0, {"name": "all hosts"}))
        out.append(_meta("process_labels", len(hosts) + 1, 0, {"labels": title}))
    n = (
        int(workers)
        if isinstance(workers, int)
        else int(att["worker"].max() + 1 if len(att) else 0)
    )
    pairs = set(zip(pids.tolist(), tids.tolist(), strict=True))
    if len(hosts) < 2:
        pairs |= {(1, w + 1) for w in range(n)}
    span = max(n, int(att["worker"].max()) + 1 if len(att) else 1, 1)
    label = {pt: names.get(pt[1], f"worker {(pt[1] - 1) % span}") for pt in pairs}
    for order, (pid, tid) in enumerate(sorted(pairs, key=lambda pt: (pt[0], label[pt]))):
        out.append(_meta("thread_name", pid, tid, {"name": label[(pid, tid)]}))
        out.append(_meta("thread_sort_index", pid, tid, {"sort_index": order}))
    return out


def _meta(name: str, pid: int, tid: int, args: dict[str, Any]) -> str:
    return json.dumps({"ph": "M", "name": name, "pid": pid, "tid": tid, "ts": 0, "args": args})


def _slices(att: Any, tids_a: Any, pids_a: Any) -> tuple[Any, list[str]]:
    """One X event per attempt (an Arrow array of text, each ending in ",\\n"), and the
    flows and instants of the retries (a list)."""
    import numpy as np

    n = len(att)
    jobs, tries = att["job_id"].tolist(), att["attempt"].tolist()
    tids, pids = tids_a.tolist(), pids_a.tolist()
    # whole nanoseconds (what viewers keep), ts and dur from the same rounded ends: an
    # attempt that starts at the clock read that ended the one before must not overlap it
    start_ns = np.round(att["start_s"].to_numpy() * 1e9)
    end_ns = np.round(att["end_s"].to_numpy() * 1e9)
    ts_a = start_ns / 1e3
    dur_a = np.maximum(end_ns - start_ns, 0.0) / 1e3
    ts, dur = ts_a.tolist(), dur_a.tolist()
    cpu = att["cpu_s"].to_numpy()
    backoff = att["backoff_s"].to_numpy()
    throttle = att["throttle_s"].to_numpy() if "throttle_s" in att else np.zeros(n)
    etype = att["error_type"].astype(object).to_numpy()
    error = att["error"].astype(object).to_numpy()
    # the rare parts, per row: throttle, backoff, error, a retry's flow
    extra: dict[int, str] = {}
    for i in np.flatnonzero(throttle > 0).tolist():
        extra[i] = f', "throttle_s": {throttle[i]:.9g}'
    for i in np.flatnonzero(np.isfinite(backoff)).tolist():
        extra[i] = extra.get(i, "") + f', "backoff_s": {backoff[i]:.9g}'
    for i in np.flatnonzero(_is_str(etype)).tolist():
        err = f', "error_type": {json.dumps(etype[i])}, "error": {json.dumps(str(error[i]))}'
        extra[i] = extra.get(i, "") + err
    # the common part of every row is built column-wise in Arrow (C), not row by row
    xs = _x_events(jobs, tries, pids_a, tids, ts_a, dur_a, cpu, att["outcome"], extra)
    out: list[str] = []
    for i in np.flatnonzero(backoff > 0).tolist():
        out.append(
            f'{{"ph": "i", "name": "backoff", "cat": "backoff", "s": "t", '
            f'"ts": {ts[i] + dur[i]:.3f}, "pid": {pids[i]}, "tid": {tids[i]}, '
            f'"args": {{"job_id": {jobs[i]}, "backoff_s": {backoff[i]:.9g}}}}}'
        )
    retried = np.flatnonzero(att["attempt"].to_numpy() > 1).tolist()
    if retried:
        again = {jobs[i] for i in retried}
        where = {(jobs[i], tries[i]): i for i in range(n) if jobs[i] in again}
        for i in retried:  # a flow from the failed attempt to this retry
            prev = where.get((jobs[i], tries[i] - 1))
            if prev is None:
                continue
            flow = f'"name": "retry", "cat": "retry", "id": {jobs[i] * 65536 + tries[i]}'
            mid_prev, mid = ts[prev] + dur[prev] / 2, ts[i] + dur[i] / 2
            out.append(
                f'{{"ph": "s", {flow}, "pid": {pids[prev]}, "tid": {tids[prev]}, '
                f'"ts": {mid_prev:.3f}}}'
            )
            out.append(
                f'{{"ph": "f", "bp": "e", {flow}, "pid": {pids[i]}, "tid": {tids[i]}, '
                f'"ts": {mid:.3f}}}'
            )
    return xs, out


def _x_events(jobs, tries, pids, tids, ts, dur, cpu, outcome, extra) -> Any:
    """The X events as one Arrow string array (each ending in ",\\n"), or None."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(jobs)
    if not n:
        return None

    def num(values: Any) -> Any:  # shortest round-trip text of each number
        return pc.cast(pa.array(values), pa.string())

    def text(values: Any) -> Any:
        return pa.array(values, pa.string())

    a = np.asarray(tries)
    job = num(np.asarray(jobs, np.int64))
    name = pc.if_else(pa.array(a > 1), pc.binary_join_element_wise("job ", job, " #", num(a), ""),
                      pc.binary_join_element_wise("job ", job, ""))  # fmt: skip
    codes = outcome.cat.codes.to_numpy()
    cats = list(outcome.cat.categories)
    outcome = text(np.array(cats, object)[codes])
    cname = text(np.array([COLOURS.get(c, "grey") for c in cats], object)[codes])
    has_cpu = np.isfinite(cpu)
    cpu_txt = pc.if_else(
        pa.array(has_cpu),
        pc.binary_join_element_wise(', "cpu_s": ', num(np.where(has_cpu, cpu, 0.0)), ""),
        "",
    )
    rare = [""] * n
    for i, v in extra.items():
        rare[i] = v
    parts = [
        '{"ph": "X", "name": "', name, '", "cat": "', outcome, '", "cname": "', cname,
        '", "ts": ', num(np.round(ts, 3)), ', "dur": ', num(np.round(dur, 3)),
        ', "pid": ', num(np.asarray(pids, np.int64)), ', "tid": ', num(np.asarray(tids, np.int64)),
        ', "args": {"job_id": ', job, ', "attempt": ', num(a), ', "outcome": "', outcome,
        '"', cpu_txt, text(rare), "}},\n",
    ]  # fmt: skip
    return pc.binary_join_element_wise(*parts, "")


def _is_str(values: Any) -> Any:
    """True where ``values`` (an object array) holds a string."""
    import numpy as np

    return np.fromiter((isinstance(v, str) for v in values), bool, len(values))
