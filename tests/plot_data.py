"""Synthetic runs and sweeps for the chart tests, and helpers to read charts back.

Example:
    >>> attempts, jobs = make_run(n_jobs=5)
    >>> sorted(attempts.columns)[:3]
    ['attempt', 'backoff_s', 'cpu_s']
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

plt.switch_backend("Agg")  # headless; no window even without MPLBACKEND=Agg

OUTCOMES = ["ok", "retry", "failed", "timeout", "crashed", "cancelled"]


def _plan(j: int, n_jobs: int) -> list[str]:
    """Outcomes of job j's attempts: a mix of retries, failures, a timeout, a crash, a cancel."""
    if j == n_jobs - 1:
        return ["cancelled"]
    if j % 10 == 0:
        return ["retry", "retry", "failed"]
    if j % 5 == 0:
        return ["retry", "ok"]
    return {3: ["timeout", "ok"], 7: ["crashed"]}.get(j, ["ok"])


def make_run(n_jobs: int = 40, n_workers: int = 4, seed: int = 0, cpu_ratio: float = 0.6):
    """A plausible run: (attempts, jobs), jobs submitted 5 ms apart, one never started."""
    rng = np.random.default_rng(seed)
    free = np.zeros(n_workers)
    rows, jobs = [], []
    for j in range(n_jobs):
        sub, ready, plan = j * 0.005, j * 0.005, _plan(j, n_jobs)
        for k, outcome in enumerate(plan, start=1):
            w = int(np.argmin(np.maximum(free, ready)))
            start = max(free[w], ready)
            dur = float(rng.uniform(0.01, 0.05))
            backoff = 0.02 * k if k < len(plan) else math.nan
            err = None if outcome == "ok" else "ValueError"
            rows.append(
                dict(
                    job_id=j,
                    attempt=k,
                    worker=w,
                    start_s=start,
                    end_s=start + dur,
                    duration_s=dur,
                    cpu_s=dur * cpu_ratio,
                    outcome=outcome,
                    error_type=err,
                    error=err and "boom",
                    backoff_s=backoff,
                )
            )
            free[w] = start + dur
            ready = start + dur + (0 if math.isnan(backoff) else backoff)
        mine = [r for r in rows if r["job_id"] == j]
        status = {"ok": "ok", "cancelled": "cancelled"}.get(plan[-1], "failed")
        jobs.append(
            dict(
                job_id=j,
                status=status,
                attempts=len(plan),
                submitted_s=sub,
                first_start_s=mine[0]["start_s"],
                end_s=mine[-1]["end_s"],
                worker=mine[-1]["worker"],
            )
        )
    end = float(free.max())
    jobs.append(
        dict(
            job_id=n_jobs,
            status="cancelled",
            attempts=0,
            submitted_s=0.1,
            first_start_s=math.nan,
            end_s=end,
            worker=-1,
        )
    )
    attempts = pd.DataFrame(rows)
    attempts["outcome"] = pd.Categorical(attempts["outcome"], categories=OUTCOMES)
    jobs = pd.DataFrame(jobs)
    jobs["status"] = pd.Categorical(jobs["status"], categories=["ok", "failed", "cancelled"])
    jobs["queue_wait_s"] = jobs["first_start_s"] - jobs["submitted_s"]
    jobs["latency_s"] = jobs["end_s"] - jobs["submitted_s"]
    return attempts, jobs


def usl(n, lam, sigma, kappa):
    n = np.asarray(n, dtype=float)
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


PARAMS = {"thread": (100.0, 0.3, 0.01), "process": (80.0, 0.02, 0.001)}


def make_sweep(workers=(1, 2, 4, 8), repeats: int = 3, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for backend, p in PARAMS.items():
        for n in workers:
            for r in range(repeats):
                x = float(usl(n, *p)) * rng.uniform(0.95, 1.05)
                rows.append(
                    dict(
                        backend=backend,
                        workers=n,
                        repeat=r,
                        jobs=200,
                        ok=195,
                        failed=5,
                        cancelled=0,
                        retries=7,
                        wall_s=200 / x,
                        throughput=x,
                        latency_p50_s=0.01 * n,
                        latency_p95_s=0.03 * n,
                        latency_p99_s=0.05 * n**2,
                        queue_wait_mean_s=0.2 / n,
                        cpu_util=0.5,
                    )
                )
    df = pd.DataFrame(rows)
    base = df[df["workers"] == min(workers)].groupby("backend")["throughput"].mean()
    df["speedup"] = df["throughput"] / df["backend"].map(base)
    df["efficiency"] = df["speedup"] / df["workers"]
    return df


def legend_texts(ax: Axes) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def by_gid(ax: Axes, gid: str):
    (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == gid]
    return line


def labelled(ax: Axes) -> None:
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
