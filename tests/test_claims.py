"""The story notebooks' claims (qlab.stories) are decided by the data: on the committed
reference sweeps they hold, and on perturbed copies of the same sweeps, whose phenomenon
has been destroyed, they flip to "this run cannot show it" instead of being repeated.

Perturbations, each applied per backend to every run (a point's interval moves with it):
- flat: every point at the backend's mean throughput (nothing scales, nothing peaks);
- reversed: the worker counts' labels in reverse order (the shape runs backwards);
- ideal: every point on the ideal line x(1)·N (everything scales, nothing is serial);
- noisy: the repeats spread by ±40% (a busy machine), intervals recomputed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

import qlab
from qlab.lab import claims, stories

REF = Path(__file__).resolve().parents[1] / "data" / "reference"
CI = ["throughput_ci_low", "throughput_ci_high"]


def _each_backend(df: pd.DataFrame, change) -> pd.DataFrame:
    return pd.concat([change(g.copy()) for _, g in df.groupby("backend")], ignore_index=True)


def _scale_points(g: pd.DataFrame, target: pd.Series) -> pd.DataFrame:
    """Move each point's runs and interval so that its mean becomes target[workers]."""
    k = g["workers"].map(target / g.groupby("workers")["throughput"].mean())
    g["throughput"] *= k
    g[CI] = g[CI].mul(k, axis=0)
    return g


def flat(df: pd.DataFrame) -> pd.DataFrame:
    def change(g):
        means = g.groupby("workers")["throughput"].mean()
        return _scale_points(g, pd.Series(means.mean(), index=means.index))

    return _each_backend(df, change)


def reversed_(df: pd.DataFrame) -> pd.DataFrame:
    def change(g):
        ws = sorted(g["workers"].unique())
        g["workers"] = g["workers"].map(dict(zip(ws, ws[::-1], strict=True)))
        return g

    return _each_backend(df, change)


def ideal(df: pd.DataFrame) -> pd.DataFrame:
    def change(g):
        means = g.groupby("workers")["throughput"].mean()
        return _scale_points(g, means.iloc[0] * means.index / means.index[0])

    return _each_backend(df, change)


def noisy(df: pd.DataFrame) -> pd.DataFrame:
    def change(g):
        spread = np.array([0.6, 1.0, 1.4])
        g["throughput"] *= spread[g.groupby("workers").cumcount().to_numpy() % 3]
        by = g.groupby("workers")["throughput"]
        n, mean, sd = by.transform("count"), by.transform("mean"), by.transform("std")
        half = st.t.ppf(0.975, n - 1) * sd / np.sqrt(n)
        g["throughput_ci_low"], g["throughput_ci_high"] = mean - half, mean + half
        return g

    return _each_backend(df, change)


PERTURB = {"flat": flat, "reversed": reversed_, "ideal": ideal, "noisy": noisy}


def frames02():
    return {
        (w, b): qlab.load_sweep(REF / f"{w}-{b}.parquet").df
        for w in ("sleep", "cpu")
        for b in ("thread", "process")
    }


def frames04():
    f = frames02()
    return {"gil": f[("cpu", "thread")], "procs": f[("cpu", "process")]}


def frames06():
    return {"single": qlab.load_sweep(REF / "cluster-single.parquet").df}


def frames08():
    names = ("numpy", "compress", "cpu", "http")
    return {n: qlab.load_sweep(REF / "real-contention" / f"{n}.parquet").df for n in names}


# which perturbation must flip which claim: a claim that something scales cannot survive
# flat or reversed data; a claim that something is flat or serial cannot survive the
# ideal line; and every claim must give way to a busy machine's noise
SCALES = {"flat", "reversed", "noisy"}
CASES = {
    "02": (stories.scaling, frames02, {
        "sleep_threads": SCALES, "sleep_processes": SCALES, "gil": SCALES | {"ideal"},
        "serial": {"ideal", "noisy"}, "knee": SCALES | {"ideal"}, "peak": {"flat", "ideal"},
    }),
    "04": (stories.contention, frames04, {
        "gil": SCALES | {"ideal"}, "serial": {"ideal", "noisy"}, "knee": SCALES | {"ideal"},
    }),
    "06": (stories.cluster, frames06, {
        "hop_sigma": {"flat", "ideal"}, "hop_lam": {"flat", "ideal"},
    }),
    "08": (stories.real, frames08, {
        "numpy": SCALES, "compress": SCALES, "gil": SCALES | {"ideal"},
        "serial": {"ideal", "noisy"}, "plateau": SCALES | {"ideal"},
    }),
}  # fmt: skip


def _available(name: str) -> bool:
    try:
        CASES[name][1]()
    except FileNotFoundError:
        return False
    return True


@pytest.mark.parametrize("name", sorted(CASES))
def test_claims_hold_on_the_reference_and_flip_on_perturbed_data(name):
    if not _available(name):
        pytest.skip(f"notebook {name}: its reference sweep is not committed")
    story, load, flips = CASES[name]
    ref = load()
    held = story(ref)
    shown = {k for k, c in held.items() if c.shown}
    # a quiet reference shows every claim; 08's comes from a busy machine (its README
    # says which points), and shows only the claims that survive that: numpy and zlib
    # scaling on threads
    must = {"numpy", "compress"} if name == "08" else set(held)
    assert must <= shown, {k: c.text for k, c in held.items() if not c.shown}
    assert shown, f"notebook {name}: the reference shows none of its claims"
    for kind, perturb in PERTURB.items():
        moved = {k: perturb(df) for k, df in ref.items()}
        out = stories.decided(story, moved, reference=ref, cores=2)
        for key in shown & {k for k, kinds in flips.items() if kind in kinds}:
            assert not out[key].shown, f"{name} {key} survived {kind}: {out[key].text}"
            assert out[key].text.startswith("this run cannot show that"), out[key].text
            quiet = stories.others(ref) < 0.15
            said = "recorded on a quiet machine" if quiet else "recorded while other processes used"
            assert f"The reference run, {said}" in out[key].text, out[key].text


def test_every_claim_of_a_story_is_covered_by_a_perturbation():
    for name, (story, load, flips) in CASES.items():
        if _available(name):
            assert set(story(load())) <= set(flips) | {"where"}, name


def test_a_busy_runs_claim_says_how_busy_the_machine_was():
    ref = frames04()
    busy = {k: flat(df).assign(others_cpus=1.4) for k, df in ref.items()}
    text = stories.decided(stories.contention, busy, reference=ref, cores=2)["knee"].text
    assert "other processes used 1.4 of 2 CPUs" in text
    assert "shows: CPU-bound work on processes has a knee at 2 cores" in text


def test_one_repeat_per_point_cannot_show_anything():
    df = frames02()[("sleep", "thread")]
    one = df[df["repeat"] == 0].assign(throughput_ci_low=math.nan, throughput_ci_high=math.nan)
    claim = claims.scales(one, "thread", "sleep", n=16, least=12)
    assert not claim.shown and "one repeat per point gives no interval" in claim.text


def test_sigma_near_reads_the_interval():
    row = {"sigma": 0.18, "sigma_ci_low": 0.12, "sigma_ci_high": 0.24}
    assert claims.sigma_near(row, 0.2, "the lock").shown
    assert not claims.sigma_near(row, 0.1, "the lock").shown  # 04's h = 0.1 case
    zero = {"sigma": 0.02, "sigma_ci_low": -0.01, "sigma_ci_high": 0.05}
    assert not claims.sigma_near(zero, 0.03, "the lock").shown  # not told apart from 0
