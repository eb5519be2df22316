"""qlab: a laboratory for concurrent job processing.

A worker pool on threads or processes, with retries, backoff, timeouts, cancellation
and graceful shutdown, whose every job and attempt is traced into pandas DataFrames;
sweeps across worker counts, scaling models and charts on top.

Example:
    >>> import qlab
    >>> run = qlab.run(qlab.workloads.seed(), range(100), workers=4)
    >>> run.summary()[["ok", "failed"]].tolist()
    [10, 90]

Heavy parts (pandas plots, matplotlib, ipywidgets, scipy) load on first use.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from qlab import workloads
from qlab.context import Cancelled, CancelToken, JobContext, current
from qlab.engine import JobFailed, Pool
from qlab.hooks import Hook
from qlab.retry import Backoff, Constant, Exponential, Permanent, Retry, Uniform
from qlab.runner import run

__version__ = "0.1.0"

__all__ = [
    # the engine
    "Pool",
    "run",
    "current",
    "Cancelled",
    "CancelToken",
    "JobContext",
    "JobFailed",
    "WorkerCrashed",
    "Hook",
    # load and observability
    "RateLimit",
    "Poisson",
    "Periodic",
    "sweep_load",
    "metrics",
    "Executor",
    "observe",
    "arun",
    "AsyncPool",
    # retry policies
    "Retry",
    "Permanent",
    "Backoff",
    "Constant",
    "Exponential",
    "Uniform",
    # results
    "Run",
    "load_run",
    # durable queues
    "resume",
    "enqueue",
    "serve",
    # the lab
    "workloads",
    "sweep",
    "Sweep",
    "load_sweep",
    "usl",
    "plot",
    "explore",
    "testing",
]

logging.getLogger("qlab").addHandler(logging.NullHandler())

# name -> module that defines it; imported on first access (PEP 562)
_LAZY = {
    "RateLimit": "qlab.ratelimit",
    "Poisson": "qlab.arrivals",
    "Periodic": "qlab.arrivals",
    "sweep_load": "qlab.load",
    "metrics": None,
    "arrivals": None,
    "queueing": None,
    "perfetto": None,
    "Executor": "qlab.executor",
    "WorkerCrashed": "qlab.backends.process",
    "observe": "qlab.observer",
    "arun": "qlab.aio",
    "AsyncPool": "qlab.aio",
    "Run": "qlab.results",
    "load_run": "qlab.results",
    "resume": "qlab.resuming",
    "enqueue": "qlab.queues.shared",
    "serve": "qlab.queues.shared",
    "sweep": "qlab.sweeps",
    "Sweep": "qlab.sweeps",
    "load_sweep": "qlab.sweeps",
    "explore": "qlab.widgets",
    "usl": None,
    "plot": None,
    "testing": None,
    "widgets": None,
    "progress": None,
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'qlab' has no attribute {name!r}")
    module = _LAZY[name]
    value = (
        importlib.import_module(f"qlab.{name}")
        if module is None
        else getattr(importlib.import_module(module), name)
    )
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
