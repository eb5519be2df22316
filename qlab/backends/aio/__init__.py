"""The asyncio backend: coroutine handlers on lanes of an event loop (``backend="asyncio"``).

Its modules load on first use: a worker process imports only what it runs.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["AsyncioBackend"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("qlab.backends.aio.backend"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
