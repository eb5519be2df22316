"""Universal Scalability Law (USL) and Amdahl's law: model and curve fitting.

The USL (Gunther) models throughput with ``N`` concurrent workers as::

    X(N) = lam * N / (1 + sigma * (N - 1) + kappa * N * (N - 1))

- ``lam`` is the ideal throughput of a single worker (jobs/s at N = 1, no overheads).
- ``sigma`` is *contention*: the serialised fraction of the work that workers must queue for
  (the GIL, a lock, a single database connection). It alone gives Amdahl's law: throughput
  flattens towards the asymptote ``lam / sigma`` but never drops.
- ``kappa`` is *coherency* (crosstalk): a cost that grows with the number of worker pairs,
  ``N * (N - 1)``, e.g. cache-line bouncing or workers synchronising shared state. Any
  ``kappa > 0`` makes throughput *retrograde*: it peaks and then falls as N grows.

The peak is at ``N* = sqrt((1 - sigma) / kappa)`` workers; beyond it adding workers hurts.
Amdahl's law is the special case ``kappa = 0`` (no peak, ``N* = inf``).

Example:
    >>> from qlab import usl
    >>> n = [1, 2, 4, 8, 16, 32]
    >>> res = usl.fit(n, usl.usl(n, 1000.0, 0.05, 0.001))
    >>> round(res.peak_workers, 1)
    30.8
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from numpy.typing import ArrayLike

__all__ = ["FewLevelsWarning", "USLFit", "fit", "fit_frame", "usl"]

_MODELS = ("usl", "amdahl")
_MIN_LEVELS = 6
_ZERO = 1e-12  # fitted sigma/kappa below this are reported as exactly 0


class FewLevelsWarning(UserWarning):
    """Fewer than 6 distinct worker levels: the fitted parameters are poorly constrained."""


def usl(n: ArrayLike, lam: float, sigma: float, kappa: float) -> np.ndarray | float:
    """Evaluate the USL throughput ``lam*N / (1 + sigma*(N-1) + kappa*N*(N-1))``.

    Args:
        n: Number of workers (scalar or array-like). lam: Single-worker throughput.
        sigma: Contention coefficient. kappa: Coherency coefficient (0 gives Amdahl's law).

    Returns:
        A float for scalar ``n``, else a numpy array of the same shape.

    Example:
        >>> usl(2, 100.0, 0.0, 0.0)
        200.0
    """
    arr = np.asarray(n, dtype=float)
    out = lam * arr / (1.0 + sigma * (arr - 1.0) + kappa * arr * (arr - 1.0))
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True, repr=False)
class USLFit:
    """Result of :func:`fit`: parameters, standard errors (nan if not estimable), R²."""

    model: str
    lam: float
    sigma: float
    kappa: float
    lam_se: float
    sigma_se: float
    kappa_se: float
    r2: float
    n_points: int
    n_levels: int

    @property
    def peak_workers(self) -> float:
        """Worker count of maximum throughput, ``sqrt((1 - sigma) / kappa)``, at least 1
        (with sigma near 1 more workers never help); inf if kappa == 0."""
        if self.kappa <= 0:
            return math.inf
        return max(1.0, math.sqrt((1.0 - self.sigma) / self.kappa))

    @property
    def peak_throughput(self) -> float:
        """Throughput at the peak; the asymptote ``lam / sigma`` if kappa == 0 (inf if both 0)."""
        if self.kappa > 0:
            return float(usl(self.peak_workers, self.lam, self.sigma, self.kappa))
        return self.lam / self.sigma if self.sigma > 0 else math.inf

    def predict(self, n: ArrayLike) -> np.ndarray:
        """Predicted throughput at ``n`` workers (always a numpy array)."""
        return np.asarray(usl(n, self.lam, self.sigma, self.kappa), dtype=float)

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (fields plus peak_workers / peak_throughput) for DataFrames/JSON."""
        return {
            **asdict(self),
            "peak_workers": self.peak_workers,
            "peak_throughput": self.peak_throughput,
        }

    def __repr__(self) -> str:
        peak = self.peak_workers
        peak_s = "peak=∞" if math.isinf(peak) else f"peak≈{peak:.1f} workers"
        tag = "" if self.model == "usl" else f"model={self.model}, "
        return (
            f"USLFit({tag}lam={self.lam:.4g} jobs/s, sigma={self.sigma:.3g}±{self.sigma_se:.1g}, "
            f"kappa={self.kappa:.3g}±{self.kappa_se:.1g}, {peak_s}, R²={self.r2:.3f})"
        )


def _as_1d(values: ArrayLike, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def fit(workers: ArrayLike, throughput: ArrayLike, *, model: str = "usl") -> USLFit:
    """Fit the USL (or Amdahl's law) to measured throughput by bounded least squares.

    Every point is fitted, so repeated measurements at one worker level are fine.

    Args:
        workers: Worker counts (list, numpy array or pandas Series), each >= 1.
        throughput: Measured throughput at each worker count, finite and >= 0.
        model: ``"usl"`` (fit lam, sigma, kappa) or ``"amdahl"`` (kappa fixed at 0).

    Returns:
        A :class:`USLFit` with parameters, standard errors and R².

    Raises:
        ValueError: Unknown model, mismatched lengths, workers < 1, negative/NaN throughput,
            or fewer than 3 points.

    Warns:
        FewLevelsWarning: Fewer than 6 distinct worker levels.

    Example:
        >>> res = fit([1, 2, 4, 8, 16, 32], [100, 190, 340, 540, 720, 760])
        >>> 0 < res.sigma < 1
        True
    """
    if model not in _MODELS:
        raise ValueError(f"model must be 'usl' or 'amdahl', got {model!r}")
    n = _as_1d(workers, "workers")
    x = _as_1d(throughput, "throughput")
    if n.shape != x.shape:
        raise ValueError(f"workers and throughput must have the same length ({n.size}, {x.size})")
    if not np.all(np.isfinite(n) & (n >= 1)):
        raise ValueError("workers must be >= 1 (and finite)")
    if not np.all(np.isfinite(x) & (x >= 0)):
        raise ValueError("throughput must be finite and >= 0 (no NaN or negative values)")
    if n.size < 3:
        raise ValueError(f"workers and throughput need at least 3 points, got {n.size}")
    n_levels = int(np.unique(n).size)
    if n_levels < _MIN_LEVELS:
        msg = f"only {n_levels} distinct worker levels (< {_MIN_LEVELS}); fit is poorly constrained"
        warnings.warn(msg, FewLevelsWarning, stacklevel=2)

    from scipy.optimize import OptimizeWarning, curve_fit  # lazy: keep import qlab.usl light

    def func(nn: np.ndarray, *p: float) -> np.ndarray:  # p = (lam, sigma[, kappa])
        return usl(nn, p[0], p[1], p[2] if len(p) == 3 else 0.0)

    k = 3 if model == "usl" else 2  # number of free parameters
    lam0 = max(float(x[n == n.min()].mean() / n.min()), 1e-9)
    p0, lo, hi = [lam0, 0.01, 1e-4][:k], [1e-12, 0.0, 0.0][:k], [np.inf, 1.0, 1.0][:k]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)  # e.g. covariance not estimable
        popt, pcov = curve_fit(
            func, n, x, p0=p0, bounds=(lo, hi), method="trf", x_scale="jac", max_nfev=10_000
        )
    popt[1:][popt[1:] < _ZERO] = 0.0  # trf stays strictly inside bounds: snap ~0 to exactly 0
    se = np.sqrt(np.abs(np.diag(np.atleast_2d(pcov))))
    se = np.where(np.isfinite(se), se, np.nan)
    ss_res = float(np.sum((x - func(n, *popt)) ** 2))
    ss_tot = float(np.sum((x - x.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan
    params = [float(v) for v in popt] + [0.0] * (3 - k)
    errors = [float(v) for v in se] + [0.0] * (3 - k)
    return USLFit(model, *params, *errors, r2, int(n.size), n_levels)


def fit_frame(
    df: pd.DataFrame,
    *,
    by: str | list[str] = "backend",
    x: str = "workers",
    y: str = "throughput",
    model: str = "usl",
) -> pd.DataFrame:
    """Fit one model per group of a long-format DataFrame (one row per run).

    Args:
        df: Measurements. by: Grouping column(s), e.g. the backend name.
        x: Column of worker counts. y: Column of throughput. model: ``"usl"`` or ``"amdahl"``.

    Returns:
        One row per group with the :meth:`USLFit.to_dict` fields, indexed by the group key.

    Raises:
        ValueError: A named column is missing, or :func:`fit` rejects a group's data.

    Example:
        >>> fit_frame(runs, by="backend")[["lam", "sigma", "kappa"]]  # doctest: +SKIP
    """
    import pandas as pd

    keys = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [*keys, x, y] if c not in df.columns]
    if missing:
        raise ValueError(f"df is missing column(s) {missing} (by={by!r}, x={x!r}, y={y!r})")
    groups = df.groupby(by, sort=True)
    names = [key for key, _ in groups]
    rows = [fit(g[x], g[y], model=model).to_dict() for _, g in groups]
    out = pd.DataFrame(rows, index=pd.Index(names))  # tuples of keys become a MultiIndex
    out.index.names = keys
    return out
