"""Confidence intervals, precision and outliers: the statistics behind sweeps and runs.

Every interval here says how it was made (``Interval.method``):

- **The mean of a few repeats** (throughput of a sweep point): Student's t interval,
  ``mean ± t(n-1) * s / sqrt(n)``. With the 2 to 10 repeats a sweep affords, a bootstrap
  is too narrow (a percentile bootstrap of 3 values covers the mean about 70 % of the
  time); t is exact for normal noise and close for mild skew.
- **Percentiles of many latencies**: ``scipy.stats.bootstrap`` (BCa, 999 resamples,
  seeded; the percentile method undercovers a p95, 92.7 % instead of 95 % at 300 values).
  The latencies of several runs are pooled. Above ``BOOTSTRAP_MAX`` values BCa's
  jackknife costs seconds, and the distribution-free order-statistic interval (coverage
  at least the level for any continuous distribution, one sort) is used instead.
- **The ratio of two means** (:func:`ratio_ci`): Welch's t interval on the log scale
  (delta method), so that the interval is positive and symmetric in the two orders.

Example:
    >>> import numpy as np
    >>> ci = mean_ci([100.0, 104.0, 98.0, 102.0])
    >>> round(ci.low, 1), round(ci.high, 1), ci.method
    (96.9, 105.1, 't')
    >>> lat = np.random.default_rng(0).exponential(size=2000)
    >>> [c.method for c in quantile_ci(lat, [0.5, 0.95])]
    ['bootstrap', 'bootstrap']
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = [
    "BOOTSTRAP_MAX",
    "MAD_THRESHOLD",
    "Interval",
    "check_confidence",
    "is_precise",
    "latency_cis",
    "mean_ci",
    "outliers",
    "quantile_ci",
    "ratio_ci",
]

#: Largest sample that :func:`quantile_ci` bootstraps; above it, order statistics.
BOOTSTRAP_MAX = 2_000
#: A repeat is an outlier when its modified z-score ``0.6745 * |x - median| / MAD``
#: exceeds this (Iglewicz and Hoaglin's rule).
MAD_THRESHOLD = 3.5
_RESAMPLES = 999


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval: ``low``, ``high``, the ``confidence`` level and
    the ``method`` that made it. Bounds are NaN when the data cannot give an interval.

    Example:
        >>> Interval(1.0, 3.0, 0.95, "t").half_width
        1.0
    """

    low: float
    high: float
    confidence: float
    method: str

    @property
    def half_width(self) -> float:
        """Half the width of the interval."""
        return (self.high - self.low) / 2

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies inside the interval (False for a NaN interval)."""
        return bool(self.low <= value <= self.high)


def check_confidence(confidence: float, name: str = "confidence") -> float:
    """``confidence`` as a float in (0, 1), or a ValueError naming the parameter.

    Example:
        >>> check_confidence(0.9)
        0.9
    """
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise ValueError(f"{name} must be a number in (0, 1), got {confidence!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"{name} must be in (0, 1), got {confidence!r}")
    return float(confidence)


def mean_ci(values: ArrayLike, confidence: float = 0.95) -> Interval:
    """Student's t interval for the mean of ``values`` (NaN with fewer than 2 values).

    Example:
        >>> mean_ci([5.0]).low
        nan
    """
    from scipy import stats

    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return Interval(math.nan, math.nan, confidence, "t")
    mean, sem = float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))
    half = float(stats.t.ppf((1 + confidence) / 2, x.size - 1)) * sem
    return Interval(mean - half, mean + half, confidence, "t")


def is_precise(values: ArrayLike, precision: float, confidence: float = 0.95) -> bool:
    """Whether the t interval of the mean is within ``precision`` of it: half-width
    <= ``precision * |mean|``. Never with fewer than 2 values.

    Example:
        >>> is_precise([100, 101, 99], 0.05), is_precise([100, 150, 60], 0.05)
        (True, False)
    """
    ci = mean_ci(values, confidence)
    mean = float(np.mean(np.asarray(values, dtype=float)))
    return bool(np.isfinite(ci.half_width) and ci.half_width <= precision * abs(mean))


def quantile_ci(
    values: ArrayLike | Sequence[ArrayLike],
    q: float | Sequence[float],
    confidence: float = 0.95,
    *,
    seed: int | None = 0,
    method: str = "auto",
    resamples: int = 999,
) -> list[Interval]:
    """Confidence intervals for the quantiles ``q`` of ``values``.

    Args:
        values: one array of values, or a list of arrays (one per run), pooled. NaNs
            are dropped.
        q: quantile(s) in [0, 1], e.g. ``[0.5, 0.95, 0.99]``.
        confidence: the level of every interval.
        seed: seeds the bootstrap's generator (same data and seed, same interval).
        method: ``"bootstrap"``, ``"order"`` (order statistics) or ``"auto"``: the
            bootstrap up to ``BOOTSTRAP_MAX`` values, order statistics above.
        resamples: bootstrap resamples.

    Returns:
        One :class:`Interval` per quantile; NaN bounds with fewer than 2 values.

    Raises:
        ValueError: ``method`` unknown or ``q`` outside [0, 1].

    Example:
        >>> ci = quantile_ci([[1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0]], 0.5)[0]
        >>> ci.method, 1.0 <= ci.low <= ci.high <= 5.0
        ('bootstrap', True)
    """
    qs = np.atleast_1d(np.asarray(q, dtype=float))
    if np.any((qs < 0) | (qs > 1)):
        raise ValueError(f"q must be within [0, 1], got {q!r}")
    if method not in ("auto", "bootstrap", "order"):
        raise ValueError(f"method must be 'auto', 'bootstrap' or 'order', got {method!r}")
    x = np.concatenate(_groups(values) or [np.empty(0)])
    if x.size < 2:
        return [Interval(math.nan, math.nan, confidence, "none")] * qs.size
    if method == "order" or (method == "auto" and x.size > BOOTSTRAP_MAX):
        low, high = _order_ci(x, qs, confidence)
        return [
            Interval(float(a), float(b), confidence, "order")
            for a, b in zip(low, high, strict=True)
        ]
    low, high = _bootstrap_ci(x, qs, confidence, seed, resamples)
    return [
        Interval(float(a), float(b), confidence, "bootstrap")
        for a, b in zip(low, high, strict=True)
    ]


def latency_cis(
    latencies: ArrayLike | Sequence[ArrayLike],
    confidence: float = 0.95,
    method: str = "order",
    *,
    seed: int | None = 0,
) -> dict[str, float]:
    """Intervals of the p50, p95 and p99 of one run's job latencies (or of a list of
    runs' latencies, pooled, as a sweep point's), as the entries
    ``latency_p50_s_ci_low`` ... ``latency_p99_s_ci_high`` of ``run.summary()``. By
    default order statistics: exact, and one sort even for a million jobs; ``method``
    and ``seed`` as in :func:`quantile_ci`.

    Example:
        >>> cis = latency_cis(np.arange(1, 1001) / 1000)
        >>> cis["latency_p50_s_ci_low"] < 0.5 < cis["latency_p50_s_ci_high"]
        True
    """
    out = {}
    cis = quantile_ci(latencies, [0.5, 0.95, 0.99], confidence, method=method, seed=seed)
    for name, ci in zip(("p50", "p95", "p99"), cis, strict=True):
        out[f"latency_{name}_s_ci_low"], out[f"latency_{name}_s_ci_high"] = ci.low, ci.high
    return out


def _groups(values: ArrayLike | Sequence[ArrayLike]) -> list[np.ndarray]:
    is_list = isinstance(values, Sequence | tuple) and len(values) > 0
    nested = is_list and all(np.ndim(v) == 1 for v in values)  # type: ignore[union-attr]
    raw = list(values) if nested else [values]  # type: ignore[arg-type]
    groups = [np.asarray(g, dtype=float) for g in raw]
    groups = [g[np.isfinite(g)] for g in groups]
    return [g for g in groups if g.size > 0]


def _bootstrap_ci(
    x: np.ndarray, qs: np.ndarray, confidence: float, seed: int | None, resamples: int
) -> tuple[np.ndarray, np.ndarray]:
    from scipy import stats

    def statistic(sample: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.quantile(sample, qs, axis=axis)  # first axis: one row per quantile

    for method in ("BCa", "percentile"):  # BCa fails when the jackknife has no spread
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap(
                (x,), statistic, n_resamples=resamples, confidence_level=confidence,
                method=method, vectorized=True, rng=np.random.default_rng(seed),
                batch=max(1, int(2e7 // x.size)),
            )  # fmt: skip
        low, high = (np.atleast_1d(v) for v in res.confidence_interval)
        if np.all(np.isfinite(low) & np.isfinite(high)):
            break
    return low, high


def _order_ci(x: np.ndarray, qs: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Distribution-free interval [x_(l), x_(u)]: l, u from Binomial(n, q) quantiles."""
    n, alpha = x.size, 1 - confidence
    lo = np.array([_binom_ppf(alpha / 2, n, q) for q in qs])
    hi = np.array([_binom_ppf(1 - alpha / 2, n, q) + 1 for q in qs])
    lo, hi = np.clip(lo, 1, n), np.clip(hi, 1, n)  # 1-based ranks
    x = np.partition(x, np.unique(np.concatenate([lo, hi])) - 1)  # those ranks in place
    return x[lo - 1], x[hi - 1]


def _binom_ppf(p: float, n: int, q: float) -> int:
    """The smallest k with P(Binomial(n, q) <= k) >= p, as ``scipy.stats.binom.ppf``
    gives it, without importing scipy (``run.summary()`` calls this: a first summary
    must not pay seconds for scipy). The mass beyond 12 standard deviations of the mean
    is below 1e-30 and left out.

    Example:
        >>> _binom_ppf(0.025, 100, 0.5), _binom_ppf(0.975, 100, 0.5)
        (40, 60)
    """
    if q <= 0:
        return 0
    if q >= 1:
        return n
    sd = math.sqrt(n * q * (1 - q))
    lo, hi = max(0, int(n * q - 12 * sd) - 1), min(n, int(n * q + 12 * sd) + 2)
    ks = np.arange(lo, hi + 1)
    lg = math.lgamma
    # log C(n, k) from its first term and the ratios C(n, k) / C(n, k - 1) = (n-k+1) / k
    steps = np.log((n - ks[1:] + 1) / ks[1:])
    logpmf = np.concatenate(([lg(n + 1) - lg(lo + 1) - lg(n - lo + 1)], steps)).cumsum()
    logpmf += ks * math.log(q) + (n - ks) * math.log1p(-q)
    cdf = np.cumsum(np.exp(logpmf))
    i = int(np.searchsorted(cdf, p * (1 - 1e-12)))  # 1e-12: rounding in the sum
    return int(ks[min(i, len(ks) - 1)])


def outliers(values: ArrayLike, threshold: float = MAD_THRESHOLD) -> np.ndarray:
    """Which values are outliers by the modified z-score ``0.6745 |x - median| / MAD``
    (Iglewicz and Hoaglin). With MAD = 0 the mean absolute deviation (x 1.2533) stands
    in; with fewer than 5 values nothing is an outlier (the MAD of 3 or 4 values is one
    gap between them, and ordinary noise would be flagged).

    Example:
        >>> outliers([100, 101, 99, 100, 60]).tolist()
        [False, False, False, False, True]
    """
    x = np.asarray(values, dtype=float)
    if x.size < 5:
        return np.zeros(x.shape, dtype=bool)
    dev = np.abs(x - np.median(x))
    mad = float(np.median(dev))
    scale = mad / 0.6745 if mad > 0 else 1.2533 * float(np.mean(dev))
    if scale <= 0:
        return np.zeros(x.shape, dtype=bool)
    return dev / scale > threshold


def ratio_ci(a: ArrayLike, b: ArrayLike, confidence: float = 0.95) -> tuple[float, Interval]:
    """The ratio of the means ``mean(a) / mean(b)`` and its interval: Welch's t on the
    log scale (delta method). NaN bounds unless both sides have 2 or more values.

    Example:
        >>> ratio, ci = ratio_ci([110, 112, 108], [100, 101, 99])
        >>> round(ratio, 2), ci.low > 1
        (1.1, True)
    """
    from scipy import stats

    x, y = (np.asarray(v, dtype=float) for v in (a, b))
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    mx, my = float(x.mean()) if x.size else math.nan, float(y.mean()) if y.size else math.nan
    ratio = mx / my if my > 0 else math.nan
    if x.size < 2 or y.size < 2 or not (mx > 0 and my > 0):
        return ratio, Interval(math.nan, math.nan, confidence, "log-welch")
    vx, vy = x.var(ddof=1) / (x.size * mx**2), y.var(ddof=1) / (y.size * my**2)
    var = vx + vy
    if var == 0:
        return ratio, Interval(ratio, ratio, confidence, "log-welch")
    dof = var**2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))
    half = float(stats.t.ppf((1 + confidence) / 2, dof)) * math.sqrt(var)
    return ratio, Interval(ratio * math.exp(-half), ratio * math.exp(half), confidence, "log-welch")
