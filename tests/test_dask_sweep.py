"""A Dask sweep keeps one qlab-owned LocalCluster warm from point to point.

``qlab.sweep(..., backend="dask")`` enters ``qlab.backends.dask.backend.warm_cluster()`` (in
``qlab.lab.sweep._warm``): every run of the sweep, the warm-up included, uses one
cluster, rescaled to each point's workers, and the cluster closes with the sweep.
conftest's ``no_leaks`` fixture fails the test if a worker process, a nanny or a
qlab thread outlives it.
"""

from __future__ import annotations

import psutil
import pytest

import qlab
from qlab.backends.dask import local as dask_local
from qlab.trace.hosts import cpu_count

pytest.importorskip("distributed")

pytestmark = pytest.mark.timeout(120)


def _gone(pid: int) -> bool:
    """The process has exited (a zombie counts as gone: it runs nothing)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def test_a_two_point_dask_sweep_reuses_one_cluster_and_closes_it() -> None:
    sw = qlab.sweep(abs, workers=[1, 2], backend="dask", jobs=20, repeats=1, keep_runs=True)
    runs = sw.runs
    assert [len(r.meta["dask_workers"]) for r in runs] == [1, 2]
    assert all(r.summary()["ok"] == 20 for r in runs)
    assert all(r.meta["dask_owned"] for r in runs)
    # each point records its hosts and cores: one machine, a core per worker up to its CPUs
    assert sw.df.hosts.tolist() == [1, 1] == sw.points.hosts.tolist()
    assert sw.df.cores.tolist() == [min(w, cpu_count()) for w in (1, 2)]
    # one cluster: the same scheduler, and the 1-worker point's worker serves the 2-worker one
    assert len({r.meta["dask_scheduler"] for r in runs}) == 1
    pids = [{p for v in r.meta["pids"].values() for p in v} for r in runs]
    assert pids[0] <= pids[1]
    # the warm block ended with the sweep: the cluster and its workers are gone
    assert dask_local._WARM is None
    assert all(_gone(pid) for pid in pids[1])


def test_a_sweep_on_a_users_cluster_uses_n_of_its_workers_and_leaves_it_up(dask_cluster):
    # a Backend object in backend=: each point takes `workers` worker threads of the
    # user's scheduler (two here); qlab starts no cluster and shuts none down
    user = qlab.backends.Dask(address=dask_cluster.address)
    sw = qlab.sweep(abs, workers=[1, 2], backend=[user, "thread"], jobs=30, repeats=1,
                    warmup=False, keep_runs=True)  # fmt: skip
    assert sorted(set(sw.df.backend)) == ["dask", "thread"]
    on_dask = [r for r in sw.runs if r.meta["backend"] == "dask"]
    assert [len(r.meta["dask_workers"]) for r in on_dask] == [1, 2]
    assert all(r.summary()["ok"] == 30 and not r.meta["dask_owned"] for r in on_dask)
    assert {r.meta["dask_scheduler"] for r in on_dask} == {dask_cluster.address}
    assert dask_local._WARM is None and dask_cluster.up()  # still serving
    assert dask_cluster.client.submit(abs, -3).result(timeout=30) == 3


def test_sweep_backends_are_checked_before_any_run():
    with pytest.raises(ValueError, match="backend"):
        qlab.sweep(abs, workers=[1], backend=[object()], jobs=2, repeats=1)
    with pytest.raises(ValueError, match="share a name"):
        qlab.sweep(abs, workers=[1], backend=["thread", "thread"], jobs=2, repeats=1)
