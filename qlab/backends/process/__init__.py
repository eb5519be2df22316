"""The process backend: worker processes started by a launcher, fed batches over a
channel, replaced when they die.

Users pick it with ``backend="process"``, or ``qlab.backends.Process(start="spawn")``
to choose how its workers start (:mod:`qlab.backends.process.launch`).

Its modules load on first use: a worker process imports only what it runs.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Process", "ProcessBackend", "warm_workers"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("qlab.backends.process.backend"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
