"""Claims about measured behaviour, decided by intervals instead of written in advance.

A notebook's prose about what a sweep shows ("numpy scales on threads") holds on one
run and not on another: a busy machine flattens every CPU-bound curve. Each function
here tests one phenomenon on a sweep frame (one row per run: ``backend``, ``workers``,
``throughput``, ``throughput_ci_low``/``_high``, ``others_cpus``) or on a USL fit row
(``sigma``, ``sigma_ci_low`` ...), and returns a :class:`Claim`: the sentence with its
numbers when the intervals show it, else the reason this run cannot show it.
:func:`decide` adds how busy the machine was and what the reference run shows.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"backend": "thread", "workers": [1, 2], "throughput": [100, 199],
    ...                    "throughput_ci_low": [98, 190], "throughput_ci_high": [102, 208]})
    >>> print(scales(df, "thread", "numpy"))
    numpy scales on threads: 1.99× [1.86, 2.12] at 2 workers
    >>> flat = df.assign(throughput=[100, 101], throughput_ci_low=[98, 97],
    ...                  throughput_ci_high=[102, 105])
    >>> claim = decide(scales(flat, "thread", "numpy"), others=1.4, cores=2,
    ...                reference=scales(df, "thread", "numpy"))
    >>> claim.shown
    False
    >>> print(claim)  # doctest: +NORMALIZE_WHITESPACE
    this run cannot show that numpy scales on threads: it reached 1.01× [0.95, 1.07] at 2
    workers, not clearly above 1.5×; other processes used 1.4 of 2 CPUs. The reference run,
    recorded on a quiet machine, shows: numpy scales on threads: 1.99× [1.86, 2.12] at 2 workers
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from qlab.core import fmt

__all__ = [
    "Claim",
    "above",
    "both",
    "decide",
    "flattening",
    "knee",
    "peak",
    "plateau",
    "point",
    "ratio",
    "scales",
    "serial",
    "sigma_near",
    "stays_flat",
    "steps",
    "little_wait",
]

BACKENDS = {"thread": "threads", "process": "processes", "dask": "Dask workers"}


@dataclass(frozen=True)
class Claim:
    """One sentence about a run: ``shown`` tells whether the data show ``subject``.

    Attributes:
        shown: whether the intervals support the claim.
        text: the claim with its numbers, or why the data cannot show it.
        subject: the phenomenon, in words ("numpy scales on threads").
    """

    shown: bool
    text: str
    subject: str = ""

    def __str__(self) -> str:
        return self.text

    def _repr_markdown_(self) -> str:
        return self.text


def point(df: pd.DataFrame, backend: str, workers: int) -> tuple[float, float, float]:
    """(mean, interval low, interval high) of the throughput of one point; the interval
    is NaN when the point has one repeat or the frame has no interval columns."""
    g = df[(df["backend"].astype(str) == backend) & (df["workers"] == workers)]
    if g.empty:
        raise ValueError(f"no runs of backend {backend!r} at workers={workers}")
    mean = float(g["throughput"].mean())
    if {"throughput_ci_low", "throughput_ci_high"} <= set(g.columns):
        return mean, float(g["throughput_ci_low"].mean()), float(g["throughput_ci_high"].mean())
    return mean, math.nan, math.nan


def ratio(a: tuple[float, float, float], b: tuple[float, float, float]) -> tuple[float, ...]:
    """a / b with a conservative interval: [a_low / b_high, a_high / b_low]."""
    low = a[1] / b[2] if b[2] > 0 else math.nan
    high = a[2] / b[1] if b[1] > 0 else math.inf
    return a[0] / b[0], low, high


def _rt(r: tuple[float, ...]) -> str:
    return f"{fmt.factor(r[0])} {fmt.interval(r[1], r[2], lambda v: f'{v:.2f}')}"


def _no_interval(r: tuple[float, ...]) -> bool:
    return not (math.isfinite(r[1]) and math.isfinite(r[2]))


def _speedup(df: pd.DataFrame, backend: str, n: int) -> tuple[float, ...]:
    base = int(df.loc[df["backend"].astype(str) == backend, "workers"].min())
    return ratio(point(df, backend, n), point(df, backend, base))


def scales(df: pd.DataFrame, backend: str, what: str, n: int = 2, least: float = 1.5) -> Claim:
    """``what`` scales on ``backend``: the speedup at ``n`` workers over the fewest has an
    interval wholly above ``least``."""
    subject = f"{what} scales on {BACKENDS.get(backend, backend)}"
    r = _speedup(df, backend, n)
    if _no_interval(r):
        return Claim(False, f"one repeat per point gives no interval ({fmt.factor(r[0])})", subject)
    if r[1] > least:
        return Claim(True, f"{subject}: {_rt(r)} at {fmt.plural(n, 'worker')}", subject)
    return Claim(False, f"it reached {_rt(r)} at {n} workers, not clearly above {least}×", subject)


def stays_flat(df: pd.DataFrame, backend: str, what: str, n: int = 2, most: float = 1.25) -> Claim:
    """``what`` does not scale on ``backend``: the speedup's interval lies below ``most``.
    (Flat data pass this test too: pair it with a :func:`scales` on another backend.)"""
    subject = f"{what} does not scale on {BACKENDS.get(backend, backend)}"
    r = _speedup(df, backend, n)
    if _no_interval(r):
        return Claim(False, f"one repeat per point gives no interval ({fmt.factor(r[0])})", subject)
    if r[2] < most:
        return Claim(True, f"{subject}: {_rt(r)} at {fmt.plural(n, 'worker')}", subject)
    return Claim(False, f"its speedup at {n} workers, {_rt(r)}, may reach {most}×", subject)


def _coef(row: Any, name: str) -> tuple[float, float, float]:
    return float(row[name]), float(row[f"{name}_ci_low"]), float(row[f"{name}_ci_high"])


def _ct(v: tuple[float, float, float]) -> str:
    return f"{fmt.number(v[0], 2)} {fmt.interval(v[1], v[2], lambda x: fmt.number(x, 2))}"


def serial(row: Any, what: str, least: float = 0.8) -> Claim:
    """All of ``what``'s work is serial: the fitted σ's interval lies above ``least``."""
    subject = f"{what} is serial (σ near 1)"
    s = _coef(row, "sigma")
    if s[1] >= least:
        return Claim(True, f"{what}: σ = {_ct(s)}, all the work serial", subject)
    return Claim(
        False, f"its fitted σ is {_ct(s)}, an interval that reaches below {least}", subject
    )


def sigma_near(row: Any, target: float, what: str) -> Claim:
    """The fitted σ of ``what`` is ``target``: its interval contains it and excludes 0."""
    subject = f"σ of {what} is close to {fmt.number(target, 2)}"
    s = _coef(row, "sigma")
    if s[1] <= target <= s[2] and s[1] > 0:
        return Claim(True, f"{what}: σ = {_ct(s)}, which contains {fmt.number(target, 2)}", subject)
    return Claim(
        False, f"its fitted σ is {_ct(s)}, which excludes {fmt.number(target, 2)}", subject
    )


def peak(row: Any, what: str, max_workers: float) -> Claim:
    """``what`` peaks inside the measured range: the fitted peak's interval is finite and
    its upper end within the largest worker count measured."""
    subject = f"{what} peaks inside the measured range"
    p = _coef(row, "peak_workers")
    text = f"{fmt.peak(p[0], max_workers)} {fmt.interval(p[1], p[2], lambda v: f'{v:.1f}')}"
    if math.isfinite(p[2]) and p[2] <= max_workers:
        return Claim(True, f"{what} peaks at {text}", subject)
    return Claim(False, f"its fitted peak is {text}: no peak that the data pin down", subject)


def flattening(row: Any, what: str) -> Claim:
    """Where the fit puts ``what``'s flattening: σ, κ or both, by which interval excludes 0."""
    subject = f"the fit of {what} shows its flattening"
    s, k = _coef(row, "sigma"), _coef(row, "kappa")
    parts = [f"σ = {_ct(s)}" if s[1] > 0 else "", f"κ = {_ct(k)}" if k[1] > 0 else ""]
    shown = [p for p in parts if p]
    if not shown:
        return Claim(
            False, f"neither σ ({_ct(s)}) nor κ ({_ct(k)}) is distinguishable from 0", subject
        )
    where = " and ".join(["σ"] * bool(parts[0]) + ["κ"] * bool(parts[1]))
    return Claim(
        True, f"the fit of {what} puts its flattening into {where}: {'; '.join(shown)}", subject
    )


def plateau(df: pd.DataFrame, backend: str, what: str, at: int) -> Claim:
    """``what`` on ``backend`` rises to ``at`` workers and stays flat past it: the speedup
    at ``at`` lies above 1.5, and the last point over the one at ``at`` contains 1 and
    lies within [0.8, 1.25]."""
    subject = f"{what} on {BACKENDS.get(backend, backend)} plateaus past {at} workers"
    top = int(df.loc[df["backend"].astype(str) == backend, "workers"].max())
    rise, after = _speedup(df, backend, at), ratio(point(df, backend, top), point(df, backend, at))
    if _no_interval(rise) or _no_interval(after):
        return Claim(False, "one repeat per point gives no interval", subject)
    if rise[1] > 1.5 and after[1] <= 1 <= after[2] and after[1] >= 0.8 and after[2] <= 1.25:
        text = f"{subject}: {_rt(rise)} up to {at}, then {_rt(after)} from {at} to {top}"
        return Claim(True, text, subject)
    why = f"it rose {_rt(rise)} up to {at} and changed {_rt(after)} from {at} to {top}"
    return Claim(False, why, subject)


def knee(df: pd.DataFrame, backend: str, what: str, cores: int) -> Claim:
    """A knee at the core count: ``cores`` workers run clearly faster than one (above
    1.5×), and no point past it runs clearly faster than the point at ``cores``."""
    subject = f"{what} has a knee at {fmt.plural(cores, 'core')}"
    rise = _speedup(df, backend, cores)
    ws = sorted(w for w in df.loc[df["backend"].astype(str) == backend, "workers"].unique())
    past = [ratio(point(df, backend, w), point(df, backend, cores)) for w in ws if w > cores]
    if _no_interval(rise) or not past or any(_no_interval(r) for r in past):
        return Claim(False, "one repeat per point (or no point past the cores) gives no interval",
                     subject)  # fmt: skip
    if rise[1] > 1.5 and all(r[1] <= 1.0 for r in past):
        return Claim(True, f"{subject}: {_rt(rise)} at {cores}, no gain past it", subject)
    return Claim(False, f"it reached {_rt(rise)} at {cores}, and the points past it do not "
                 "stay at or below that one", subject)  # fmt: skip


def above(a: Any, b: Any, name: str, what: str) -> Claim:
    """``what``: the fitted ``name`` (sigma, kappa, lam) of fit row ``a`` has an interval
    wholly above that of ``b`` (``what`` names the two: "Dask's σ above the pipe's")."""
    x, y = _coef(a, name), _coef(b, name)
    if x[1] > y[2]:
        return Claim(True, f"{what}: {_ct(x)} against {_ct(y)}", what)
    return Claim(False, f"the intervals {_ct(x)} and {_ct(y)} overlap", what)


def both(first: Claim, second: Claim, subject: str) -> Claim:
    """A contrast of two claims ("cpu does not scale on threads, while processes do"):
    shown when both are, else the reasons of those that are not."""
    if first.shown and second.shown:
        return Claim(True, f"{first.text}; {second.text}", subject)
    why = "; ".join(f"{c.subject}? {c.text}" for c in (first, second) if not c.shown)
    return Claim(False, why, subject)


def steps(waits_s: Any, step_s: float, what: str) -> Claim:
    """``what`` waits in whole steps of ``step_s`` (the GIL's switch interval): of the
    waits longer than half a step, more than 60% lie within a fifth of a step of a whole
    number of steps (waits spread evenly would put 40% there)."""
    import numpy as np

    subject = f"{what} wait in steps of {fmt.duration(step_s)}"
    w = np.asarray(waits_s, dtype=float)
    w = w[np.isfinite(w) & (w > step_s / 2)]
    if len(w) < 20:
        return Claim(
            False, f"only {fmt.plural(len(w), 'attempt')} waited half a step or more", subject
        )
    phase = w / step_s
    share = float(np.mean(np.abs(phase - np.round(phase)) <= 0.2))
    text = f"{fmt.percent(share)} of the {len(w):,} waits lie near a whole number of steps"
    return Claim(share > 0.6, f"{subject}: {text}" if share > 0.6 else f"{text}, not more than "
                 "an even spread would put there (40%) by much", subject)  # fmt: skip


def little_wait(wait_share: Any, what: str, most: float = 0.1) -> Claim:
    """``what`` run without waiting: the median share of an attempt's wall time spent
    off the CPU (1 − CPU / wall) is below ``most``."""
    import numpy as np

    subject = f"{what} run without waiting (wall time = CPU time)"
    median = float(np.nanmedian(np.asarray(wait_share, dtype=float)))
    if median < most:
        return Claim(True, f"{what} wait for {fmt.percent(median)} of their wall time (median)",
                     subject)  # fmt: skip
    return Claim(False, f"they waited {fmt.percent(median)} of their wall time (median)", subject)


def decide(
    claim: Claim,
    *,
    others: float = math.nan,
    cores: int | None = None,
    reference: Claim | None = None,
    reference_others: float = math.nan,
) -> Claim:
    """The sentence a notebook prints: the claim when this run shows it; else "this run
    cannot show that …", why, how busy the machine was, and what the reference run shows,
    with how quiet the machine was when the reference was recorded (``reference_others``:
    CPUs that other processes used then; "a quiet machine" below 0.15)."""
    if claim.shown:
        return claim
    text = f"this run cannot show that {claim.subject}: {claim.text}"
    if math.isfinite(others) and others >= 0.15 and cores:
        text += f"; other processes used {fmt.number(others, 2)} of {fmt.plural(cores, 'CPU')}"
    if reference is not None:
        if math.isfinite(reference_others) and reference_others >= 0.15:
            when = f"recorded while other processes used {fmt.number(reference_others, 2)} CPUs"
        else:
            when = "recorded on a quiet machine"
        seen = reference.text if reference.shown else f"it cannot either ({reference.text})"
        text += f". The reference run, {when}, shows: {seen}"
    return Claim(False, text, claim.subject)
