"""Checks of user input: each names the parameter and fails before any job runs.

Example:
    >>> check_int("workers", 0, 1)
    Traceback (most recent call last):
    ...
    ValueError: workers must be an int >= 1, got 0
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any

from qlab.core.retry import NO_RETRY, Retry

__all__ = [
    "check_int",
    "check_retry",
    "check_seconds",
    "describe",
    "is_async",
]


def check_int(name: str, value: Any, low: int) -> int:
    """``value`` if it is an int >= ``low``, else a ValueError naming ``name``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return value


def check_seconds(name: str, value: Any, allow_zero: bool = False) -> float | None:
    """``value`` as float seconds (None stays None), else a ValueError naming ``name``.

    Example:
        >>> check_seconds("timeout", 2), check_seconds("grace", 0, allow_zero=True)
        (2.0, 0.0)
    """
    if value is None:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a number {bound} or None, got {value!r}")
    return float(value)


def describe(handler: Any) -> str:
    """A readable name for a handler: ``module.function`` or the object's repr.

    Example:
        >>> describe(abs)
        'builtins.abs'
    """
    if hasattr(handler, "__qualname__"):
        return f"{getattr(handler, '__module__', '?')}.{handler.__qualname__}"
    text = repr(handler)
    return text if len(text) <= 200 else text[:197] + "..."


def check_retry(retry: Any) -> Retry:
    """A retry policy from what ``retry=`` takes: a Retry, an int (max retries), None.

    Example:
        >>> check_retry(2).max_retries, check_retry(None).max_retries
        (2, 0)
    """
    if retry is None:
        return NO_RETRY
    if isinstance(retry, int) and not isinstance(retry, bool):
        return Retry(max_retries=check_int("retry", retry, 0))
    if not isinstance(retry, Retry):
        raise TypeError(f"retry must be a qlab.Retry, an int or None, got {retry!r}")
    return retry


def is_async(fn: Any) -> bool:
    """Is ``fn`` an ``async def`` function (or a partial or callable object of one)?

    Example:
        >>> async def f(x): ...
        >>> is_async(f), is_async(abs), is_async(functools.partial(f, 1))
        (True, False, True)
    """
    while isinstance(fn, functools.partial):
        fn = fn.func
    call = None if inspect.isroutine(fn) else getattr(type(fn), "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)
