"""Where a run's events go in a Perfetto trace: a process per host, a track per worker.

:func:`processes` gives each attempt its process: one per host the run used (pid 1,
2, ... in host-name order, named after the host), so a Dask run on several machines
shows each machine's workers together; :func:`tracks` gives each attempt its thread
track in that process (``worker + 1``, and extra tracks for a worker that ran
attempts at once); :func:`counters` makes the counter tracks (jobs in flight, busy
workers, queue depth). :mod:`qlab.perfetto` writes the events.
"""

from __future__ import annotations

from typing import Any

__all__ = ["counters", "processes", "tracks"]


def processes(att: Any) -> tuple[Any, list[str]]:
    """Each attempt's pid (1 + its host's index) and the host names, sorted. A run
    merged from several consumers of a shared queue (a ``consumer`` column with more
    than one value) gets a process per consumer instead, named after it, as each
    consumer numbers its workers from 0.

    Example:
        >>> import pandas as pd
        >>> att = pd.DataFrame({"host": pd.Categorical(["b", "a", "b"], ["a", "b", "c"])})
        >>> pids, hosts = processes(att)
        >>> pids.tolist(), hosts
        ([2, 1, 2], ['a', 'b'])
        >>> att["consumer"] = ["b:7:1:x", "a:9:1:y", "b:8:1:z"]
        >>> processes(att)[1]
        ['a:9:1:y', 'b:7:1:x', 'b:8:1:z']
    """
    import numpy as np

    if "consumer" in att.columns and att["consumer"].nunique() > 1:
        host = att["consumer"].astype(str).astype("category")
    elif "host" not in att.columns:  # a frame from elsewhere: every worker on one machine
        from qlab.trace.hosts import local_host

        return np.ones(len(att), np.int64), [local_host()]
    else:
        host = att["host"].astype("category")
    names = [str(c) for c in host.cat.categories] + ["unknown host"]
    codes = host.cat.codes.to_numpy().astype(np.int64)
    codes[codes < 0] = len(names) - 1
    used = np.unique(codes)  # sorted: the categories' order (qlab's are sorted names)
    slot = np.zeros(len(names), np.int64)
    slot[used] = np.arange(1, len(used) + 1)
    return slot[codes], [names[c] for c in used.tolist()]


def tracks(att: Any, pids: Any = None) -> tuple[Any, dict[int, str]]:
    """A thread track per attempt: ``worker + 1``, unless the worker ran attempts at
    once (an asyncio lane with ``concurrency``): then each overlapping attempt goes to
    the worker's first extra track that is free, as viewers need slices on one track
    to nest. A worker is one per process of ``pids`` (:func:`processes`), if given.
    Returns the tids and the names of the extra tracks.

    Example:
        >>> import pandas as pd
        >>> att = pd.DataFrame({"worker": [0, 0, 0], "start_s": [0.0, 0.5, 1.0],
        ...                     "end_s": [1.0, 1.5, 2.0]})
        >>> tids, names = tracks(att)
        >>> tids.tolist(), names
        ([1, 2, 1], {2: 'worker 0 (2)'})
    """
    import numpy as np

    worker = att["worker"].to_numpy().astype(np.int64)
    start, end = att["start_s"].to_numpy(), att["end_s"].to_numpy()
    tids = worker + 1
    wspan = int(worker.max()) + 1 if len(worker) else 1
    key = worker if pids is None else np.asarray(pids, np.int64) * wspan + worker
    order = np.lexsort((start, key))
    w_s, s_s, e_s = key[order], start[order], end[order]
    same = w_s[1:] == w_s[:-1]
    if not (same & (s_s[1:] < np.maximum.accumulate(e_s)[:-1])).any():
        return tids, {}  # no worker ran two attempts at once: a track per worker
    span = wspan
    free: dict[int, list[float]] = {}  # worker (key) -> when each of its tracks is free
    lane = np.zeros(len(att), np.int64)
    for i in order.tolist():
        ends = free.setdefault(int(key[i]), [])
        for k, busy_until in enumerate(ends):
            if busy_until <= start[i]:
                ends[k], lane[i] = end[i], k
                break
        else:
            ends.append(end[i])
            lane[i] = len(ends) - 1
    names = {
        w % span + 1 + span * k: f"worker {w % span} ({k + 1})"
        for w, ends in free.items()
        for k in range(1, len(ends))
    }
    return tids + span * lane, names


def counters(run: Any, max_points: int, pid: int) -> list[str]:
    """Counter tracks of jobs in flight, busy workers and queue depth, in process
    ``pid``, at most ``max_points`` points each."""
    import numpy as np

    jobs, att = run.jobs, run.attempts
    wall = float(run.wall_s)
    sub = jobs["submitted_s"].to_numpy()
    end = jobs["end_s"].to_numpy()
    ok_sub = np.isfinite(sub)
    end = np.where(np.isfinite(end), end, wall)[ok_sub]
    sub = sub[ok_sub]
    starts, ends = att["start_s"].to_numpy(), att["end_s"].to_numpy()
    times = np.concatenate([sub, end, starts, ends])
    if not len(times):
        return []
    d_flight = np.concatenate([np.ones(len(sub)), -np.ones(len(end)), np.zeros(2 * len(starts))])
    d_busy = np.concatenate([np.zeros(2 * len(sub)), np.ones(len(starts)), -np.ones(len(ends))])
    order = np.lexsort((-(d_flight + d_busy), times))  # arrivals before departures at a tie
    times = times[order]
    flight, busy = np.cumsum(d_flight[order]), np.cumsum(d_busy[order])
    last = np.r_[times[1:] != times[:-1], True]  # the value after every change at a time
    times, flight, busy = times[last], flight[last], busy[last]
    if len(times) > max_points:  # the value at evenly spaced times
        grid = np.linspace(times[0], times[-1], max_points)
        idx = np.searchsorted(times, grid, side="right") - 1
        times, flight, busy = grid, flight[idx], busy[idx]
    out = []
    for t, f_, b in zip(times * 1e6, flight, busy, strict=True):
        for name, value in (("jobs in flight", f_), ("busy workers", b), ("queue depth", f_ - b)):
            out.append(
                f'{{"ph": "C", "name": "{name}", "pid": {pid}, "tid": 0, "ts": {t:.3f}, '
                f'"args": {{"value": {int(value)}}}}}'
            )
    return out
