"""The USL formula and a fitted model with its uncertainty: intervals, significance, bands.

:func:`qlab.usl.fit` makes a :class:`USLFit`; this module holds what one knows after the
fit. Parameter intervals are ``estimate ± t(dof) * SE`` (Wald, as R's ``nls``), not clipped
to the parameters' bounds: a lower bound below 0 says "consistent with 0". sigma (or
kappa) is *distinguishable from zero* when its interval lies above 0. The peak's interval
comes from kappa's: ``sqrt((1 - sigma) / kappa)`` at either end, infinite when kappa may
be 0. Bands (:meth:`USLFit.band`) use the delta method: the confidence band is where the
curve itself may lie; the prediction band adds the residual noise, where a new
measurement may fall.

Example:
    >>> f = USLFit("usl", 1000.0, 0.04, 0.0012, 10.0, 0.01, 0.0001, 0.99, 10, 10, dof=7)
    >>> f.sigma_significant, round(f.kappa_ci[0], 5)
    (True, 0.00096)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["BoundWarning", "FewLevelsWarning", "MisfitWarning", "USLFit", "jacobian", "usl"]


_EDGE = 1e-6  # within this of 0 or 1, a coefficient sits on its bound (the solver's tolerance)


class FewLevelsWarning(UserWarning):
    """Fewer than 6 distinct worker levels: the fitted parameters are poorly constrained."""


class BoundWarning(UserWarning):
    """A parameter sits on its bound because the data do not have a USL shape."""


class MisfitWarning(UserWarning):
    """The USL does not describe the data: low R², or residuals with a pattern
    (:mod:`qlab.uslcheck`)."""


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


def jacobian(n: ArrayLike, lam: float, sigma: float, kappa: float) -> np.ndarray:
    """d X(N) / d (lam, sigma, kappa), one row per N (R usl's ``gradient.usl``).

    Example:
        >>> jacobian([1], 10.0, 0.1, 0.01).tolist()
        [[1.0, -0.0, -0.0]]
    """
    nn = np.atleast_1d(np.asarray(n, dtype=float))
    den = 1.0 + sigma * (nn - 1.0) + kappa * nn * (nn - 1.0)
    d_den = -lam * nn / den**2
    return np.column_stack([nn / den, d_den * (nn - 1.0), d_den * nn * (nn - 1.0)])


@dataclass(frozen=True, repr=False)
class USLFit:
    """Result of :func:`qlab.usl.fit`: parameters, standard errors (nan if not
    estimable), R², and what is needed for intervals: residual degrees of freedom,
    ``confidence``, the ``noise`` model, the residual standard error and the 3x3
    covariance of (lam, sigma, kappa)."""

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
    dof: int = 0
    confidence: float = 0.95
    noise: str = "absolute"
    residual_se: float = math.nan
    cov: tuple = field(default=(), compare=False)
    misfit: str = ""

    @property
    def fits(self) -> bool:
        """Whether the USL describes the data (see :mod:`qlab.uslcheck`); ``misfit``
        says why not."""
        return not self.misfit

    @property
    def sigma_on_bound(self) -> bool:
        """Whether sigma sits on a bound of the fit (0 or 1): its interval says little."""
        return self.sigma <= _EDGE or self.sigma >= 1.0 - _EDGE

    @property
    def kappa_on_bound(self) -> bool:
        """Whether kappa sits on a bound (0 or 1) of a USL fit (Amdahl's fixes it at 0)."""
        return self.model == "usl" and (self.kappa <= _EDGE or self.kappa >= 1.0 - _EDGE)

    @property
    def peak_workers(self) -> float:
        """Worker count of maximum throughput, ``sqrt((1 - sigma) / kappa)``, at least 1
        (with sigma near 1 more workers never help); inf if kappa == 0."""
        return _peak(self.sigma, self.kappa)

    @property
    def peak_throughput(self) -> float:
        """Throughput at the peak; the asymptote ``lam / sigma`` if kappa == 0 (inf if both 0)."""
        if self.kappa > 0:
            return float(usl(self.peak_workers, self.lam, self.sigma, self.kappa))
        return self.lam / self.sigma if self.sigma > 0 else math.inf

    def _t(self) -> float:
        from scipy import stats

        return float(stats.t.ppf((1 + self.confidence) / 2, self.dof)) if self.dof > 0 else math.nan

    def _ci(self, name: str) -> tuple[float, float]:
        est, se = getattr(self, name), getattr(self, f"{name}_se")
        if self.model == "amdahl" and name == "kappa":
            return (0.0, 0.0)
        half = self._t() * se
        return (est - half, est + half) if math.isfinite(half) else (math.nan, math.nan)

    @property
    def lam_ci(self) -> tuple[float, float]:
        """Interval of lam at ``confidence``."""
        return self._ci("lam")

    @property
    def sigma_ci(self) -> tuple[float, float]:
        """Interval of sigma at ``confidence``."""
        return self._ci("sigma")

    @property
    def kappa_ci(self) -> tuple[float, float]:
        """Interval of kappa at ``confidence`` (0, 0 for Amdahl's law)."""
        return self._ci("kappa")

    @property
    def sigma_significant(self) -> bool:
        """Whether sigma is distinguishable from zero: its interval lies above 0."""
        return bool(self.sigma_ci[0] > 0)

    @property
    def kappa_significant(self) -> bool:
        """Whether kappa is distinguishable from zero: its interval lies above 0."""
        return bool(self.kappa_ci[0] > 0)

    @property
    def peak_workers_ci(self) -> tuple[float, float]:
        """Interval of the peak from kappa's: high is inf unless kappa is significant."""
        low, high = self.kappa_ci
        if math.isnan(low):
            return (math.nan, math.nan)
        return (_peak(self.sigma, high), _peak(self.sigma, low))

    def predict(self, n: ArrayLike) -> np.ndarray:
        """Predicted throughput at ``n`` workers (always a numpy array)."""
        return np.asarray(usl(n, self.lam, self.sigma, self.kappa), dtype=float)

    def band(self, n: ArrayLike, kind: str = "confidence") -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper edges of the ``confidence`` band of the curve (where the true
        curve lies) or the ``prediction`` band (where a new measurement falls), at
        ``n`` workers, by the delta method. NaN when the fit has no degrees of freedom.

        Example:
            >>> from qlab import usl as u
            >>> f = u.fit([1, 2, 4, 6, 8, 12], [10.0, 19.0, 35.0, 48.0, 60.0, 77.0])
            >>> lo, hi = f.band([3], "prediction")
            >>> bool(lo[0] < f.predict(3) < hi[0])
            True
        """
        if kind not in ("confidence", "prediction"):
            raise ValueError(f"kind must be 'confidence' or 'prediction', got {kind!r}")
        mid = np.atleast_1d(self.predict(n))
        if not self.cov or self.dof <= 0:
            return np.full_like(mid, np.nan), np.full_like(mid, np.nan)
        jac = jacobian(n, self.lam, self.sigma, self.kappa)
        var = np.einsum("ij,jk,ik->i", jac, np.asarray(self.cov), jac)
        if kind == "prediction":
            noise = self.residual_se * (mid if self.noise == "relative" else 1.0)
            var = var + noise**2
        half = self._t() * np.sqrt(np.maximum(var, 0.0))
        return mid - half, mid + half

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values for DataFrames/JSON: the fields (but the covariance),
        ``*_ci_low`` / ``*_ci_high`` for lam, sigma, kappa and peak_workers,
        ``sigma_significant`` / ``kappa_significant``, ``sigma_on_bound`` /
        ``kappa_on_bound``, ``fits`` and ``misfit`` (why not, "" when it fits)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "cov"}
        out |= {"peak_workers": self.peak_workers, "peak_throughput": self.peak_throughput}
        for name in ("lam", "sigma", "kappa", "peak_workers"):
            low, high = getattr(self, f"{name}_ci")
            out[f"{name}_ci_low"], out[f"{name}_ci_high"] = float(low), float(high)
        out["sigma_significant"] = self.sigma_significant
        out["kappa_significant"] = self.kappa_significant
        out["sigma_on_bound"] = self.sigma_on_bound
        out["kappa_on_bound"] = self.kappa_on_bound
        out["fits"] = self.fits
        return out

    def __repr__(self) -> str:
        peak = self.peak_workers
        peak_s = "peak=∞" if math.isinf(peak) else f"peak≈{peak:.1f} workers"
        tag = "" if self.model == "usl" else f"model={self.model}, "
        sigma = f"{self.sigma:.3g} (on its bound)" if self.sigma_on_bound else (
            f"{self.sigma:.3g}±{self.sigma_se:.1g}")  # fmt: skip
        kappa = f"{self.kappa:.3g} (on its bound)" if self.kappa_on_bound else (
            f"{self.kappa:.3g}±{self.kappa_se:.1g}")  # fmt: skip
        bad = f", does not fit: {self.misfit}" if self.misfit else ""
        return (
            f"USLFit({tag}lam={self.lam:.4g} jobs/s, sigma={sigma}, kappa={kappa}, {peak_s}, "
            f"R²={self.r2:.3f}{bad})"
        )


def _peak(sigma: float, kappa: float) -> float:
    if not kappa > 0:
        return math.inf
    return max(1.0, math.sqrt(max(1.0 - sigma, 0.0) / kappa))
