"""The claims of the story notebooks, one function per notebook, decided on any run.

Each function takes the notebook's sweep frames (``sweep.df``: one row per run), tests
each phenomenon that the notebook's prose states with :mod:`qlab.claims`, and returns
{name: :class:`~qlab.claims.Claim`}. Given the reference frames too (``data/reference/``,
recorded on a quiet machine), a claim that this run cannot show says what the reference
shows instead. ``tests/test_claims.py`` runs every function on the committed reference
and on perturbed copies (points flattened or shuffled), which must flip the claims.

Example:
    >>> import qlab
    >>> ref = {(w, b): qlab.load_sweep(f"data/reference/{w}-{b}.parquet").df
    ...        for w in ("sleep", "cpu") for b in ("thread", "process")}
    >>> claims = scaling(ref)
    >>> all(c.shown for c in claims.values())
    True
    >>> print(claims["gil"])  # doctest: +ELLIPSIS
    cpu(ms=1) does not scale on threads: ...× [...] at 2 workers; cpu(ms=1) scales on processes...
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from qlab.lab import claims as c
from qlab.lab.claims import Claim

__all__ = ["cluster", "contention", "decided", "fits", "others", "real", "scaling"]


def fits(df: pd.DataFrame) -> pd.DataFrame:
    """The USL fit of each backend of ``df`` (few-levels warnings silenced: the claims
    read the intervals, which say how sure the fit is)."""
    from qlab.lab import usl

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return usl.fit_frame(df, by="backend")


def others(frames: Mapping[Any, pd.DataFrame]) -> float:
    """Mean CPUs that other processes used during the runs of ``frames`` (NaN if unknown)."""
    values = [df["others_cpus"] for df in frames.values() if "others_cpus" in df.columns]
    return float(pd.concat(values).mean()) if values else math.nan


def decided(
    story: Callable[..., dict[str, Claim]],
    frames: Mapping[Any, pd.DataFrame],
    reference: Mapping[Any, pd.DataFrame] | None = None,
    cores: int | None = None,
    **kw: Any,
) -> dict[str, Claim]:
    """``story`` on this run's ``frames``, each claim decided with :func:`qlab.lab.claims.decide`:
    how busy the machine was, and what the ``reference`` frames show."""
    cores = cores or os.cpu_count() or 1
    fresh = story(frames, cores=cores, **kw)
    ref = story(reference, cores=cores, **kw) if reference is not None else {}
    load, ref_load = others(frames), others(reference) if reference is not None else math.nan
    return {
        k: c.decide(v, others=load, cores=cores, reference=ref.get(k), reference_others=ref_load)
        for k, v in fresh.items()
    }


def scaling(frames: Mapping[tuple[str, str], pd.DataFrame], cores: int = 2) -> dict[str, Claim]:
    """Notebook 02: frames keyed (workload, backend), workloads "sleep" (2 ms waits) and
    "cpu" (1 ms of pure Python)."""
    st, sp = frames[("sleep", "thread")], frames[("sleep", "process")]
    ct, cp = frames[("cpu", "thread")], frames[("cpu", "process")]
    nt, np_ = int(st["workers"].max()), int(sp["workers"].max())
    top = int(cp["workers"].max())
    return {
        "sleep_threads": c.scales(st, "thread", "sleep(ms=2)", n=nt, least=0.75 * nt),
        "sleep_processes": c.scales(sp, "process", "sleep(ms=2)", n=np_, least=0.75 * np_),
        "gil": c.both(
            c.stays_flat(ct, "thread", "cpu(ms=1)"),
            c.scales(cp, "process", "cpu(ms=1)"),
            "pure-Python CPU work scales on processes and not on threads",
        ),
        "serial": c.serial(fits(ct).iloc[0], "cpu(ms=1) on threads"),
        "knee": c.knee(cp, "process", "cpu(ms=1) on processes", cores),
        "peak": c.peak(fits(cp).iloc[0], "cpu(ms=1) on processes", top),
    }


def contention(frames: Mapping[str, pd.DataFrame], cores: int = 2) -> dict[str, Claim]:
    """Notebook 04: frames "gil" (``cpu`` on threads) and "procs" (``cpu`` on processes)."""
    gil, procs = frames["gil"], frames["procs"]
    return {
        "gil": c.both(
            c.stays_flat(gil, "thread", "CPU-bound Python"),
            c.scales(procs, "process", "the same work"),
            "CPU-bound Python stays at one thread's rate where processes scale",
        ),
        "serial": c.serial(fits(gil).iloc[0], "CPU-bound Python on threads"),
        "knee": c.knee(procs, "process", "CPU-bound work on processes", cores),
    }


def cluster(frames: Mapping[str, pd.DataFrame], cores: int = 2) -> dict[str, Claim]:
    """Notebook 06: frame "single" (``sleep`` with one job per task, on "process" and
    "dask"): does the hop show up as σ, and as a lower λ?"""
    f = fits(frames["single"])
    dask, process = f.loc["dask"], f.loc["process"]
    return {
        "hop_sigma": c.above(
            dask,
            process,
            "sigma",
            "with one job per task, Dask's σ lies above the process backend's",
        ),
        "hop_lam": c.above(
            process,
            dask,
            "lam",
            "with one job per task, Dask's λ (one worker's rate) lies below the process backend's",
        ),
        "where": c.flattening(dask, "Dask with one job per task"),
    }


def real(frames: Mapping[str, pd.DataFrame], cores: int = 2, pool: int = 4) -> dict[str, Claim]:
    """Notebook 08: frames by workload name ("numpy", "compress", "cpu", "http"), each
    with both backends."""
    cpu = frames["cpu"]
    return {
        "numpy": c.scales(frames["numpy"], "thread", "numpy"),
        "compress": c.scales(frames["compress"], "thread", "compress"),
        "gil": c.both(
            c.stays_flat(cpu, "thread", "cpu(ms=2)"),
            c.scales(cpu, "process", "cpu(ms=2)"),
            "pure-Python cpu(ms=2) scales on processes and not on threads",
        ),
        "serial": c.serial(fits(cpu).loc["thread"], "cpu(ms=2) on threads"),
        "plateau": c.plateau(frames["http"], "process", f"http(pool={pool})", pool),
    }
