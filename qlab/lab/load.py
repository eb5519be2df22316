"""Load sweeps: latency against offered load, open-loop, with the knee marked.

A worker sweep (``qlab.sweep``) is closed-loop: it measures capacity. A load sweep
runs the same pool at a series of offered loads (arrivals per second, released on a
seeded Poisson or periodic schedule whatever the pool does), and measures what users
of a service see: latency percentiles from each job's intended arrival, as the load
nears capacity. The result's ``df`` is tidy (one row per load and repeat); ``plot()``
draws latency percentiles against offered load, with the knee marked and, given a
mean service time, the M/M/c prediction (:mod:`qlab.queueing`) beside them.

The knee is found as in Kneedle (Satopää et al., 2011): on the median latency curve
scaled to the unit square, the load farthest below the chord from the first point to
the last, when latency rises (by ``KNEE_RISE``, 1.5x, from the lowest load to the
highest); a flat curve has none.

Example:
    >>> import qlab
    >>> ls = sweep_load(qlab.workloads.sleep(ms=1), load=[100, 200, 400], workers=2, jobs=40)
    >>> ls.df["load"].tolist(), ls.df["ok"].tolist()
    ([100.0, 200.0, 400.0], [40, 40, 40])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from qlab.core.checks import check_int
from qlab.engine.arrivals import Periodic, Poisson
from qlab.lab.queueing import littles_law, mmc

__all__ = ["LoadSweep", "knee", "sweep_load"]

PERCENTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
#: How much the latency must rise, last load over first, for a curve to have a knee.
KNEE_RISE = 1.5


def sweep_load(
    workload: Callable[[Any], Any],
    load: Iterable[float],
    workers: int = 4,
    *,
    backend: str = "thread",
    jobs: int | None = None,
    duration: float = 2.0,
    arrivals: str = "poisson",
    repeats: int = 1,
    seed: int | None = 0,
    **run_options: Any,
) -> LoadSweep:
    """Run ``workload`` open-loop at each offered load (jobs per second).

    Args:
        workload: the handler.
        load: offered loads, arrivals per second (> 0), run in ascending order.
        workers: the pool's workers.
        backend: the pool's backend.
        jobs: jobs per run; None: ``load * duration`` (at least 50).
        duration: seconds of arrivals per run when ``jobs`` is None.
        arrivals: ``"poisson"`` (exponential gaps) or ``"periodic"`` (even gaps).
        repeats: runs per load (each with its own seed: ``seed + repeat``).
        seed, **run_options: passed to each ``qlab.run`` (retry, timeout...).

    Returns:
        A :class:`LoadSweep`.

    Raises:
        ValueError / TypeError: bad input, naming the parameter, before any run.
    Example:
        >>> import qlab
        >>> ls = qlab.sweep_load(qlab.workloads.sleep(ms=1), load=[100, 200], workers=2, jobs=20)
        >>> ls.df["load"].tolist()
        [100.0, 200.0]
    """
    from qlab.engine.runner import run

    loads = sorted({_rate(x) for x in _iterable("load", load)})
    if not loads:
        raise ValueError("load must name at least one offered load, got none")
    if arrivals not in ("poisson", "periodic"):
        raise ValueError(f"arrivals must be 'poisson' or 'periodic', got {arrivals!r}")
    check_int("workers", workers, 1)
    check_int("repeats", repeats, 1)
    if jobs is not None and (not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1):
        raise ValueError(f"jobs must be an int >= 1 or None, got {jobs!r}")
    if not isinstance(duration, int | float) or not duration > 0:
        raise ValueError(f"duration must be a number > 0, got {duration!r}")
    if not callable(workload):
        raise TypeError(f"workload must be callable, got {workload!r}")
    rows, runs = [], []
    for rate in loads:
        n = jobs if jobs is not None else max(50, int(rate * duration))
        for rep in range(repeats):
            s = None if seed is None else seed + rep
            sched = Poisson(rate, seed=s) if arrivals == "poisson" else Periodic(rate)
            r = run(workload, range(n), workers, backend=backend, seed=s, arrivals=sched,
                    **run_options)  # fmt: skip
            rows.append(_row(r, rate, rep, workers))
            runs.append(r)
    import pandas as pd

    meta = {"workers": workers, "backend": backend, "arrivals": arrivals, "seed": seed}
    meta["workload"] = runs[0].meta.get("workload") if runs else None
    return LoadSweep(pd.DataFrame(rows), meta, runs)


def _iterable(name: str, value: Any) -> list:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a list of numbers, got {value!r}")
    return list(value)


def _rate(x: Any) -> float:
    ok = isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
    if not ok or x <= 0:
        raise ValueError(f"load must hold numbers > 0 (jobs per second), got {x!r}")
    return float(x)


def _row(r: Any, rate: float, rep: int, workers: int) -> dict[str, Any]:
    """One run's measurements at one offered load."""
    jobs = r.jobs
    done = jobs[jobs["status"].isin(["ok", "failed"])]
    lat = done["latency_s"]
    first = float(jobs["submitted_s"].min())
    span = float(done["end_s"].max()) - first if len(done) else math.nan
    ll = littles_law(r)
    row = {"load": rate, "repeat": rep, "jobs": len(jobs)}
    row["ok"] = int((jobs["status"] == "ok").sum())
    row["achieved"] = len(done) / span if span > 0 else math.nan
    row["utilisation"] = float(done["service_s"].sum()) / (workers * span) if span > 0 else math.nan
    for name, q in PERCENTILES.items():
        row[f"latency_{name}_s"] = float(lat.quantile(q)) if len(lat) else math.nan
    row["latency_mean_s"] = float(lat.mean())
    row["queue_wait_mean_s"] = float(done["queue_wait_s"].mean())
    row["service_mean_s"] = float(done["service_s"].mean())
    row["littles_L"], row["littles_lam_W"] = ll["L"], ll["lam_W"]
    return row


def knee(x: Iterable[float], y: Iterable[float]) -> float | None:
    """The knee of an increasing, convex curve (Kneedle): scaled to the unit square,
    the x farthest below the chord; None if there are under 3 points, no bend, or the
    latency does not rise: a knee needs the last point at least ``KNEE_RISE`` times the
    first (a flat curve's noise has a "farthest point" too, at no load in particular).

    Example:
        >>> knee([1, 2, 3, 4, 5], [1.0, 1.1, 1.3, 2.0, 6.0])
        4.0
        >>> knee([10, 20, 30, 40], [2.34, 2.28, 2.24, 2.24]) is None  # flat: no knee
        True
    """
    import numpy as np

    xs, ys = np.asarray(list(x), float), np.asarray(list(y), float)
    ok = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[ok], ys[ok]
    if len(xs) < 3 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return None
    order = np.argsort(xs)
    xs, ys = xs[order], ys[order]
    if not ys[-1] >= KNEE_RISE * ys[0]:
        return None
    xn = (xs - xs.min()) / np.ptp(xs)
    yn = (ys - ys.min()) / np.ptp(ys)
    gap = xn - yn
    i = int(np.argmax(gap))
    return float(xs[i]) if gap[i] > 0 else None


@dataclass
class LoadSweep:
    """What a load sweep measured: ``df`` (one row per load and repeat: load, repeat,
    jobs, ok, achieved throughput, utilisation, latency p50/p95/p99/mean, queue wait,
    service time, and Little's L and λW), ``meta``, and the runs."""

    df: Any
    meta: dict[str, Any]
    runs: list[Any] = field(default_factory=list, repr=False)

    @property
    def points(self) -> Any:
        """The mean of each column per offered load."""
        return self.df.drop(columns="repeat").groupby("load", as_index=False).mean()

    @property
    def knee(self) -> float | None:
        """The offered load at the knee of the median latency curve (see :func:`knee`):
        the steadiest of the curves, where the tail percentiles of a short run are noisy.
        ``knee(ls.points.load, ls.points.latency_p99_s)`` gives the p99 curve's."""
        p = self.points
        return knee(p["load"], p["latency_p50_s"])

    def predict(self, service_s: float | None = None, loads: Iterable[float] | None = None) -> Any:
        """The M/M/c prediction at each load (below capacity): utilisation, p_wait and
        latency mean/p50/p95/p99, for ``service_s`` (default: the measured mean)."""
        import pandas as pd

        c = self.meta["workers"]
        s = float(self.df["service_mean_s"].mean()) if service_s is None else service_s
        rows = []
        for rate in self.points["load"] if loads is None else loads:
            if rate * s >= c:
                continue
            q = mmc(float(rate), s, c)
            row = {"load": float(rate), "utilisation": q.utilisation, "p_wait": q.p_wait}
            row["latency_mean_s"] = q.latency_mean_s
            for name, p in PERCENTILES.items():
                row[f"latency_{name}_s"] = q.latency_quantile(p)
            rows.append(row)
        return pd.DataFrame(rows)

    def plot(self, ax: Any = None, predict: bool | float = False) -> Any:
        """Latency percentiles (ms, log scale) against offered load, the knee marked;
        with ``predict`` (True, or a mean service time in seconds), the M/M/c
        prediction as thin lines of the same colours. Returns the Axes."""
        import matplotlib.pyplot as plt
        import numpy as np

        if ax is None:
            _, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
        p = self.points
        colours = {"p50": "#1f77b4", "p95": "#ff7f0e", "p99": "#d62728"}
        for name, colour in colours.items():
            ax.plot(p["load"], p[f"latency_{name}_s"] * 1e3, "o-", color=colour,
                    label=f"{name} measured")  # fmt: skip
        if predict:
            s = None if predict is True else float(predict)
            s_mean = float(self.df["service_mean_s"].mean()) if s is None else s
            cap = self.meta["workers"] / s_mean
            grid = np.linspace(float(p["load"].min()), min(float(p["load"].max()), cap * 0.99), 60)
            pred = self.predict(s_mean, grid)
            for name, colour in colours.items():
                ax.plot(pred["load"], pred[f"latency_{name}_s"] * 1e3, "--", color=colour,
                        lw=1, label=f"{name} M/M/{self.meta['workers']}")  # fmt: skip
            ax.axvline(cap, color="#555555", lw=0.8, ls=":")
            ax.annotate(f"capacity {cap:,.0f}/s", (cap, 0.98), xycoords=("data", "axes fraction"),
                        ha="right", va="top", rotation=90, fontsize=8, color="#555555")  # fmt: skip
        k = self.knee
        if k is not None:
            ax.axvline(k, color="black", lw=1.2, alpha=0.6)
            ax.annotate(f"knee ≈ {k:,.0f}/s", (k, 0.98), xycoords=("data", "axes fraction"),
                        ha="right", va="top", rotation=90, fontsize=9)  # fmt: skip
        ax.set_yscale("log")
        from matplotlib.ticker import FuncFormatter, LogLocator

        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_xlabel("offered load (jobs/s)")
        ax.set_ylabel("latency from intended arrival (ms)")
        m = self.meta
        name = str(m.get("workload")).removeprefix("__main__.")
        ax.set_title(f"{name}: {m['workers']} {m['backend']} workers, "
                     f"{m['arrivals']} arrivals")  # fmt: skip
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, ncol=2 if predict else 1)
        return ax
