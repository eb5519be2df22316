"""Issue 17's table from one bench.py run: each target, the measured figures, met or not.

Usage::

    .venv/bin/python benchmarks/targets.py benchmarks/results/bench-round3.csv

Prints a Markdown table (benchmarks/README.md quotes it, with the reasons where a
target is not met). Every figure comes from the CSV given, that is from one run.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd


def _rate(df: pd.DataFrame, workload: str, workers: int, peer: str) -> float:
    row = df[(df.workload == workload) & (df.workers == workers) & (df.peer == peer)]
    row = row[row.status == "ok"]
    return float(row.jobs_per_s.iloc[0]) if len(row) else math.nan


def _col(df: pd.DataFrame, workload: str, workers: int, peer: str, col: str) -> float:
    row = df[(df.workload == workload) & (df.workers == workers) & (df.peer == peer)]
    row = row[row.status == "ok"]
    return float(row[col].iloc[0]) if len(row) and col in row else math.nan


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def table(df: pd.DataFrame) -> list[str]:
    """The table's Markdown lines."""
    out = ["| case | qlab | peer / limit | target | |", "|---|---|---|---|---|"]

    # sleep 1 ms, 16 threads
    ideal = {w: _col(df, "sleep_1ms", w, "qlab-thread", "ratio_to_ideal") for w in (1, 2, 4, 8, 16)}
    vs_q = {
        w: _rate(df, "sleep_1ms", w, "qlab-thread") / _rate(df, "sleep_1ms", w, "queue-threads")
        for w in (1, 2, 4, 8, 16)
    }
    peers16 = ", ".join(
        f"{p} {_col(df, 'sleep_1ms', 16, p, 'ratio_to_ideal'):.2f}"
        for p in ("queue-threads", "go-original", "tpe-map", "mp-imap-tuned")
    )
    each = ", ".join(f"{w}: {vs_q[w]:.2f}" for w in vs_q)
    ok = ideal[16] >= 0.95 and all(v >= 1.0 for v in vs_q.values())
    out.append(
        f"| sleep 1 ms, 2,000 jobs, 16 threads, share of ideal | {ideal[16]:.2f} "
        f"(x queue.Queue threads by workers: {each}) | {peers16} | >= 0.95, and >= 1.0x "
        f"queue.Queue threads at every worker count from 1 to 16 | {_met(ok)} |"
    )

    # seed, 2 process workers
    q = _rate(df, "seed", 2, "qlab-process")
    go = _rate(df, "seed", 2, "go-original")
    limit = _col(df, "seed", 2, "qlab-process", "cpu_limit_jobs_per_s")
    serial = _col(df, "seed", 2, "qlab-process", "serial_jobs_per_s")
    mp = _rate(df, "seed", 2, "mp-imap-tuned")
    ok = q / go >= 0.8 if go == go else False
    out.append(
        f"| seed workload, 2,000 jobs, 2 workers, process | {q:,.0f} jobs/s = {q / go:.2f}x Go "
        f"({go:,.0f}), {q / limit:.2f}x CPython's limit | CPython's limit: 2 x the serial rate "
        f"({serial:,.0f} jobs/s with its retries) = {limit:,.0f}; Go / limit = "
        f"{go / limit:.2f}; mp-imap-tuned {mp:,.0f} ({mp / limit:.2f}x the limit) | >= 0.8x Go "
        f"| {_met(ok)} |"
    )

    # no-op 200k, process
    q = _rate(df, "noop", 2, "qlab-process")
    mp = _rate(df, "noop", 2, "mp-imap-tuned")
    out.append(
        f"| no-op 200k, process, warm | {q:,.0f} jobs/s = {q / mp:.2f}x mp-imap-tuned "
        f"({mp:,.0f}) | mp.Pool keeps no trace | >= 1.0x, trace included | {_met(q / mp >= 1)} |"
    )

    # no-op 200k, threads by workers
    one = _rate(df, "noop_threads", 1, "qlab-thread")
    rates = {1: one, 2: _rate(df, "noop", 2, "qlab-thread")}
    rates |= {w: _rate(df, "noop_threads", w, "qlab-thread") for w in (4, 16)}
    each = ", ".join(f"{w}: {r / one:.2f}" for w, r in rates.items())
    ok = all(r / one >= 0.8 for r in rates.values())
    out.append(
        f"| no-op 200k, thread, 16 workers | {rates[16]:,.0f} jobs/s (x its 1-worker rate by "
        f"workers: {each}) | {one:,.0f} at 1 worker | >= 0.8x its own 1-worker rate at every "
        f"worker count | {_met(ok)} |"
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", type=Path)
    args = ap.parse_args()
    print("\n".join(table(pd.read_csv(args.csv, comment="#"))))


if __name__ == "__main__":
    main()
