"""Deterministic, picklable handlers for experiments: synthetic shapes and real contention.

Each workload is a small frozen dataclass whose instances are callables taking one
payload, so they travel to worker processes and print readably in a run's meta. Bad
parameters fail at construction with an error that names the parameter::

    >>> from qlab import workloads
    >>> len(workloads.seed()(5))   # "job-5": 1000 chained SHA-256 digests, hex
    64
    >>> workloads.sleep(ms=2)
    sleep(ms=2)
    >>> workloads.get("compress", kb=64)
    compress(kb=64, level=6)

The synthetic ones (:mod:`qlab.workloads.synthetic`) teach the shapes:

=============  ====================================================================
``noop``       returns at once: measures the pool's own overhead
``sleep``      waits ``ms`` (I/O-like: releases the GIL; wakes early on cancel)
``cpu``        burns ``ms`` of CPU time in pure Python (holds the GIL)
``sha256``     ``rounds`` chained SHA-256 digests of the payload
``contended``  waits ``ms``, holding a process-wide lock for the ``hold`` fraction
``flaky``      wraps another workload; fails by a hash of (seed, job id, attempt)
``seed``       the Go original's processor and failure rule, exactly
=============  ====================================================================

The real ones contend on what real pools meet; each module says what and why:

================  ==================================================================
``http``          GET against a local server with a bounded pool (:mod:`.web`)
``sqlite_write``  inserts into one SQLite database, one writer at a time (:mod:`.database`)
``file_io``       writes, reads back and deletes a file (:mod:`.disk`)
``numpy``         matrix multiply or reduction, GIL released, BLAS pinned (:mod:`.native`)
``compress``      zlib on a buffer, GIL released (:mod:`.native`)
================  ==================================================================

Servers, databases and folders belong to the workload object: a pool opens them before
its workers start and closes them after it has joined them, one per run on either
backend (:mod:`qlab.workloads.owned`). The real workloads load on first use, so
``import qlab`` imports no HTTP server, SQLite or numpy.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from qlab.workloads.synthetic import (
    TransientError,
    contended,
    cpu,
    flaky,
    noop,
    seed,
    sha256,
    sleep,
)

__all__ = [
    "TransientError",
    "asleep",
    "compress",
    "contended",
    "cpu",
    "file_io",
    "flaky",
    "get",
    "http",
    "names",
    "noop",
    "numpy",
    "seed",
    "sha256",
    "sleep",
    "sqlite_write",
]

# name -> the module that defines it, imported on first access (PEP 562)
_LAZY = {
    "http": "qlab.workloads.web",
    "sqlite_write": "qlab.workloads.database",
    "file_io": "qlab.workloads.disk",
    "numpy": "qlab.workloads.native",
    "compress": "qlab.workloads.native",
    "asleep": "qlab.workloads.aio",
}

_SYNTHETIC: dict[str, Callable[..., Callable[[Any], Any]]] = {
    "noop": noop,
    "sleep": sleep,
    "cpu": cpu,
    "sha256": sha256,
    "contended": contended,
    "flaky": flaky,
    "seed": seed,
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'qlab.workloads' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def names() -> list[str]:
    """The workloads' names, for the CLI and the explorer."""
    return [*_SYNTHETIC, *_LAZY]


def get(name: str, **params: Any) -> Callable[[Any], Any]:
    """A workload by name: ``get("sleep", ms=2)``.

    Raises:
        ValueError: an unknown name (listing the known ones), or a bad parameter value.
        TypeError: an unknown parameter, or a value of the wrong type.
    """
    if name in _SYNTHETIC:
        return _SYNTHETIC[name](**params)
    if name in _LAZY:
        return __getattr__(name)(**params)
    raise ValueError(f"workload must be one of {names()}, got {name!r}")
