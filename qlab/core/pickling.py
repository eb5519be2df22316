"""Pickling for other processes: what the process and Dask backends send to their
workers, and what a durable queue stores.

Plain pickle where it can, cloudpickle where it cannot (lambdas and functions defined
in a notebook are pickled by value).
"""

from __future__ import annotations

import pickle
from typing import Any

__all__ = ["check_picklable", "dumps"]


def dumps(obj: Any) -> bytes:
    """Pickle ``obj`` (cloudpickle only if plain pickle cannot).

    Example:
        >>> pickle.loads(dumps(lambda x: x + 1))(1)
        2
    """
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        import cloudpickle  # pickles by value what plain pickle cannot (lambdas)

        return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def check_picklable(name: str, obj: Any) -> bytes:
    """cloudpickle ``obj`` or raise a TypeError that names it and says why.

    Example:
        >>> len(check_picklable("handler", abs)) > 0
        True
    """
    import cloudpickle  # pickles lambdas and notebook functions by value

    try:
        return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise TypeError(
            f"{name} cannot be pickled for the process backend ({type(exc).__name__}: {exc}); "
            "use a picklable callable (a module-level function, or a lambda or closure over "
            "picklable values), or backend='thread'"
        ) from exc
