"""The command line: ``qlab run`` and ``qlab sweep``.

``qlab run --workers 4 --jobs 100`` is the counterpart of the Go original's
``go run cmd/app/main.go -workers=4 -jobs=100``: it runs the seed workload (the
original's processor), retries failures up to 3 times at once (as the original does;
``--backoff exp`` for exponential backoff with jitter) and prints the original's
summary lines, then qlab's own. Failed jobs are results, not errors: the exit code is
0. Ctrl-C prints the summary of what ran and exits 130.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from qlab.backends import BACKENDS

__all__ = ["main"]


def _value(text: str) -> Any:
    """A parameter value: an int, a float, true/false, or else the text itself."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _workload(text: str) -> Any:
    """``NAME`` or ``NAME:key=value,...`` (numbers, true/false, or text)."""
    from qlab import workloads

    name, _, params = text.partition(":")
    kwargs: dict[str, Any] = {}
    for part in filter(None, params.split(",")):
        key, sep, value = part.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected key=value, got {part!r}")
        kwargs[key.strip()] = _value(value.strip())
    try:
        return workloads.get(name, **kwargs)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(kind: type, low: float) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value >= low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {text}")
        return value

    return parse


def _writable(path: Path) -> None:
    """Fail now, not after the work, if nothing can be written at ``path``: try a
    scratch file in its nearest existing folder."""
    folder = path if path.is_dir() else path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot write to {str(path)!r}: {exc}") from None


def _out_folder(text: str) -> Path:
    """A folder to save a trace in (created later): not a file, and writable."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder")
    _writable(path)
    return path


def _out_file(*suffixes: str) -> Any:
    def parse(text: str) -> Path:
        path = Path(text)
        if path.suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(
                f"expected a file name ending in {' or '.join(suffixes)}, got {text!r}"
            )
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file")
        _writable(path)
        return path

    return parse


def _parser() -> argparse.ArgumentParser:
    from qlab import workloads

    p = argparse.ArgumentParser(prog="qlab", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a workload on a pool and print its summary")
    r.add_argument("--workers", type=_positive(int, 1), default=4, help="workers (default 4)")
    r.add_argument("--jobs", type=_positive(int, 0), default=100, help="jobs (default 100)")
    r.add_argument(
        "--workload",
        type=_workload,
        default="seed",
        help=f"{', '.join(workloads.names())} (default: seed); "
        "parameters as NAME:key=value,... e.g. sleep:ms=2 or numpy:op=sum",
    )
    r.add_argument("--backend", choices=BACKENDS, default="thread")
    r.add_argument("--retries", type=_positive(int, 0), default=3, help="max retries (3)")
    r.add_argument(
        "--backoff",
        choices=("none", "exp"),
        default="none",
        help="none: retry at once, as the Go original; exp: exponential, "
        "jittered, 10 ms base, 1 s cap",
    )
    r.add_argument(
        "--timeout", type=_positive(float, 1e-9), default=None, help="seconds one attempt may take"
    )
    r.add_argument("--seed", type=int, default=0)
    r.add_argument(
        "--out", type=_out_folder, default=None, help="save the run's trace to this folder"
    )
    r.add_argument(
        "--perfetto",
        type=_out_file(".json"),
        default=None,
        help="write the run as trace-event JSON for ui.perfetto.dev",
    )
    r.add_argument(
        "--rate-limit", type=_positive(float, 1e-9), default=None, help="jobs per second at most"
    )
    r.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    r.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar on stderr (default: when stderr is a terminal)",
    )
    r.add_argument("-v", "--verbose", action="store_true", help="log every retry")
    r.add_argument("-q", "--quiet", action="store_true", help="do not log failed jobs")
    _add_sweep(sub)
    return p


def _fmt_duration(seconds: float) -> str:
    """Like Go's time.Duration: 812.3µs, 12.345ms, 1.234s."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f}µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3f}ms"
    return f"{seconds:.3f}s"


def _print_summary(s: Any, workers: int, as_json: bool) -> None:
    if as_json:
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in s.items()}
        print(json.dumps(clean, default=float))
        return
    ms = [_fmt_duration(s[f"latency_p{q}_s"]) if s["jobs"] else "-" for q in (50, 95, 99)]
    print(f"Workers: {workers}")
    print(f"Jobs: {s['jobs']}")
    print(f"Success: {s['ok']}")
    print(f"Failed: {s['failed']}")
    print(f"Total time: {_fmt_duration(s['wall_s'])}")
    print(f"Jobs/sec: {s['throughput']:.2f}")
    print(f"Retries: {s['retries']}")
    print(f"Cancelled: {s['cancelled']}")
    print(f"Latency p50/p95/p99: {' / '.join(ms)}")


def _cmd_run(args: argparse.Namespace) -> int:
    import qlab

    backoff = qlab.Exponential(base=0.01, cap=1.0, jitter=True) if args.backoff == "exp" else None
    run = qlab.run(
        args.workload,
        range(args.jobs),
        workers=args.workers,
        backend=args.backend,
        retry=qlab.Retry(max_retries=args.retries, backoff=backoff),
        timeout=args.timeout,
        seed=args.seed,
        progress=sys.stderr.isatty() if args.progress is None else args.progress,
        rate_limit=args.rate_limit,
    )
    _print_summary(run.summary(), args.workers, args.json)
    if args.out:
        path = run.save(args.out)
        print(f"trace saved to {path}", file=sys.stderr)
    if args.perfetto:
        print(f"Perfetto trace written to {run.to_perfetto(args.perfetto)}", file=sys.stderr)
    return 130 if run.meta.get("interrupted") else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``qlab`` command; returns the exit code."""
    # a shell may start us with SIGINT ignored (a background job): Ctrl-C must still stop
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args = _parser().parse_args(argv)
    level = logging.INFO if args.verbose else logging.CRITICAL if args.quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("qlab").setLevel(level)
    try:
        if args.command == "run":
            return _cmd_run(args)
        return args.func(args)
    except (ValueError, TypeError) as exc:
        print(f"qlab: error: {exc}", file=sys.stderr)
        return 2


# -- qlab sweep --------------------------------------------------------------------------


def _worker_list(text: str) -> list[int]:
    """``1-16``, ``1,2,4,8`` or a mix (``1,2,4-8``)."""
    from qlab.sweeps import _check_workers

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
    from qlab.sweeps import _check_backends

    try:
        return _check_backends([b.strip() for b in text.split(",")])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_sweep(sub: Any) -> None:
    """Add ``qlab sweep`` to the command's subparsers."""
    from qlab.sweeps import DEFAULT_JOBS

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
        "--workload",
        type=_workload,
        help="NAME or NAME:key=value,... (default: 1 ms sleeps, 5%% failing)",
    )
    s.add_argument("--jobs", type=_positive(int, 1), help=f"jobs per run ({DEFAULT_JOBS})")
    s.add_argument("--repeats", type=_positive(int, 1), default=3, help="runs per point (3)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--out", type=_out_file(".parquet", ".csv"), help="save the sweep (.parquet, or .csv)"
    )
    s.add_argument(
        "--plot", type=_out_file(".png", ".svg", ".pdf"), help="save the sweep's charts (.png...)"
    )
    s.add_argument("--json", action="store_true", help="print points and fits as JSON")
    s.add_argument("--progress", action="store_true", help="log a line per run")
    s.add_argument("-v", "--verbose", action="store_true", help="log every retry")
    s.add_argument("-q", "--quiet", action="store_true", help="do not log failed jobs")
    s.set_defaults(func=_cmd_sweep)


def _cmd_sweep(args: argparse.Namespace) -> int:
    """``qlab sweep``: run, print the table and the fits, save; 130 after Ctrl-C."""
    import pandas as pd

    from qlab.sweeps import Sweep, sweep
    from qlab.usl import FewLevelsWarning

    a = args
    if a.progress:
        logging.getLogger("qlab.sweeps").setLevel(logging.INFO)
    sw = sweep(a.workload, a.workers, a.backend, a.jobs, a.repeats, a.seed, progress=a.progress)
    table = sw.df.groupby(["backend", "workers"])[["throughput", "speedup", "efficiency"]].mean()
    fits, notes = None, []
    with warnings.catch_warnings():  # a few worker levels: said once, as a note
        warnings.simplefilter("ignore", FewLevelsWarning)
        if sw.df["workers"].nunique() < 6:
            notes.append(f"only {sw.df['workers'].nunique()} worker levels: a loose USL fit")
        for b, g in sw.df.groupby("backend"):  # one backend's few points spoil no other's fit
            try:
                fit = Sweep(g, sw.meta).fit()[["lam", "sigma", "kappa", "peak_workers", "r2"]]
                fits = fit if fits is None else pd.concat([fits, fit])
            except (ValueError, RuntimeError) as exc:
                notes.append(f"no USL fit for {b}: {exc}")
        if a.json:
            out = {"points": table.reset_index().to_dict("records"), "meta": sw.meta}
            out["fit"] = None if fits is None else fits.to_dict("index")
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
