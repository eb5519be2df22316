"""Interleaved A/B of two qlab trees: the same case, fresh interpreters, alternating.

A is a git revision (exported to a temporary folder with ``git archive``), B is this
working tree. Each sample runs one case in a fresh interpreter whose ``sys.path``
starts with that tree (the fork server copies it, so process workers run the same
tree); samples alternate A, B, A, B... so that a change in the machine's load hits
both sides alike. Each sample does a warm-up round and then ``--rounds`` timed rounds
(median taken); the report is each side's median over samples, their ratio, and the
CPU per job of the parent and of the worker processes (CPU time is much less
disturbed by a loaded machine than wall time: quote both).

Usage::

    .venv/bin/python benchmarks/ab.py --a HEAD --case noop-process --samples 5
    .venv/bin/python benchmarks/ab.py --a HEAD~2 --case sleep-thread-16

Cases: noop-process and noop-thread (200,000 no-op jobs, 2 workers), seed-process
(2,000 seed jobs, 2 workers), sleep-thread-16 (2,000 sleeps of 1 ms, 16 threads).
The timed region is bench.py's: ``qlab.run`` + ``run.jobs``/``run.attempts`` +
``run.summary()``, minus ``meta["startup_s"]``; process workers are warm
(``warm_workers()``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CASES = {  # name: (workload expression, jobs, workers, backend)
    "noop-process": ("qlab.workloads.noop()", 200_000, 2, "process"),
    "noop-thread": ("qlab.workloads.noop()", 200_000, 2, "thread"),
    "noop-thread-16": ("qlab.workloads.noop()", 200_000, 16, "thread"),
    "seed-process": ("qlab.workloads.seed()", 2_000, 2, "process"),
    "sleep-thread-16": ("qlab.workloads.sleep(ms=1)", 2_000, 16, "thread"),
}

_CHILD = """
import json, statistics, sys, time
sys.path.insert(0, {tree!r})
import qlab
from qlab.backends.process.backend import warm_workers
handler = {expr}
retry = qlab.Retry(max_retries=3, backoff=None)

def children_cpu(pids):
    import psutil
    total = 0.0
    for pid in pids:
        try:
            total += sum(psutil.Process(pid).cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total

def one():
    c, t = time.process_time(), time.perf_counter()
    run = qlab.run(handler, range({jobs}), workers={workers}, backend={backend!r},
                   retry=retry, seed=0, progress=False)
    run.jobs, run.attempts
    run.summary()
    wall = time.perf_counter() - t - float(run.meta.get("startup_s") or 0.0)
    pids = [p for ps in run.meta.get("pids", {{}}).values() for p in ps]
    return wall, time.process_time() - c, pids

with warm_workers():
    pids = one()[2]
    w0 = children_cpu(pids)
    rounds = [one() for _ in range({rounds})]
    w1 = children_cpu(pids)
print(json.dumps({{"wall": statistics.median(r[0] for r in rounds),
                  "cpu": statistics.median(r[1] for r in rounds),
                  "workers_cpu": (w1 - w0) / {rounds}}}))
"""


def export(rev: str) -> Path:
    """The qlab package of git revision ``rev``, in a temporary folder."""
    out = Path(tempfile.mkdtemp(prefix="qlab-ab-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "qlab"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def sample(tree: Path, case: str, rounds: int) -> dict[str, float]:
    expr, jobs, workers, backend = CASES[case]
    code = _CHILD.format(
        tree=str(tree), expr=expr, jobs=jobs, workers=workers, backend=backend, rounds=rounds
    )
    env = dict(os.environ, PYTHONPATH="")
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", default="HEAD", help="git revision of side A (B: the working tree)")
    ap.add_argument("--case", choices=sorted(CASES), required=True)
    ap.add_argument("--samples", type=int, default=5, help="interpreters per side")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds per interpreter")
    args = ap.parse_args()
    trees = {"A": export(args.a), "B": ROOT}
    got: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    for _ in range(args.samples):
        for side in ("A", "B"):
            got[side].append(sample(trees[side], args.case, args.rounds))
    jobs = CASES[args.case][1]
    rate = {s: [jobs / r["wall"] for r in got[s]] for s in got}
    print(f"case {args.case}, A = {args.a}, B = working tree, load {os.getloadavg()[0]:.2f}")
    for side in ("A", "B"):
        cpu = statistics.median(r["cpu"] for r in got[side]) / jobs * 1e6
        wcpu = statistics.median(r["workers_cpu"] for r in got[side]) / jobs * 1e6
        print(
            f"  {side}: {statistics.median(rate[side]):12,.0f} jobs/s (samples "
            + ", ".join(f"{x:,.0f}" for x in rate[side])
            + f"); CPU per job: parent {cpu:.2f} us, worker processes {wcpu:.2f} us"
        )
    ratio = statistics.median(rate["B"]) / statistics.median(rate["A"])
    print(f"  B/A = {ratio:.2f}")


if __name__ == "__main__":
    main()
