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

How the fit works (:func:`fit`): bounded least squares (0 <= sigma, kappa <= 1) on the
throughput divided by its maximum, so that any unit fits alike; standard errors as R's
``usl`` package and ``nls`` compute them, ``sqrt(diag(s² (JᵀJ)⁻¹))`` with the Jacobian J at
the estimate and ``s² = SSR / (n - p)``; intervals ``estimate ± t(n - p) * SE`` (R's
``confint.USL`` uses ``qt(level, n - 1)`` instead, a one-sided quantile; the standard
errors agree). The uncertainty lives in :mod:`qlab.uslfit`.

Example:
    >>> from qlab import usl
    >>> n = [1, 2, 4, 8, 16, 32]
    >>> res = usl.fit(n, usl.usl(n, 1000.0, 0.05, 0.001))
    >>> round(res.peak_workers, 1)
    30.8
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from qlab.core.warn import warn
from qlab.lab.usl.check import misfit
from qlab.lab.usl.fitting import (
    BoundWarning,
    FewLevelsWarning,
    MisfitWarning,
    USLFit,
    jacobian,
    usl,
)

if TYPE_CHECKING:
    import pandas as pd
    from numpy.typing import ArrayLike

__all__ = ["BoundWarning", "FewLevelsWarning", "MisfitWarning", "USLFit", "fit", "fit_frame", "usl"]

_MODELS = ("usl", "amdahl")
_NOISES = ("absolute", "relative")
_MIN_LEVELS = 6
_NEGLIGIBLE = 1e-4  # a term below this share of the denominator at the largest N is 0


def _as_1d(values: ArrayLike, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _checked(
    workers: ArrayLike, throughput: ArrayLike, model: str, noise: str, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    from qlab.core.stats import check_confidence

    if model not in _MODELS:
        raise ValueError(f"model must be 'usl' or 'amdahl', got {model!r}")
    if noise not in _NOISES:
        raise ValueError(f"noise must be 'absolute' or 'relative', got {noise!r}")
    check_confidence(confidence)
    n, x = _as_1d(workers, "workers"), _as_1d(throughput, "throughput")
    if n.shape != x.shape:
        raise ValueError(f"workers and throughput must have the same length ({n.size}, {x.size})")
    if not np.all(np.isfinite(n) & (n >= 1)):
        raise ValueError("workers must be >= 1 (and finite)")
    if not np.all(np.isfinite(x) & (x >= 0)):
        raise ValueError("throughput must be finite and >= 0 (no NaN or negative values)")
    levels = np.unique(n)
    if levels.size < 3:
        raise ValueError(
            f"workers must hold at least 3 distinct worker counts to fit, got {levels.tolist()}"
        )
    if not np.any(x > 0):
        raise ValueError("throughput is 0 at every worker count: there is nothing to fit")
    if noise == "relative" and np.any(x <= 0):
        raise ValueError("throughput must be > 0 everywhere for noise='relative'")
    return n, x


def fit(
    workers: ArrayLike,
    throughput: ArrayLike,
    *,
    model: str = "usl",
    noise: str = "absolute",
    confidence: float = 0.95,
) -> USLFit:
    """Fit the USL (or Amdahl's law) to measured throughput by bounded least squares.

    Every point is fitted, so repeated measurements at one worker level are fine.

    Args:
        workers: Worker counts (list, numpy array or pandas Series), each >= 1, at least
            3 distinct ones.
        throughput: Measured throughput at each worker count, finite, >= 0, not all 0.
        model: ``"usl"`` (fit lam, sigma, kappa) or ``"amdahl"`` (kappa fixed at 0).
        noise: ``"absolute"`` (ordinary least squares: the same noise at every point) or
            ``"relative"`` (noise proportional to throughput: each point weighted by
            ``1 / throughput²``, so fast points do not drown slow ones).
        confidence: the level of the intervals (``fit.sigma_ci`` ...).

    Returns:
        A :class:`USLFit` with parameters, standard errors, intervals, significance and R².
        A fitted kappa too small to matter within the measured range (its term below
        1e-4 of the denominator at the most workers) is refitted as exactly 0: no peak.

    Raises:
        ValueError: Unknown model or noise, mismatched lengths, workers < 1, fewer than
            3 distinct worker counts, negative/NaN throughput, or throughput all 0.

    Warns (each at the caller's line, outside qlab):
        MisfitWarning: the USL does not describe the data: R² below 0.8, or residuals
            in long runs above and below the curve (the Wald–Wolfowitz runs test, see
            :mod:`qlab.lab.usl.check`); ``fit.misfit`` says which.
        FewLevelsWarning: Fewer than 6 distinct worker levels.
        BoundWarning: sigma sits on its bound 0 while the data scale significantly
            better than linearly (super-linear): no USL shape fits them.

    Example:
        >>> res = fit([1, 2, 4, 8, 16, 32], [100, 190, 340, 540, 720, 760])
        >>> 0 < res.sigma < 1, res.sigma_significant
        (True, True)
    """
    n, x = _checked(workers, throughput, model, noise, confidence)
    n_levels = int(np.unique(n).size)
    if n_levels < _MIN_LEVELS:
        msg = f"only {n_levels} distinct worker levels (< {_MIN_LEVELS}); fit is poorly constrained"
        warn(msg, FewLevelsWarning)
    scale = float(x.max())  # fit in units of the largest throughput: 1e-9 jobs/s fits too
    y = x / scale
    w = 1.0 / y**2 if noise == "relative" else np.ones_like(y)
    k = 3 if model == "usl" else 2
    p = _least_squares(n, y, w, k)
    top = float(n.max())
    if k == 3 and p[2] * top * (top - 1) < _NEGLIGIBLE * (1 + p[1] * (top - 1)):
        p = np.append(_least_squares(n, y, w, 2), 0.0)  # kappa is noise: refit without it
    if p[1] * (top - 1) < _NEGLIGIBLE:
        p[1] = 0.0
        if _super_linear(n, y, w, confidence):
            warn(
                "sigma sits on its lower bound 0 and the data scale better than linearly "
                "(more than N times one worker's throughput): no USL curve fits them; "
                "check the measurements (warm-up, caching)",
                BoundWarning,
            )
    params = np.append(p, 0.0) if k == 2 else p
    resid = y - usl(n, *params)
    dof = n.size - k
    s2 = float(np.sum(w * resid**2) / dof) if dof > 0 else np.nan
    jac = jacobian(n, *params)[:, :k]
    try:
        cov = s2 * np.linalg.inv(jac.T @ (w[:, None] * jac))
    except np.linalg.LinAlgError:
        cov = np.full((k, k), np.nan)
    full = np.zeros((3, 3))
    full[:k, :k] = cov
    units = np.array([scale, 1.0, 1.0])
    full *= np.outer(units, units)
    se = np.sqrt(np.abs(np.diag(full)))
    r2, why = _quality(n, x, np.asarray(usl(n, scale * params[0], params[1], params[2])), model)
    se_lam, se_sigma, se_kappa = (float(v) for v in se)
    return USLFit(
        model,
        scale * float(params[0]),
        float(params[1]),
        float(params[2]),
        se_lam,
        se_sigma,
        se_kappa,
        r2=r2,
        n_points=int(n.size),
        n_levels=n_levels,
        dof=int(dof),
        confidence=float(confidence),
        noise=noise,
        residual_se=float(np.sqrt(s2)) * (scale if noise == "absolute" else 1.0),
        cov=tuple(tuple(float(v) for v in row) for row in full),
        misfit=why,
    )


def _quality(n: np.ndarray, x: np.ndarray, predicted: np.ndarray, model: str) -> tuple:
    """R² of the fitted curve, and why it does not describe the data ("" when it does,
    see :mod:`qlab.lab.usl.check`), said by a MisfitWarning at the user's line."""
    ss_tot = float(np.sum((x - x.mean()) ** 2))
    r2 = 1.0 - float(np.sum((x - predicted) ** 2)) / ss_tot if ss_tot > 0 else float("nan")
    why = misfit(n, x, predicted, r2)
    if why:
        warn(f"the {model.upper()} does not describe these data: {why}; read its parameters "
             "as a summary, not a model (see qlab.lab.usl.check)", MisfitWarning)  # fmt: skip
    return r2, why


def _least_squares(n: np.ndarray, y: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    """Bounded least squares of y (about 1 at its largest) for k = 2 or 3 parameters."""
    from scipy.optimize import (  # lazy: keep import qlab.lab.usl.model light
        OptimizeWarning,
        curve_fit,
    )

    def func(nn: np.ndarray, *p: float) -> np.ndarray:
        return np.asarray(usl(nn, p[0], p[1], p[2] if len(p) == 3 else 0.0))

    lam0 = float(y[n == n.min()].mean() / n.min())
    p0, lo, hi = [max(lam0, 1e-6), 0.01, 1e-4][:k], [1e-12, 0.0, 0.0][:k], [np.inf, 1.0, 1.0][:k]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)  # e.g. covariance not estimable
        popt, _ = curve_fit(
            func, n, y, p0=p0, sigma=1 / np.sqrt(w), bounds=(lo, hi), method="trf",
            x_scale="jac", max_nfev=10_000, ftol=1e-12, xtol=1e-12, gtol=1e-12,
        )  # fmt: skip
    return np.asarray(popt, dtype=float)


def _super_linear(n: np.ndarray, y: np.ndarray, w: np.ndarray, confidence: float) -> bool:
    """Whether Amdahl's law with sigma free to go negative puts sigma significantly < 0."""
    from scipy import stats
    from scipy.optimize import curve_fit

    floor = -0.999 / (float(n.max()) - 1)  # keeps 1 + sigma (N - 1) > 0
    try:
        popt, pcov = curve_fit(
            lambda nn, lam, s: usl(nn, lam, s, 0.0), n, y, p0=[y.max() / n.max(), 0.0],
            sigma=1 / np.sqrt(w), bounds=([1e-12, floor], [np.inf, 1.0]), method="trf",
        )  # fmt: skip
    except (RuntimeError, ValueError):
        return False
    se = float(np.sqrt(abs(pcov[1, 1])))
    t = float(stats.t.ppf((1 + confidence) / 2, max(n.size - 2, 1)))
    return bool(np.isfinite(se) and popt[1] + t * se < 0)


def fit_frame(
    df: pd.DataFrame,
    *,
    by: str | list[str] = "backend",
    x: str = "workers",
    y: str = "throughput",
    model: str = "usl",
    noise: str = "absolute",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Fit one model per group of a long-format DataFrame (one row per run).

    Args:
        df: Measurements. by: Grouping column(s), e.g. the backend name.
        x: Column of worker counts. y: Column of throughput. model: ``"usl"`` or ``"amdahl"``.
        noise, confidence: as for :func:`fit`.

    Returns:
        One row per group with the :meth:`USLFit.to_dict` fields (estimates, standard
        errors, ``*_ci_low`` / ``*_ci_high``, ``sigma_significant``...), indexed by the key.

    Raises:
        ValueError: A named column is missing, or :func:`fit` rejects a group's data.

    Example:
        >>> fit_frame(runs, by="backend")[["lam", "sigma", "sigma_ci_low"]]  # doctest: +SKIP
    """
    import pandas as pd

    keys = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [*keys, x, y] if c not in df.columns]
    if missing:
        raise ValueError(f"df is missing column(s) {missing} (by={by!r}, x={x!r}, y={y!r})")
    groups = df.groupby(by, sort=True)
    names = [key for key, _ in groups]
    opts: dict[str, Any] = {"model": model, "noise": noise, "confidence": confidence}
    rows = [fit(g[x], g[y], **opts).to_dict() for _, g in groups]
    out = pd.DataFrame(rows, index=pd.Index(names))  # tuples of keys become a MultiIndex
    out.index.names = keys
    return out
