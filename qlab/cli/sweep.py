"""``qlab sweep``: a workload across worker counts, backends and queues, from the shell."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import warnings
from typing import Any

from qlab.cli.args import log_flags, out_file, positive, workload

__all__ = ["add_sweep"]


def _fraction(text: str) -> float:
    """A number strictly between 0 and 1 (a confidence level)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _budget(text: str) -> str | None:
    """A sweep's budget: ``1min``, ``90s``, ``1m30s``... or ``none``."""
    from qlab.lab.sweep_plan import parse_budget

    if text.strip().lower() == "none":
        return None
    try:
        parse_budget(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _worker_list(text: str) -> list[int]:
    """``1-16``, ``1,2,4,8`` or a mix (``1,2,4-8``)."""
    from qlab.lab.sweep_options import check_workers as _check_workers

    out: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            out.extend(range(int(lo), int(hi or lo) + 1))
        return _check_workers(out)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected worker counts >= 1 like 1-16 or 1,2,4,8, got {text!r}"
        ) from None


def _backend_list(text: str) -> list[str]:
    from qlab.lab.sweep_options import check_backends as _check_backends

    try:
        return _check_backends([b.strip() for b in text.split(",")])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _queue_list(text: str) -> list[str]:
    """``memory``, a queue URL, or several separated by commas."""
    from qlab.lab.sweep_queues import check_queues

    try:
        return check_queues([q.strip() for q in text.split(",")])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_sweep(sub: Any) -> None:
    """Add ``qlab sweep`` to the command's subparsers."""
    from qlab.lab.sweep import DEFAULT_JOBS

    s = sub.add_parser(
        "sweep", help="run a workload across worker counts and backends; print the scaling"
    )
    s.add_argument(
        "--workers",
        type=_worker_list,
        default=[*range(1, 17)],
        help="worker counts: 1-16 (default), 1,2,4,8 or 1,2,4-8",
    )
    s.add_argument(
        "--backend",
        type=_backend_list,
        default=["thread"],
        help="thread (default), process or thread,process",
    )
    s.add_argument(
        "--queue",
        type=_queue_list,
        action="extend",
        help="memory (default), a queue URL (sqlite:///runs/q.db, redis://host:6379/0?name=q) "
        "or several, comma-separated or repeated; each run gets a fresh queue (q-1.db...)",
    )
    s.add_argument(
        "--handler",
        "--workload",
        dest="workload",
        type=workload,
        help="NAME or NAME:key=value,... (default: 1 ms sleeps, 5%% failing)",
    )
    s.add_argument(
        "--jobs", type=positive(int, 1),
        help=f"jobs per run (default: planned from --budget, at most {DEFAULT_JOBS:,})",
    )  # fmt: skip
    s.add_argument(
        "--budget", type=_budget, default="1min",
        help="time the sweep may take: 1min (default), 90s, 2min, 1m30s, or none",
    )  # fmt: skip
    s.add_argument(
        "--repeats",
        type=positive(int, 1),
        default=None,
        help="runs per point (3; 2 with --precision)",
    )
    s.add_argument(
        "--precision",
        type=positive(float, 0, strict=True),
        default=None,
        help="repeat a point until its throughput interval is within this share of the mean",
    )
    s.add_argument("--max-repeats", type=positive(int, 2), default=10, help="with --precision")
    s.add_argument(
        "--confidence", type=_fraction, default=0.95, help="level of every interval (0.95)"
    )
    _add_output(s)
    s.set_defaults(func=_cmd_sweep)


def _add_output(s: Any) -> None:
    """The sweep's seed, and where its results, charts, progress and logs go."""
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--out", type=out_file(".parquet", ".csv"), help="save the sweep (.parquet, or .csv)"
    )
    s.add_argument(
        "--plot", type=out_file(".png", ".svg", ".pdf"), help="save the sweep's charts (.png...)"
    )
    s.add_argument("--json", action="store_true", help="print points and fits as JSON")
    s.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a bar over the runs with the plan and an ETA, and a line per run "
        "(default: a bar when stderr is a terminal)",
    )
    log_flags(s)


def _cmd_sweep(args: argparse.Namespace) -> int:
    """``qlab sweep``: run, print the table and the fits, save; 130 after Ctrl-C."""
    from qlab.lab.sweep import Sweep, sweep
    from qlab.lab.usl.model import FewLevelsWarning, MisfitWarning

    a = args
    if a.progress:  # a line per run on the qlab.lab.sweep logger, and the plan
        logging.getLogger("qlab.lab.sweep").setLevel(logging.INFO)
    sw = sweep(
        a.workload, a.workers, a.backend, a.jobs, a.repeats, a.seed, progress=a.progress,
        confidence=a.confidence, precision=a.precision, max_repeats=a.max_repeats,
        queue=a.queue, budget=a.budget,
    )  # fmt: skip
    assert isinstance(sw, Sweep)  # no load=: a sweep over worker counts
    by = ["backend", "queue"] if sw.df["queue"].nunique() > 1 else ["backend"]
    table = sw.df.groupby([*by, "workers"])[["throughput", "speedup", "efficiency"]].mean()
    with warnings.catch_warnings():  # a few worker levels, a misfit: said once, as notes
        warnings.simplefilter("ignore", FewLevelsWarning)
        warnings.simplefilter("ignore", MisfitWarning)
        fits, notes = _fits(sw, by)
        if a.json:
            out = {"points": table.reset_index().to_dict("records"), "meta": sw.meta}
            out["fit"] = (
                None
                if fits is None
                else {  # "thread" or "thread, sqlite:///q.db"
                    ", ".join(k) if isinstance(k, tuple) else k: v
                    for k, v in fits.to_dict("index").items()
                }
            )
            print(json.dumps(_clean(out), default=str))
        else:
            print(table.to_string(float_format=lambda v: f"{v:,.2f}"))
            if fits is not None:
                print("\nUSL fit: X(N) = lam N / (1 + sigma (N - 1) + kappa N (N - 1))")
                print(fits.to_string(float_format=lambda v: f"{v:.4g}"))
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        if a.out:
            print(f"sweep saved to {sw.save(a.out)}", file=sys.stderr)
        if a.plot:
            _save_plot(sw, a.plot)
    return 130 if sw.meta.get("interrupted") else 0


def _fits(sw: Any, by: list[str]) -> tuple[Any, list[str]]:
    """The USL fit of each (backend[, queue]) group, and notes on the fits: a loose fit
    of few worker levels, a fit that does not describe the data, a group with no fit."""
    import pandas as pd

    from qlab.lab.sweep import Sweep

    fits, notes = None, []
    if sw.df["workers"].nunique() < 6:
        notes.append(f"only {sw.df['workers'].nunique()} worker levels: a loose USL fit")
    for key, g in sw.df.groupby(by):  # one group's few points spoil no other's fit
        name = ", ".join(map(str, key))
        try:
            full = Sweep(g, sw.meta).fit()
        except (ValueError, RuntimeError) as exc:
            notes.append(f"no USL fit for {name}: {exc}")
            continue
        notes += [f"the USL does not fit {name}: {why}" for why in full["misfit"] if why]
        fit = full[["lam", "sigma", "kappa", "peak_workers", "r2"]]
        fit.index = pd.MultiIndex.from_tuples([key], names=by) if len(by) > 1 else fit.index
        fits = fit if fits is None else pd.concat([fits, fit])
    return fits, notes


def _save_plot(sw: Any, path: str) -> None:
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # no display needed (a notebook that runs main() keeps its own)
    import matplotlib.pyplot as plt

    fig = sw.plot()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"charts saved to {path}", file=sys.stderr)


def _clean(obj: Any) -> Any:
    """JSON-ready: NaN and infinity become null, numpy scalars plain numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item"):  # a numpy scalar
        obj = obj.item()
    return None if isinstance(obj, float) and not math.isfinite(obj) else obj
