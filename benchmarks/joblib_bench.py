"""Issue 24's benchmarks, side by side in one run (median of ``--rounds``, interleaved):

- tiny tasks through ``joblib.Parallel``: ``backend="qlab"`` (thread and process
  workers) against joblib's own ``loky`` (processes) and ``threading``, in tasks per
  second (target: qlab >= 1.0x loky);
- what ``qlab.joblib.trace()`` costs: the qlab backend with the trace on against the
  same with it off (target: <= 10 %).

Every case runs ``Parallel(n_jobs=2)(delayed(tiny)(i) for i in range(N))`` with
joblib's default ``batch_size="auto"``; pools are warm (one unrecorded call first),
as joblib's backends keep theirs between calls.

Run: ``.venv/bin/python benchmarks/joblib_bench.py`` (100,000 tasks, 5 rounds) or
``--small`` (a tenth). It prints one line per case, the ratios, and the load average,
since a busy machine moves every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

import joblib
from joblib import Parallel, delayed

import qlab.joblib


def tiny(i: int) -> int:
    return i + 1


def timed(cases: dict, rounds: int) -> dict[str, float]:
    """Median seconds of each case over ``rounds``, the cases interleaved round by round
    (so a change in the machine's load falls on all of them), after one warm-up each."""
    for go in cases.values():
        go()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, go in cases.items():
            t = time.perf_counter()
            go()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def case(n: int, traced: bool = False, **config) -> callable:
    """One Parallel call of ``n`` tiny tasks on 2 workers under ``config``."""

    def go() -> None:
        tracer = qlab.joblib.trace() if traced else contextlib.nullcontext()
        with joblib.parallel_config(n_jobs=2, **config), tracer:
            out = Parallel()(delayed(tiny)(i) for i in range(n))
        assert out[-1] == n

    return go


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="a tenth of the tasks")
    ap.add_argument("--tasks", type=int, default=None, help="tasks per call (100,000)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    n = args.tasks or (10_000 if args.small else 100_000)
    cases = {
        "loky": case(n, backend="loky"),
        "threading": case(n, backend="threading"),
        "qlab thread": case(n, backend="qlab"),
        "qlab process": case(n, backend="qlab", inner="process"),
        "qlab thread, traced": case(n, traced=True, backend="qlab"),
        "qlab process, traced": case(n, traced=True, backend="qlab", inner="process"),
    }
    print(f"{n:,} tiny tasks per call, n_jobs=2, median of {args.rounds} rounds")
    rate = {name: n / s for name, s in timed(cases, args.rounds).items()}
    for name in cases:
        print(f"  {name:<22} {rate[name]:>12,.0f} tasks/s")
    qlab.joblib.shutdown()
    print("ratios:")
    for name in ("qlab thread", "qlab process"):
        print(f"  {name} / loky: {rate[name] / rate['loky']:,.2f}x (target >= 1.00x)")
    for name in ("qlab thread", "qlab process"):
        cost = 1 - rate[f"{name}, traced"] / rate[name]
        print(f"  tracing cost on {name}: {cost:+.1%} of throughput (target <= 10 %)")
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
