"""Checks of user input: each names the parameter and fails before any job runs.

Example:
    >>> check_int("workers", 0, 1)
    Traceback (most recent call last):
    ...
    ValueError: workers must be an int >= 1, got 0
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["check_int", "check_seconds", "describe"]


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
