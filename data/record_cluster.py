"""Record notebook 06's reference sweep: ``sleep(ms=2)`` with one job per task
(``batch_size=1``) on the process backend and on a Dask LocalCluster, 1 to 6 workers,
300 jobs per run (the notebook runs 1,000 at full size, 150 at the small one).

Usage (from the repository root, on an otherwise idle machine; a few minutes):

    python data/record_cluster.py

Writes ``data/reference/cluster-single.parquet`` (``qlab.load_sweep`` reads it, with
``meta["others_cpus"]``: how many CPUs other processes used meanwhile, measured as in
``data/record.py``, which records again and keeps the quieter sweep when it was busy).
"""

from __future__ import annotations

import sys
from pathlib import Path

import qlab
from qlab import workloads
from qlab.backends.dask.backend import warm_cluster

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from record import quietest  # noqa: E402  (the same measurement of a busy machine)
from record_real import _source  # noqa: E402

OUT = HERE / "reference" / "cluster-single.parquet"


def run() -> qlab.Sweep:
    """The sweep of notebook 06's section 2 (300 jobs per run)."""
    return qlab.sweep(workloads.sleep(ms=2), workers=[1, 2, 3, 4, 5, 6],
                      backend=["process", "dask"], jobs=300, repeats=3, batch_size=1,
                      seed=0)  # fmt: skip


if __name__ == "__main__":
    with warm_cluster():
        best = quietest("cluster-single", run)
    best.meta["recorded_by"] = "data/record_cluster.py"
    best.meta["commit"] = _source()
    best.save(OUT)
    print(f"saved {OUT.relative_to(HERE.parent)}: others used {best.meta['others_cpus']} CPUs")
