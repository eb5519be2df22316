"""Draw docs/usl-lambda-sigma-kappa.png, the README's picture of λ, σ and κ.

Run from the repository root: ``python docs/usl_chart.py``. Three curves of the
Universal Scalability Law, X(N) = λN / (1 + σ(N - 1) + κN(N - 1)), with λ = 100 jobs/s.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from qlab.lab.usl import usl

OUT = Path(__file__).with_name("usl-lambda-sigma-kappa.png")


def main() -> Path:
    """Draw the chart and return its path."""
    n = np.linspace(1, 32, 200)
    fig, ax = plt.subplots(figsize=(7, 3.6), layout="constrained")
    curves = [
        ("λ only (σ = κ = 0): linear, λ per worker", 0.0, 0.0, "--", "#555555"),
        ("σ = 0.05: contention, a ceiling at λ/σ", 0.05, 0.0, "-", "#1f77b4"),
        ("σ = 0.05, κ = 0.002: coherency, a peak, then less", 0.05, 0.002, "-", "#d62728"),
    ]
    for label, sigma, kappa, style, colour in curves:
        ax.plot(n, usl(n, 100.0, sigma, kappa), style, color=colour, lw=2, label=label)
    peak = np.sqrt((1 - 0.05) / 0.002)
    ax.axvline(peak, color="#d62728", lw=0.8, ls=":")
    ax.annotate(f"peak ≈ {peak:.0f} workers", (peak, 30), rotation=90, fontsize=8,
                ha="right", color="#d62728")  # fmt: skip
    ax.set_xlim(1, 32)
    ax.set_ylim(0, 1200)
    ax.set_xlabel("workers N")
    ax.set_ylabel("throughput (jobs/s)")
    ax.set_title("X(N) = λN / (1 + σ(N − 1) + κN(N − 1)), λ = 100 jobs/s", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.savefig(OUT, dpi=110)
    plt.close(fig)
    return OUT


if __name__ == "__main__":
    print(main())
