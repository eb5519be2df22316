"""Record qlab's reference sweeps on this machine, and describe the machine.

Usage (from the repository root, on an otherwise idle machine; about 5 minutes on 2 cores):

    python data/record.py                    # every sweep below, then machine.md and fits.csv
    python data/record.py sleep-thread       # only the named ones

Writes ``data/reference/<workload>-<backend>.parquet`` (``qlab.load_sweep`` reads them;
each file carries its provenance in its metadata), ``data/reference/fits.csv`` (the USL
fit of every file present) and ``data/machine.md``.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from functools import partial
from importlib import metadata
from pathlib import Path

import pandas as pd

import qlab
from qlab.lab.sweep import load_sweep, sweep
from qlab.lab.usl.model import FewLevelsWarning

HERE = Path(__file__).resolve().parent
OUT = HERE / "reference"
THREAD, PROCESS = range(1, 17), range(1, 9)
REPEATS = 3
FIT_COLUMNS = [
    "lam", "lam_ci_low", "lam_ci_high", "sigma", "sigma_ci_low", "sigma_ci_high", "kappa",
    "kappa_ci_low", "kappa_ci_high", "sigma_significant", "kappa_significant", "peak_workers",
    "peak_workers_ci_low", "peak_workers_ci_high", "r2",
]  # fmt: skip
TRIES, QUIET = 2, 0.15  # record a sweep again (once) if others used >= 0.15 CPUs meanwhile

# name -> (workload, backend, worker counts, jobs per run); jobs are chosen so that the
# shortest run (most workers) still lasts tens of milliseconds
SWEEPS = {
    "sleep-thread": (qlab.workloads.sleep(ms=2), "thread", THREAD, 2000),
    "sleep-process": (qlab.workloads.sleep(ms=2), "process", PROCESS, 2000),
    "cpu-thread": (qlab.workloads.cpu(ms=1), "thread", THREAD, 1000),
    "cpu-process": (qlab.workloads.cpu(ms=1), "process", PROCESS, 1000),
    "seed-thread": (qlab.workloads.seed(), "thread", THREAD, 1000),
    "seed-process": (qlab.workloads.seed(), "process", PROCESS, 1000),
}


def record(names: list[str], commit: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name in names:
        workload, backend, workers, jobs = SWEEPS[name]
        run = partial(sweep, workload, workers, backend, jobs=jobs, repeats=REPEATS, seed=0)
        best = quietest(name, run)
        best.meta["recorded_by"] = f"data/record.py {name}"
        best.meta["commit"] = commit
        best.save(OUT / f"{name}.parquet")


def quietest(name: str, run: Callable[[], qlab.Sweep]) -> qlab.Sweep:
    """``run()`` a sweep up to ``TRIES`` times (another busy process skews a sweep) and
    keep the one during which the rest of the machine was least busy, as
    ``meta["others_cpus"]``; the first quiet one (below ``QUIET``) is kept at once."""
    best = None
    for _ in range(TRIES):
        t, busy, own = time.perf_counter(), _busy_s(), _own_s()
        sw = run()
        if sw.meta.get("interrupted"):
            sys.exit(f"{name}: interrupted, nothing saved")
        wall = time.perf_counter() - t
        others = max((_busy_s() - busy) - (_own_s() - own), 0.0) / wall
        print(
            f"{name}: {len(sw.df)} runs in {wall:.0f}s, others used {others:.2f} CPUs", flush=True
        )
        sw.meta["others_cpus"] = round(others, 3)
        if best is None or others < best.meta["others_cpus"]:
            best = sw
        if others < QUIET:
            break
    return best


def _busy_s() -> float:
    """CPU seconds that the whole machine has been busy (every process), from /proc/stat."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait


def _own_s() -> float:
    """CPU seconds of this process and its finished children (the stopped workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def fits() -> pd.DataFrame:
    """The USL fit of every reference sweep present, one row per file."""
    rows = {}
    for path in sorted(OUT.glob("*.parquet")):
        sw = load_sweep(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FewLevelsWarning)
            fit = sw.fit().iloc[0]
        mean = sw.df.groupby("workers")["throughput"].mean()
        rows[path.stem] = {
            "workload": sw.meta["workload"],
            "jobs": sw.meta["jobs"],
            "others_cpus": sw.meta.get("others_cpus"),
            "x1": mean.iloc[0],
            "x_max": mean.max(),
            "at_workers": mean.idxmax(),
            **fit[FIT_COLUMNS].to_dict(),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("sweep")


def _git(*args: str) -> str:
    try:
        root = HERE.parent
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _source() -> str:
    """The commit of the qlab that runs, ``-dirty`` with uncommitted changes."""
    here = Path(qlab.__file__).resolve().parent
    if here != HERE.parent / "qlab":
        return f"unknown (qlab imported from {here})"
    dirty = "-dirty" if _git("status", "--porcelain", "--", "qlab") else ""
    return _git("rev-parse", "HEAD") + dirty


def _cpuinfo(key: str) -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith(key):
            return line.split(":", 1)[1].strip()
    return "unknown"


def machine(commit: str) -> str:
    """data/machine.md: the machine and software that the reference sweeps ran on."""
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    lines = Path("/etc/os-release").read_text().splitlines()
    os_release = dict(line.split("=", 1) for line in lines if "=" in line)
    flags = _cpuinfo("flags").split()
    packages = ["qlab", "numpy", "pandas", "scipy", "pyarrow", "joblib", "cloudpickle"]
    versions = "\n".join(f"| {p} | {metadata.version(p)} |" for p in packages)
    return f"""# The machine of the reference sweeps

Written by `data/record.py` on {datetime.date.today().isoformat()}.

| | |
|---|---|
| CPU | {_cpuinfo("model name")}, {_cpuinfo("cpu MHz")} MHz |
| cores | {os.cpu_count()} logical CPUs ({_cpuinfo("cpu cores")} cores per socket) |
| virtualised | {"yes (hypervisor flag set)" if "hypervisor" in flags else "no"} |
| RAM | {mem_kb / 2**20:.1f} GiB |
| OS | {os_release.get("PRETTY_NAME", "?").strip('"')}, Linux {platform.release()} |
| Python | {platform.python_version()} ({platform.python_implementation()}) |
| qlab commit | {commit} |

| package | version |
|---|---|
{versions}

Timer: `time.perf_counter`; each sweep starts with one unrecorded warm-up run per
backend; process workers stay warm for the whole sweep (start-up excluded).
"""


if __name__ == "__main__":
    chosen = sys.argv[1:] or list(SWEEPS)
    unknown = sorted(set(chosen) - set(SWEEPS))
    if unknown:
        sys.exit(f"unknown sweep(s) {unknown}; choose from {list(SWEEPS)}")
    start = time.perf_counter()
    commit = _source()
    print(f"qlab {qlab.__version__} at {commit}", flush=True)
    record(chosen, commit)
    if _source() != commit:
        print(f"warning: the qlab sources changed while recording (now {_source()})")
    table = fits()
    table.to_csv(OUT / "fits.csv", float_format="%.6g")
    (HERE / "machine.md").write_text(machine(commit))
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    print(f"total {time.perf_counter() - start:.0f}s")
