"""Reporting for bench.py: the console table, the CSV with its metadata header, the chart."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

#: The CSV's columns and what each means (written into the CSV header).
COLUMN_MEANINGS: dict[str, str] = {
    "workload": "noop | seed | sleep_1ms | noop_threads (and the Dask block's cases)",
    "n_jobs": "jobs per round",
    "workers": "worker threads/processes/goroutines (the same for every peer of a case)",
    "peer": "who ran the jobs",
    "kind": "thread | process | external (a separate program)",
    "status": "ok | skipped | error (see note)",
    "startup": "included: start-up is inside wall_s; separate: measured apart (startup_s),"
    " wall_s is with a warm pool; self-reported: the peer says how much of the round was"
    " start-up, it is reported as startup_s and subtracted from wall_s",
    "startup_s": "start-up seconds (NaN when included in wall_s); for self-reported the median"
    " over the rounds",
    "wall_s_median": "median over the timed rounds of one round's seconds (start-up excluded"
    " unless startup=included)",
    "wall_s_best": "fastest timed round, seconds",
    "rounds_timed": "timed rounds of this row (after the warm-up): 3, or fewer (at least 1)"
    " when 3 rounds would take over round_budget_s (metadata) in all",
    "jobs_per_s": "n_jobs / wall_s_median: THE number of the table",
    "jobs_per_s_best": "n_jobs / wall_s_best",
    "reported_jobs_per_s": "the peer's own throughput figure, where it has one (qlab summary,"
    " Go program); not used for ratios",
    "ok": "jobs that succeeded (last round)",
    "failed": "jobs that failed permanently after 4 attempts (last round)",
    "expected_ok": "ok that the workload must give",
    "expected_failed": "failed that the workload must give",
    "check": "pass when ok/failed are the expected ones",
    "sleep_service_s": "sleep workload only: mean time of one time.sleep(1 ms) in as many bare"
    " threads as workers, measured in the same run (the service time of a sleep job)",
    "ideal_jobs_per_s": "sleep workload only: workers / sleep_service_s",
    "ratio_to_ideal": "jobs_per_s / ideal_jobs_per_s",
    "batch_mean": "qlab only: attempts per batch that qlab chose (run.meta['batches'])",
    "own_service_s": "mean attempt time in the peer's own trace (qlab only): the sleep as"
    " the pool saw it, GIL waits after waking included",
    "ratio_to_own_ideal": "sleep workload, qlab only: jobs_per_s / (workers / own_service_s),"
    " the issue's '16 / mean service time'",
    "serial_jobs_per_s": "CPU-bound workloads (seed): the jobs run serially in the benchmark's"
    " process, retries included, no pool (faster of 2 passes): one core's rate in CPython",
    "cpu_limit_jobs_per_s": "CPU-bound workloads: min(workers, cpu_count) x serial_jobs_per_s,"
    " CPython's limit on this machine",
    "ratio_to_cpu_limit": "jobs_per_s / cpu_limit_jobs_per_s",
    "x_qlab_thread": "jobs_per_s / jobs_per_s of qlab-thread in the same case (>1: faster)",
    "x_qlab_process": "jobs_per_s / jobs_per_s of qlab-process in the same case",
    "note": "why skipped, the error, or a check mismatch",
}
CSV_COLUMNS = list(COLUMN_MEANINGS)

QLAB_COLORS = {"qlab-thread": "#d62728", "qlab-process": "#8c1515", "qlab-process-spawn": "#e377c2"}
HATCHES = {"process": "//", "external": ".."}  # thread peers: plain bars


def _fmt(value: Any, spec: str, empty: str = "-") -> str:
    """Format a number, or ``empty`` when it is missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return empty
    return format(value, spec)


def print_table(df: pd.DataFrame, meta: dict[str, Any]) -> None:
    """One block per case: jobs/s (median, best), ratios to qlab, start-up, ideal, notes."""
    print(
        f"\nqlab benchmark ({meta['mode']}): median of {meta['rounds']} timed round(s) (fewer"
        f" if over {meta['round_budget_s']:.0f} s: column rnd) after {meta['warmup_rounds']}"
        f" warm-up, {meta['timer']}, {meta['cpu_count']} CPUs,"
        f" Python {meta['python']}, commit {meta['git_commit']}"
    )
    header = (
        f"{'peer':<17} {'jobs/s':>12} {'best':>12} {'rnd':>3} {'x qlab-thr':>10}"
        f" {'x qlab-proc':>11} {'start-up s':>10} {'% ideal':>8}  note"
    )
    for (workload, n_jobs, workers), group in df.groupby(
        ["workload", "n_jobs", "workers"], sort=False
    ):
        ideal = group["ideal_jobs_per_s"].dropna()
        extra = f", ideal {ideal.iloc[0]:,.0f} jobs/s" if len(ideal) else ""
        print(f"\n== {workload}: {n_jobs:,} jobs, {workers} workers{extra}")
        print(header)
        for row in group.itertuples():
            if row.status != "ok":
                print(f"{row.peer:<17} {row.status:>12}  {row.note}")
                continue
            startup = "incl." if row.startup == "included" else _fmt(row.startup_s, ".3f")
            note = "" if row.check == "pass" else f"{row.check} {row.note}"
            batch = getattr(row, "batch_mean", math.nan)
            if batch == batch:  # not NaN: qlab says how it batched
                note = f"batches of {batch:,.0f} {note}".rstrip()
            own = getattr(row, "ratio_to_own_ideal", math.nan)
            if own == own:  # not NaN: qlab on sleep jobs
                note = f"{note}; {own:.0%} of workers / its own mean service time"
            print(
                f"{row.peer:<17} {row.jobs_per_s:>12,.0f} {row.jobs_per_s_best:>12,.0f}"
                f" {_fmt(row.rounds_timed, '.0f'):>3}"
                f" {_fmt(row.x_qlab_thread, '.2f'):>10} {_fmt(row.x_qlab_process, '.2f'):>11}"
                f" {startup:>10} {_fmt(row.ratio_to_ideal, '.0%'):>8}  {note}"
            )
    print(f"\ntracing cost: {meta.get('tracing_cost', 'not measured')}")


def write_csv(df: pd.DataFrame, path: Path, meta: dict[str, Any], includes: dict[str, str]) -> None:
    """CSV with ``#`` header lines: metadata, column meanings, what each peer's time includes.

    Read it back with ``pd.read_csv(path, comment="#")``.
    """
    lines = [f"# {key}: {value}" for key, value in meta.items()]
    if set(COLUMN_MEANINGS) <= set(df.columns):
        lines += [f"# column {name}: {text}" for name, text in COLUMN_MEANINGS.items()]
    lines += [f"# peer {name}: {text}" for name, text in includes.items()]
    with path.open("w") as f:
        f.write("\n".join(lines) + "\n")
        df.to_csv(f, index=False)


def draw_chart(df: pd.DataFrame, path: Path, meta: dict[str, Any]) -> None:
    """Grouped bars: jobs/s (median, log scale) per peer for each (workload, workers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = df[df["status"] == "ok"]
    if done.empty:
        return
    cases = list(done.groupby(["workload", "n_jobs", "workers"], sort=False).groups)
    peers = list(dict.fromkeys(done["peer"]))
    width = 0.85 / len(peers)
    palette = [
        c for i, c in enumerate(plt.get_cmap("tab20").colors) if i not in (6, 7, 10, 11)
    ]  # no reds, browns
    fig, ax = plt.subplots(figsize=(max(10, 1.6 * len(cases) + 3), 6.5))
    kinds = dict(zip(done["peer"], done["kind"], strict=False))
    for k, peer in enumerate(peers):
        mine = done[done["peer"] == peer].set_index(["workload", "n_jobs", "workers"])
        xs = [
            i + (k - (len(peers) - 1) / 2) * width for i, c in enumerate(cases) if c in mine.index
        ]
        ys = [mine.loc[c, "jobs_per_s"] for c in cases if c in mine.index]
        ax.bar(
            xs,
            ys,
            width,
            label=peer,
            color=QLAB_COLORS.get(peer, palette[k % len(palette)]),
            edgecolor="black" if peer in QLAB_COLORS else "none",
            linewidth=0.6,
            hatch=HATCHES.get(kinds[peer], ""),
        )
    for i, case in enumerate(cases):
        ideal = done.loc[
            (done["workload"] == case[0]) & (done["workers"] == case[2]), "ideal_jobs_per_s"
        ].dropna()
        if len(ideal):
            ax.hlines(ideal.iloc[0], i - 0.45, i + 0.45, colors="black", linestyles="--")
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels([f"{w}\n{n:,} jobs\n{k} workers" for w, n, k in cases], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("jobs/s (median round; log scale)")
    ax.set_title(
        f"qlab and its peers, same jobs, one run ({meta['mode']}; hatched: processes, dotted:"
        " Go; dashed line: ideal workers / mean sleep time)\n"
        f"{meta['cpu_count']} CPUs, {meta['platform']}, Python {meta['python']},"
        f" commit {str(meta['git_commit'])[:12]}",
        fontsize=9,
    )
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8, ncols=1, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
