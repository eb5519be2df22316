"""Where a run ran: the host of each worker, and how many hosts and cores it used.

A backend whose workers may live on other machines (Dask) reports them in
``run.meta["worker_hosts"]``: per worker (slot), the workers that served it, each as
``[since, host, address]``, where ``since`` is the parent's ``time.perf_counter()``
when that worker took the slot (0.0 for the first) and ``host`` the machine's host
name; and ``run.meta["host_cpus"]``: the CPUs each host offers its processes. Local
backends report nothing: every worker is on this machine (:func:`local_host`).

:func:`host_codes` turns that into the ``host`` column of ``run.attempts`` when the
DataFrames are built (nothing is recorded per attempt while the run goes);
:func:`placement` gives a sweep's ``hosts`` and ``cores`` of a run.

``cores`` is how many CPUs the run's workers could occupy at once: per host, the
smaller of its workers and its CPUs, summed over hosts. For the thread and process
backends that is ``min(workers, CPUs of this machine)`` (threads may still wait for
the GIL: cores is what the hardware offered, not what Python used); the inline and
asyncio backends run every worker on one thread: 1 core.

Example:
    >>> placement({"backend": "process", "workers": 64}) == {
    ...     "hosts": 1, "cores": min(64, cpu_count())}
    True
    >>> meta = {"backend": "dask", "workers": 3, "host_cpus": {"a": 2, "b": 8},
    ...         "worker_hosts": {0: [[0.0, "a", "tcp://a:1"]], 1: [[0.0, "a", "tcp://a:2"]],
    ...                          2: [[0.0, "b", "tcp://b:1"]]}}
    >>> placement(meta)
    {'hosts': 2, 'cores': 3}
"""

from __future__ import annotations

import os
import socket
from functools import cache
from typing import Any

__all__ = [
    "ONE_THREAD",
    "PLACEMENT",
    "cpu_count",
    "host_codes",
    "local_host",
    "placement",
    "with_host",
]

#: The sweep columns :func:`placement` fills, in order.
PLACEMENT = ("hosts", "cores")
#: Backends whose workers all run on one thread of this process.
ONE_THREAD = ("inline", "asyncio")


@cache
def local_host() -> str:
    """This machine's host name (the ``host`` of every local backend's attempts)."""
    return socket.gethostname()


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _slots(meta: dict[str, Any]) -> dict[int, list]:
    """``meta["worker_hosts"]`` with int keys (a saved run's JSON makes them strings)."""
    hosts = meta.get("worker_hosts") or {}
    return {int(k): list(v) for k, v in hosts.items()}


def host_codes(meta: dict[str, Any], worker: Any, start: Any, origin: float) -> tuple[Any, list]:
    """The ``host`` column as (int8 codes, categories): each attempt's worker's host.

    Args:
        meta: the run's meta (``worker_hosts`` if the backend reports hosts).
        worker: each attempt's worker (numpy ints).
        start: each attempt's start in seconds from ``origin``.
        origin: the perf_counter reading of the run's t = 0.

    Example:
        >>> import numpy as np
        >>> meta = {"worker_hosts": {"0": [[0.0, "a", "x"], [105.0, "b", "y"]],
        ...                          "1": [[0.0, "b", "z"]]}}
        >>> codes, cats = host_codes(meta, np.array([0, 0, 1]), np.array([1.0, 6.0, 2.0]), 100.0)
        >>> [cats[c] for c in codes]
        ['a', 'b', 'b']
    """
    import numpy as np

    slots = _slots(meta)
    if not slots:  # every worker on this machine: one category, no pass over the rows
        return np.zeros(len(worker), np.int8), [local_host()]
    cats = sorted({e[1] for entries in slots.values() for e in entries})
    index = {h: i for i, h in enumerate(cats)}
    span = max(max(slots) + 1, int(worker.max()) + 1 if len(worker) else 0)
    last = np.full(span, -1, np.int8)  # a slot's only (or first) host
    for w, entries in slots.items():
        last[w] = index[entries[0][1]]
    codes = last[worker] if len(worker) else np.zeros(0, np.int8)
    for w, entries in slots.items():
        if len(entries) < 2:
            continue
        rows = np.flatnonzero(worker == w)
        since = np.array([e[0] for e in entries], float) - origin
        which = np.searchsorted(since, start[rows], side="right") - 1
        hosts = np.array([index[e[1]] for e in entries], np.int8)
        codes[rows] = hosts[np.maximum(which, 0)]
    return codes, cats


def with_host(df: Any, meta: dict[str, Any]) -> Any:
    """``df`` (a jobs or attempts frame made elsewhere: a durable queue's history, a run
    saved before the column existed) with a ``host`` column after ``worker``: each
    worker's last host in ``meta``, or this machine.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"job_id": [0, 1], "worker": pd.array([1, None], "Int16")})
        >>> with_host(df, {"worker_hosts": {"1": [[0.0, "b", "tcp://b:1"]]}}).host.tolist()
        ['b', nan]
    """
    import pandas as pd

    if "host" in df.columns or "worker" not in df.columns:
        return df
    slots = _slots(meta)
    last = {w: entries[-1][1] for w, entries in slots.items()}
    worker = df["worker"].astype("Int64")
    names = [None if pd.isna(w) else last.get(int(w), local_host()) for w in worker]
    df = df.copy()
    df.insert(df.columns.get_loc("worker") + 1, "host", pd.Categorical(names))
    return df


def placement(meta: dict[str, Any]) -> dict[str, int]:
    """The hosts and cores a run's workers used (see the module docs for ``cores``).

    Args:
        meta: ``run.meta`` (backend, workers, and ``worker_hosts``/``host_cpus`` if the
            backend reports hosts).

    Returns:
        ``{"hosts": n, "cores": c}``.
    """
    workers = int(meta.get("workers") or 1)
    slots = _slots(meta)
    if not slots:
        one = meta.get("backend") in ONE_THREAD
        return {"hosts": 1, "cores": 1 if one else min(workers, cpu_count())}
    used: dict[str, int] = {}  # host -> slots it served at the end of the run
    for entries in slots.values():
        host = entries[-1][1]
        used[host] = used.get(host, 0) + 1
    everyone = {e[1] for entries in slots.values() for e in entries}
    cpus = meta.get("host_cpus") or {}
    cores = sum(min(n, int(cpus.get(h) or n)) for h, n in used.items())
    return {"hosts": len(everyone), "cores": cores}
