"""Record the reference sweeps of the real workloads (issue 18) on this machine.

Usage (from the repository root, on an otherwise idle machine; about 5 minutes on 2 cores):

    python data/record_real.py                 # every sweep below, then fits.csv
    python data/record_real.py numpy http      # only the named ones (fits.csv covers all)

Writes ``data/reference/real-contention/<name>.parquet`` (threads and processes in one
sweep; ``qlab.load_sweep`` reads them, with their provenance in ``meta``) and
``data/reference/real-contention/fits.csv`` (the USL fit per file and backend, with
standard errors and confidence intervals). How busy the rest of the machine was during
each sweep is measured as in ``data/record.py`` and kept as ``meta["others_cpus"]``.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

import qlab
from qlab import workloads
from qlab.lab.sweep import load_sweep, sweep
from qlab.lab.usl.model import FewLevelsWarning

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from record import quietest  # noqa: E402  (the same measurements)

OUT = HERE / "reference" / "real-contention"
WORKERS = list(range(1, 9))  # on threads and processes alike
REPEATS = 3

# name -> (workload, worker counts, jobs per run): one job
# takes 0.5-3 ms, and the shortest run (most workers) still lasts a few tenths of a second
SWEEPS = {
    "numpy": (workloads.numpy(n=384), WORKERS, 400),
    "compress": (workloads.compress(kb=64), WORKERS, 400),
    "cpu": (workloads.cpu(ms=2), WORKERS, 400),
    "sqlite_write": (workloads.sqlite_write(ms=1), WORKERS, 600),
    "http": (workloads.http(ms=2, pool=4), [*WORKERS, 10, 12], 600),
    "file_io": (workloads.file_io(kb=64, fsync=True), WORKERS, 1000),
}


def record_one(name: str, commit: str) -> qlab.Sweep:
    """Sweep one workload on threads and processes (one sweep: process workers stay warm
    from point to point); record it again if the first try was noisy, keep the quieter."""
    workload, workers, jobs = SWEEPS[name]

    def run() -> qlab.Sweep:
        # the workload's server or folder lives for the whole sweep (opened as a pool would)
        with workload if hasattr(workload, "__enter__") else contextlib.nullcontext():
            return sweep(
                workload, workers, ["thread", "process"], jobs=jobs, repeats=REPEATS, seed=0
            )

    best = quietest(name, run)
    best.meta["recorded_by"] = f"data/record_real.py {name}"
    best.meta["commit"] = commit
    return best


def _source() -> str:
    """The commit of the qlab that runs (wherever it is imported from), ``-dirty`` with
    uncommitted changes under ``qlab/``."""
    root = Path(qlab.__file__).resolve().parent.parent

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else "unknown"

    dirty = "-dirty" if git("status", "--porcelain", "--", "qlab") else ""
    return git("rev-parse", "HEAD") + dirty


def fits() -> pd.DataFrame:
    """The USL fit of every real-workload reference sweep, one row per (file, backend)."""
    rows = []
    for path in sorted(OUT.glob("*.parquet")):
        sw = load_sweep(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FewLevelsWarning)
            table = sw.fit()
        mean = sw.df.groupby(["backend", "workers"])["throughput"].mean()
        for backend, fit in table.iterrows():
            m = mean[backend]
            rows.append({
                "sweep": path.stem, "backend": backend, "workload": sw.meta["workload"],
                "jobs": sw.meta["jobs"], "others_cpus": sw.meta.get("others_cpus"),
                "x1": m.iloc[0], "x2": m.get(2), "x_max": m.max(), "at_workers": m.idxmax(),
                **{k: fit[k] for k in fit.index if k in _FIT_COLUMNS},
            })  # fmt: skip
    return pd.DataFrame(rows).set_index(["sweep", "backend"])


_FIT_COLUMNS = [
    "lam", "lam_se", "sigma", "sigma_se", "sigma_ci_low", "sigma_ci_high",
    "kappa", "kappa_se", "kappa_ci_low", "kappa_ci_high", "peak_workers", "r2",
]  # fmt: skip


if __name__ == "__main__":
    chosen = sys.argv[1:] or list(SWEEPS)
    unknown = sorted(set(chosen) - set(SWEEPS))
    if unknown:
        sys.exit(f"unknown sweep(s) {unknown}; choose from {list(SWEEPS)}")
    start = time.perf_counter()
    commit = _source()
    print(f"qlab {qlab.__version__} at {commit}", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    for name in chosen:
        record_one(name, commit).save(OUT / f"{name}.parquet")
    table = fits()
    table.to_csv(OUT / "fits.csv", float_format="%.6g")
    print(table[["x1", "x2", "x_max", "at_workers", "lam", "sigma", "kappa", "r2"]]
          .to_string(float_format=lambda v: f"{v:.4g}"))  # fmt: skip
    print(f"total {time.perf_counter() - start:.0f}s")
