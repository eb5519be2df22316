"""The command line: ``qlab run``, ``qlab sweep`` and ``qlab worker``.

Every command names the callable ``--handler`` (``--workload`` is an alias): a
built-in workload (``sleep:ms=2``) for run and sweep, ``package.module:function``
for worker.

``qlab run --workers 4 --jobs 100`` is the counterpart of the Go original's
``go run cmd/app/main.go -workers=4 -jobs=100``: it runs the seed workload (the
original's processor), retries failures up to 3 times at once (as the original does;
``--backoff exp`` for exponential backoff with jitter) and prints the original's
summary lines, then qlab's own. Failed jobs are results, not errors: the exit code is
0. Ctrl-C prints the summary of what ran and exits 130.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from qlab.backends import BACKENDS
from qlab.cli.args import log_flags, out_file, out_folder, positive, workload
from qlab.cli.summary import print_summary
from qlab.cli.sweep import add_sweep
from qlab.cli.worker import add_worker

__all__ = ["main"]

#: The top-level help's description: plain text (argparse shows it as it is).
DESCRIPTION = (
    "qlab: how does my code scale, and why not better? "
    "Commands: qlab run (one run and its summary), qlab sweep (a scaling curve "
    "across worker counts), qlab worker (a consumer of a shared queue)."
)


def _parser() -> argparse.ArgumentParser:
    from qlab import __version__, workloads

    p = argparse.ArgumentParser(prog="qlab", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"qlab {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a workload on a pool and print its summary")
    r.add_argument("--workers", type=positive(int, 1), default=4, help="workers (default 4)")
    r.add_argument("--jobs", type=positive(int, 0), default=100, help="jobs (default 100)")
    r.add_argument(
        "--handler",
        "--workload",
        dest="workload",
        type=workload,
        default="seed",
        help=f"{', '.join(workloads.names())} (default: seed); "
        "parameters as NAME:key=value,... e.g. sleep:ms=2 or numpy:op=sum",
    )
    r.add_argument("--backend", choices=BACKENDS, default="thread")
    r.add_argument("--retries", type=positive(int, 0), default=3, help="max retries (3)")
    r.add_argument(
        "--backoff",
        choices=("none", "exp"),
        default="none",
        help="none: retry at once, as the Go original; exp: exponential, "
        "jittered, 10 ms base, 1 s cap",
    )
    r.add_argument(
        "--timeout", type=positive(float, 0, strict=True), default=None,
        help="seconds one attempt may take",
    )  # fmt: skip
    r.add_argument("--seed", type=int, default=0)
    r.add_argument(
        "--out", type=out_folder, default=None, help="save the run's trace to this folder"
    )
    r.add_argument(
        "--perfetto",
        type=out_file(".json"),
        default=None,
        help="write the run as trace-event JSON for ui.perfetto.dev",
    )
    r.add_argument(
        "--rate-limit",
        type=positive(float, 0, strict=True),
        default=None,
        help="jobs per second at most",
    )
    r.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    r.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar on stderr (default: when stderr is a terminal)",
    )
    log_flags(r)
    add_sweep(sub)
    add_worker(sub)
    return p


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
    print_summary(run.summary(), args.workers, args.json)
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
