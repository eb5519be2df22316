"""The Dask LocalCluster that qlab starts (``backend="dask"``), and keeps warm.

:func:`warm_cluster` lets every ``backend="dask"`` pool inside a block share one
``LocalCluster``, rescaled to each pool's ``workers`` (a sweep pays the start-up once);
:class:`qlab.backends.dask.cluster.Cluster` starts, rescales and closes it through
the functions here. :func:`workers_of` asks a scheduler for its workers.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["close_local", "scale", "start_local", "warm_cluster", "warm_slot", "workers_of"]

_WARM: list | None = None  # [LocalCluster, Client, tracker_was_running] in a warm block


@contextlib.contextmanager
def warm_cluster() -> Iterator[None]:
    """Inside this block, every ``backend="dask"`` pool shares one LocalCluster,
    scaled to its ``workers`` (a sweep pays the cluster's start-up once); it closes
    when the block ends. Nested blocks share the outer one.

    Example:
        >>> with warm_cluster():
        ...     pass  # no cluster starts until a pool needs one
        >>> with warm_cluster():  # doctest: +SKIP
        ...     qlab.sweep(workers=[1, 2, 4], backend="dask")
    """
    global _WARM
    if _WARM is not None:
        yield
        return
    _WARM = []
    try:
        yield
    finally:
        warm, _WARM = _WARM, None
        if warm:
            close_local(*warm)


def warm_slot() -> list | None:
    """Inside :func:`warm_cluster`: the shared ``[LocalCluster, Client,
    tracker_was_running]`` (empty until a pool starts the cluster); None outside."""
    return _WARM


def start_local(distributed: Any, workers: int) -> list:
    """A LocalCluster of ``workers`` processes on 127.0.0.1 and its Client."""
    from multiprocessing import resource_tracker

    tracker_was_running = resource_tracker._resource_tracker._pid is not None  # type: ignore[attr-defined]
    cluster = distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        scheduler_port=0,
        dashboard_address="127.0.0.1:0",
        silence_logs=logging.CRITICAL,  # a worker retired by a rescale logs its lost heartbeat
    )
    try:
        client = distributed.Client(cluster, set_as_default=False)
    except BaseException:
        cluster.close()
        raise
    return [cluster, client, tracker_was_running]


def close_local(cluster: Any, client: Any, tracker_was_running: bool) -> None:
    with contextlib.suppress(Exception):
        client.close(timeout=10)
    with contextlib.suppress(Exception):
        cluster.close(timeout=10)
    if not tracker_was_running:
        # the nannies' multiprocessing queues started it; nothing else of ours uses it
        from multiprocessing import resource_tracker

        with contextlib.suppress(Exception):
            resource_tracker._resource_tracker._stop()  # type: ignore[attr-defined]


def workers_of(client: Any) -> dict[str, Any]:
    """The scheduler's workers (address -> info), asked of the scheduler now.

    Not ``client.scheduler_info()``: it refreshes the client's shared copy and returns
    it, and the client's own periodic refresh (which asks for no workers) can replace
    that copy in between, so a cluster of two workers sometimes seemed to have none.
    """
    return dict(client.sync(client.scheduler.identity, n_workers=-1)["workers"])


def scale(cluster: Any, client: Any, workers: int, timeout: float = 120.0) -> None:
    """Scale a LocalCluster to exactly ``workers`` workers and wait for it."""
    cluster.scale(workers)
    deadline = time.monotonic() + timeout
    while len(workers_of(client)) != workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers: the LocalCluster did not reach {workers} workers")
        time.sleep(0.05)  # the scheduler has no event for "exactly n workers"
