"""Backends: where batches run. The one registry of backend names lives here.

``backend=`` takes a name from :data:`BACKENDS` or an object that implements
:class:`qlab.core.protocol.Backend` (a Dask cluster's handle, say). Nothing in this
package imports the engine.

Example:
    >>> from qlab import backends
    >>> backends.BACKENDS
    ('thread', 'process', 'inline', 'dask', 'asyncio')
    >>> backends.resolve("inline").name
    'inline'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from qlab.core.protocol import Backend

if TYPE_CHECKING:  # the lazy names of __getattr__, as type checkers should see them
    from qlab.backends.dask.backend import DaskBackend as Dask
    from qlab.backends.process.backend import ProcessBackend as Process

__all__ = ["BACKENDS", "Backend", "Dask", "Process", "resolve"]

# name -> "module:class", imported on first use (the process backend loads joblib)
_REGISTRY = {
    "thread": "qlab.backends.thread:ThreadBackend",
    "process": "qlab.backends.process.backend:ProcessBackend",
    "inline": "qlab.backends.inline:InlineBackend",
    "dask": "qlab.backends.dask.backend:DaskBackend",
    "asyncio": "qlab.backends.aio.backend:AsyncioBackend",
}
BACKENDS = tuple(_REGISTRY)


def resolve(backend: Any) -> Backend:
    """A fresh backend for a registered name, or ``backend`` itself if it is one.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
        TypeError: an object that is not a Backend.
    """
    if isinstance(backend, str):
        if backend not in _REGISTRY:
            raise ValueError(f"backend must be one of {BACKENDS} or a Backend, got {backend!r}")
        module, cls = _REGISTRY[backend].split(":")
        return getattr(importlib.import_module(module), cls)()
    if isinstance(backend, Backend):
        return backend
    raise TypeError(f"backend must be one of {BACKENDS} or a Backend object, got {backend!r}")


def check_names(backend: Any) -> list[str]:
    """A backend name or a list of them, checked (for sweeps and the command line).

    Example:
        >>> check_names("thread"), check_names(["thread", "inline"])
        (['thread'], ['thread', 'inline'])
    """
    names = [backend] if isinstance(backend, str) else list(backend)
    bad = [b for b in names if b not in _REGISTRY]
    if not names or bad:
        raise ValueError(f"backend must be one of {BACKENDS} (or a list of them), got {backend!r}")
    return names


def __getattr__(name: str) -> Any:
    """``qlab.backends.Dask`` loads the Dask backend on first use (``import qlab``
    does not import dask); ``qlab.backends.Process`` the process backend."""
    if name == "Dask":
        from qlab.backends.dask.backend import DaskBackend

        return DaskBackend
    if name == "Process":
        from qlab.backends.process import ProcessBackend

        return ProcessBackend
    raise AttributeError(f"module 'qlab.backends' has no attribute {name!r}")
