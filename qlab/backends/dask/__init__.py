"""The Dask backend: batches on the workers of a Dask cluster, local or remote
(``backend="dask"``, ``qlab.backends.Dask(address=...)``).

Its modules load on first use: a worker process imports only what it runs.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["DaskBackend", "warm_cluster"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("qlab.backends.dask.backend"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
