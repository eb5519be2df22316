"""``bench.py --compare REF.csv``: this run against a reference run, case by case.

A case is one (workload, jobs, workers, peer) row. Its ratio is this run's median
jobs/s over the reference's, and its spread comes from the rounds of both runs: the
low end pairs this run's slowest-typical round (its median) with the reference's best,
the high end this run's best with the reference's median. A case is ``slower`` when
even the high end is below 1 by more than ``margin``, ``faster`` when even the low end
is above 1 by more, ``same`` otherwise: a change must beat the noise of both runs to
be called.

Example:
    >>> import pandas as pd
    >>> ref = pd.DataFrame({"workload": ["noop"], "n_jobs": [10], "workers": [2],
    ...     "peer": ["qlab-thread"], "status": ["ok"], "wall_s_median": [1.0],
    ...     "wall_s_best": [0.9]})
    >>> now = ref.assign(wall_s_median=[0.5], wall_s_best=[0.45])
    >>> row = compare(now, ref).iloc[0]
    >>> float(round(row.ratio, 2)), row.verdict
    (2.0, 'faster')
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["compare", "print_comparison", "read_results"]

CASE = ["workload", "n_jobs", "workers", "peer"]


def read_results(path: Path) -> pd.DataFrame:
    """A bench CSV (its ``#`` metadata lines skipped)."""
    return pd.read_csv(path, comment="#")


def compare(now: pd.DataFrame, ref: pd.DataFrame, margin: float = 0.02) -> pd.DataFrame:
    """Per case: jobs/s now and in the reference, the ratio, its spread, a verdict."""
    cols = [*CASE, "wall_s_median", "wall_s_best"]
    a = now[now.status == "ok"][cols]
    b = ref[ref.status == "ok"][cols]
    m = a.merge(b, on=CASE, suffixes=("", "_ref"))
    n = m.n_jobs
    m["jobs_per_s"] = n / m.wall_s_median
    m["ref_jobs_per_s"] = n / m.wall_s_median_ref
    m["ratio"] = m.wall_s_median_ref / m.wall_s_median
    m["ratio_low"] = m.wall_s_best_ref / m.wall_s_median
    m["ratio_high"] = m.wall_s_median_ref / m.wall_s_best
    m["verdict"] = "same"
    m.loc[m.ratio_high < 1 - margin, "verdict"] = "slower"
    m.loc[m.ratio_low > 1 + margin, "verdict"] = "faster"
    keep = [*CASE, "jobs_per_s", "ref_jobs_per_s", "ratio", "ratio_low", "ratio_high", "verdict"]
    return m[keep].reset_index(drop=True)


def print_comparison(table: pd.DataFrame, ref_path: Path) -> None:
    """The comparison as a table on stdout (the benchmark's report, not a library)."""
    print(f"\nthis run / {ref_path} (ratio of jobs/s; spread over rounds of both runs):")
    if table.empty:
        print("  no case in common")
        return
    for r in table.itertuples():
        print(
            f"  {r.workload:<8} {r.workers:>3} workers  {r.peer:<20} {r.ratio:6.2f}x "
            f"[{r.ratio_low:.2f}, {r.ratio_high:.2f}]  {r.verdict}"
        )
    slower = table[table.verdict == "slower"]
    print(f"  {len(slower)} of {len(table)} cases slower beyond their noise")
