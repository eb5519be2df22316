"""``qlab worker``: a consumer of a shared durable queue, from the command line.

``qlab worker --queue redis://127.0.0.1:6379/0?name=q --handler pkg.mod:func
--workers 8`` runs :func:`qlab.serve` until Ctrl-C or SIGTERM (a graceful stop: the
jobs it holds go back to the queue for the other consumers, nothing is lost), or with
``--until-empty`` (``--burst``, as RQ says) until every job of the queue has a final
status. The handler is ``module:qualname``, imported in this process; without
``--handler`` the worker runs the one the producer kept (``qlab.enqueue(...,
handler=)``). It prints a summary of the jobs it ran; exit code 0, 130 if it was
interrupted, 2 for bad input or an unreachable queue, 1 if the queue's store failed
while it ran (the error names the queue and the cause; passwords are redacted).

A worker unpickles what the queue holds (payloads, a kept handler): point it only at
queues you trust, with a password and ``rediss://`` (TLS) across machines.

Example:
    >>> _handler("builtins:abs")(-3), _handler("os.path:join")("a", "b")
    (3, 'a/b')
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from qlab.backends import BACKENDS
from qlab.cli.args import log_flags, positive

__all__ = ["add_worker"]


def _handler(text: str) -> Any:
    """``package.module:function`` (a dotted qualname after the colon), imported."""
    module, sep, name = text.partition(":")
    if not sep or not module or not name:
        raise argparse.ArgumentTypeError(f"expected package.module:function, got {text!r}")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:
        raise argparse.ArgumentTypeError(f"cannot import {module!r}: {exc}") from exc
    for part in name.split("."):
        if not hasattr(obj, part):
            raise argparse.ArgumentTypeError(f"{module!r} has no {name!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise argparse.ArgumentTypeError(f"{text!r} is not callable")
    return obj


def add_worker(sub: Any) -> None:
    """Add ``qlab worker`` to the command's subparsers."""
    w = sub.add_parser(
        "worker",
        help="consume a shared durable queue (redis://, sqlite:///)",
        description="Consume a shared durable queue. It unpickles the queue's payloads: a "
        "queue URL is a code-execution boundary, so use only queues you trust.",
    )
    w.add_argument("--queue", required=True, help="the queue's URL, e.g. redis://host/0?name=q")
    w.add_argument(
        "--handler",
        "--workload",
        dest="handler",
        type=_handler,
        default=None,
        help="package.module:function (default: the handler the producer kept)",
    )
    w.add_argument("--workers", type=positive(int, 1), default=4, help="workers (default 4)")
    w.add_argument("--backend", choices=BACKENDS, default="thread")
    w.add_argument(
        "--until-empty",
        "--burst",
        action="store_true",
        help="end once every job of the queue has a final status",
    )
    w.add_argument(
        "--prefetch", type=positive(int, 1), default=None, help="jobs held at most (16 x workers)"
    )
    w.add_argument("--retries", type=positive(int, 0), default=3, help="max retries (3)")
    w.add_argument(
        "--timeout", type=positive(float, 1e-9), default=None, help="seconds one attempt may take"
    )
    w.add_argument(
        "--rate-limit",
        type=positive(float, 1e-9),
        default=None,
        help="attempt starts per second, shared by every consumer of a Redis queue",
    )
    w.add_argument("--burst-size", type=positive(int, 1), default=1, help="rate limit burst")
    w.add_argument("--force", action="store_true", help="run a handler other than the queue's")
    w.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    log_flags(w)
    w.set_defaults(func=_cmd_worker)


def _cmd_worker(args: argparse.Namespace) -> int:
    import qlab
    from qlab.cli.summary import print_summary
    from qlab.queues import StoreError, redact

    limit = None if args.rate_limit is None else qlab.RateLimit(args.rate_limit, args.burst_size)
    try:
        run = _serve(args, limit)
    except (ConnectionError, ValueError, TypeError, StoreError) as exc:
        # every message goes out redacted (a password in --queue never reaches stderr)
        print(f"qlab: error: {redact(str(exc))}", file=sys.stderr)
        return 1 if isinstance(exc, StoreError) else 2
    print_summary(run.summary(), args.workers, args.json)
    print(f"consumer {run.meta['consumer']}", file=sys.stderr)
    return 130 if run.meta.get("interrupted") else 0


def _serve(args: argparse.Namespace, limit: Any) -> Any:
    import qlab

    return qlab.serve(
        args.queue,
        args.handler,
        args.workers,
        until_empty=args.until_empty,
        prefetch=args.prefetch,
        force=args.force,
        backend=args.backend,
        retry=qlab.Retry(max_retries=args.retries),
        timeout=args.timeout,
        rate_limit=limit,
    )
