"""Uncertainty on sweep charts: confidence bands of measured points, the fitted USL
curve with its prediction band, and numbers written for people (1,234 jobs/s; 0.0001,
not 1e-04; a peak beyond the measured range said so).

Example:
    >>> count(12345.6), small(0.000104), peak_text(96.5, 16), peak_text(8.2, 16)
    ('12,346', '0.0001', 'beyond the measured range (max 16)', '≈8.2 workers')
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.patches import Patch

from qlab.core import fmt

__all__ = ["count", "draw_fit", "fit_rows", "peak_text", "small"]


def count(value: float) -> str:
    """A count or rate with thousands separators and no decimals: ``12,346``
    (:func:`qlab.fmt.count`; "n/a" when not finite)."""
    return "n/a" if not math.isfinite(value) else fmt.count(value)


def small(value: float, digits: int = 2) -> str:
    """A small coefficient in positional notation with ``digits`` significant digits
    (:func:`qlab.fmt.number`)."""
    return "n/a" if not math.isfinite(value) else fmt.number(value, digits)


def peak_text(peak: float, max_workers: float) -> str:
    """Where the fitted peak is, in words that do not claim more than was measured
    (:func:`qlab.fmt.peak`, the wording the explorer's fit table uses too)."""
    return fmt.peak(peak, max_workers)


def caveat(row: Mapping[str, Any], name: str) -> str:
    """What a legend adds after sigma or kappa: on its bound, not significant, or nothing.

    Example:
        >>> caveat({"sigma_on_bound": True, "sigma_significant": False}, "sigma")
        ' (on its bound)'
    """
    if row.get(f"{name}_on_bound", False):
        return " (on its bound)"
    return "" if row.get(f"{name}_significant", True) else " (n.s.)"


def draw_fit(
    ax: Axes, g: pd.DataFrame, row: dict[str, Any], color: Any, label: str, band: bool
) -> bool:
    """Draw the USL curve of ``row`` (lam, sigma, kappa[, model, noise, confidence]) over
    the measured workers of ``g`` and, with ``band``, its prediction band, from a refit of
    ``g`` with the same options. Returns whether a band was drawn."""
    from qlab.lab.usl import model as usl

    n = g["workers"].to_numpy(dtype=float)
    grid = np.linspace(n.min(), n.max(), 200)
    curve = usl.usl(grid, row["lam"], row["sigma"], row["kappa"])
    ax.plot(grid, curve, ":", color=color, lw=2, label=label, gid="usl:" + str(g.name))
    if not band:
        return False
    opts = {k: row[k] for k in ("model", "noise", "confidence") if k in row}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = usl.fit(g["workers"], g["throughput"], **opts)
    except ValueError:
        return False
    low, high = fit.band(grid, "prediction")
    if not np.isfinite(low).all():
        return False
    ax.fill_between(grid, np.maximum(low, 0), high, facecolor="none", edgecolor=color,
                    hatch="////", linewidth=0, alpha=0.45)  # fmt: skip
    return True


def legend_patches(ci_text: str | None, pred: bool, confidence: float) -> list[Patch]:
    """Proxy legend entries for the two kinds of band."""
    level = f"{confidence:.0%}"
    out = []
    if ci_text:
        out.append(Patch(color="grey", alpha=0.3, label=f"{ci_text} ({level}, t)"))
    if pred:
        out.append(Patch(facecolor="none", edgecolor="grey", hatch="////",
                         label=f"hatched: fit's {level} prediction band (a new run)"))  # fmt: skip
    return out


def fit_rows(fits: Mapping[str, Any] | pd.DataFrame) -> dict[str, dict[str, Any]]:
    """{backend: {lam, sigma, kappa, peak_workers, ...}} from fit objects or a DataFrame."""
    rows = fits.to_dict("index") if isinstance(fits, pd.DataFrame) else fits
    out: dict[str, dict[str, Any]] = {}
    for backend, f in rows.items():
        made = f if isinstance(f, Mapping) else getattr(f, "to_dict", lambda f=f: vars(f))()
        d: dict[str, Any] = dict(made)  # a copy: never write into the caller's object
        if not all(math.isfinite(float(d.get(k, math.nan))) for k in ("lam", "sigma", "kappa")):
            continue
        if math.isnan(float(d.get("peak_workers", math.nan))):
            kappa = float(d["kappa"])
            d["peak_workers"] = math.sqrt((1 - d["sigma"]) / kappa) if kappa > 0 else math.inf
        out[str(backend)] = d
    return out
