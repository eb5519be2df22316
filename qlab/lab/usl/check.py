"""Does the USL describe the data? Two standard checks on a fit's residuals.

- R²: the share of the throughput's variance that the curve explains; below
  ``R2_MIN`` (0.8) the curve misses most of what was measured.
- A systematic pattern: the Wald–Wolfowitz runs test (Wald and Wolfowitz, "On a test
  whether two samples are from the same population", Ann. Math. Statist. 11, 1940; as a
  test of randomness of residual signs, e.g. NIST/SEMATECH e-Handbook of Statistical
  Methods, §1.3.5.13) on the signs of the mean residual at each worker count, in order
  of N. A curve of the wrong shape leaves long runs of points above, then below, it:
  too few runs. The exact one-sided p-value is used (few levels make the normal
  approximation poor); a pattern counts when p < ``ALPHA`` and the largest mean
  residual is at least ``MATERIAL`` (5 %) of the largest throughput, so that a
  systematic but negligible wiggle around a good fit is not called a misfit.

Example:
    >>> round(runs_p([1, 1, 1, 1, -1, -1, -1, -1]), 4)  # two runs of 8 signs
    0.0286
    >>> misfit([1, 2, 3, 4], [10, 20, 30, 40], [10, 20, 30, 40], r2=1.0)
    ''
"""

from __future__ import annotations

from itertools import pairwise
from math import comb

import numpy as np

__all__ = ["ALPHA", "MATERIAL", "R2_MIN", "misfit", "runs_p"]

R2_MIN = 0.8
ALPHA = 0.05
MATERIAL = 0.05


def runs_p(signs: list[int] | np.ndarray) -> float:
    """P(runs <= observed) for a random order of these signs (+1 / -1; 0 dropped): the
    exact one-sided p-value of the Wald–Wolfowitz runs test for too few runs."""
    s = [int(np.sign(v)) for v in signs if np.sign(v) != 0]
    n1, n2 = s.count(1), s.count(-1)
    if n1 == 0 or n2 == 0:
        return 1.0
    runs = 1 + sum(a != b for a, b in pairwise(s))
    total = comb(n1 + n2, n1)

    def prob(r: int) -> float:
        k = r // 2
        if r % 2 == 0:
            return 2 * comb(n1 - 1, k - 1) * comb(n2 - 1, k - 1) / total
        return (
            comb(n1 - 1, k - 1) * comb(n2 - 1, k) + comb(n1 - 1, k) * comb(n2 - 1, k - 1)
        ) / total

    return float(sum(prob(r) for r in range(2, runs + 1)))


def misfit(workers, throughput, predicted, r2: float) -> str:
    """Why the curve does not describe the data ("" when it does), from the R² and the
    runs test on the mean residual per worker count."""
    n = np.asarray(workers, dtype=float)
    resid = np.asarray(throughput, dtype=float) - np.asarray(predicted, dtype=float)
    if np.isfinite(r2) and r2 < R2_MIN:
        return f"R² = {r2:.2f} < {R2_MIN}"
    levels = np.unique(n)
    means = np.array([resid[n == v].mean() for v in levels])
    top = float(np.max(np.abs(throughput))) if len(n) else 0.0
    if top <= 0 or np.max(np.abs(means)) < MATERIAL * top:
        return ""
    p = runs_p(means)
    if p < ALPHA:
        return f"residuals in long runs above and below the curve (runs test p = {p:.3f})"
    return ""
