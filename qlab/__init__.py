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
from typing import TYPE_CHECKING, Any

from qlab import workloads
from qlab.core.context import Cancelled, CancelToken, JobContext, current
from qlab.core.retry import Backoff, Constant, Exponential, Permanent, Retry, Uniform
from qlab.core.version import __version__ as __version__
from qlab.engine.pool import JobFailed, Pool
from qlab.engine.runner import run
from qlab.hooks.base import Hook

if TYPE_CHECKING:  # the lazy names below, as type checkers should see them
    from qlab import plot, testing
    from qlab import widgets as widgets
    from qlab.engine import arrivals as arrivals
    from qlab.engine.aio import AsyncPool, arun
    from qlab.engine.arrivals import Periodic, Poisson
    from qlab.engine.ratelimit import RateLimit
    from qlab.engine.resume import resume
    from qlab.engine.serve import enqueue, serve
    from qlab.executor.executor import Executor
    from qlab.executor.observe import observe
    from qlab.hooks import metrics
    from qlab.hooks import progress as progress
    from qlab.lab import queueing as queueing
    from qlab.lab import usl
    from qlab.lab.load import sweep_load
    from qlab.lab.sweep import Sweep, load_sweep, sweep
    from qlab.queues.history import load_run
    from qlab.trace import perfetto as perfetto
    from qlab.trace.results import Run
    from qlab.widgets import explore

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
    "StoreError",
    "BackendLost",
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
    # numbers for people, and claims decided by the data
    "fmt",
    "claims",
    "stories",
]

logging.getLogger("qlab").addHandler(logging.NullHandler())

# name -> module that defines it; imported on first access (PEP 562)
_MODULES = {  # public module names -> where they live
    "metrics": "qlab.hooks.metrics",
    "progress": "qlab.hooks.progress",
    "arrivals": "qlab.engine.arrivals",
    "queueing": "qlab.lab.queueing",
    "perfetto": "qlab.trace.perfetto",
    "usl": "qlab.lab.usl",
    "plot": "qlab.plot",
    "testing": "qlab.testing",
    "widgets": "qlab.widgets",
    "fmt": "qlab.core.fmt",
    "claims": "qlab.lab.claims",
    "stories": "qlab.lab.stories",
}
_LAZY = {
    "RateLimit": "qlab.engine.ratelimit",
    "Poisson": "qlab.engine.arrivals",
    "Periodic": "qlab.engine.arrivals",
    "sweep_load": "qlab.lab.load",
    "Executor": "qlab.executor.executor",
    "WorkerCrashed": "qlab.backends.process.errors",
    "observe": "qlab.executor.observe",
    "arun": "qlab.engine.aio",
    "AsyncPool": "qlab.engine.aio",
    "Run": "qlab.trace.results",
    "load_run": "qlab.queues.history",
    "resume": "qlab.engine.resume",
    "StoreError": "qlab.queues.store",
    "BackendLost": "qlab.core.protocol",
    "enqueue": "qlab.engine.serve",
    "serve": "qlab.engine.serve",
    "sweep": "qlab.lab.sweep",
    "Sweep": "qlab.lab.sweep",
    "load_sweep": "qlab.lab.sweep",
    "explore": "qlab.widgets",
}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'qlab' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
