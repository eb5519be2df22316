"""Parameter checks shared by the workloads: a bad value fails at construction, with a
message that names the workload and the parameter.

    >>> from qlab.workloads.checks import number
    >>> number("sleep", "ms", -5, low=0)
    Traceback (most recent call last):
    ...
    ValueError: sleep: ms must be >= 0, got -5
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["number", "probability"]


def number(
    workload: str,
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    integer: bool = False,
) -> None:
    """Check that ``value`` is a finite real number (an int if ``integer``) in [low, high].

    Raises:
        TypeError: not a number (bools are not numbers here), or not an int when one is due.
        ValueError: NaN, infinite, or out of range.
    """
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type:
        raise TypeError(f"{workload}: {name} must be {kind}, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{workload}: {name} must be finite, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{workload}: {name} must be >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{workload}: {name} must be <= {high}, got {value!r}")


def probability(workload: str, name: str, value: Any) -> None:
    """Check that ``value`` is a probability in [0, 1].

    Raises:
        TypeError: not a number.
        ValueError: outside [0, 1].
    """
    try:
        number(workload, name, value, low=0, high=1)
    except ValueError:
        raise ValueError(
            f"{workload}: {name} must be a probability in [0, 1], got {value!r}"
        ) from None
