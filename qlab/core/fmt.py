"""Numbers for people: the one place where qlab turns a measured value into text.

Charts, widgets, ``Run``/``Sweep`` displays and the notebooks' prose all write numbers
through these functions, so that they agree: thousands separators, three significant
digits, a unit (ms, s, jobs/s), no scientific notation, "none" for an infinite peak and
the right plural. The raw values stay in the DataFrames; only their display changes.

Example:
    >>> number(2.486e6), number(0.190674), number(2.22e-16), number(0.000104)
    ('2,486,000', '0.191', '≈0', '0.000104')
    >>> count(800.0), plural(1, "worker"), plural(4, "process"), plural(1_000, "repeat")
    ('800', '1 worker', '4 processes', '1,000 repeats')
    >>> duration(3.32), duration(0.0096), duration(754.0), rate(1573.4), rate(12.34)
    ('3.32 s', '9.6 ms', '12.6 min', '1,573 jobs/s', '12.3 jobs/s')
    >>> factor(1.96), interval(1.8, 2.2), interval(2.7, float("inf")), percent(0.37)
    ('1.96×', '[1.8, 2.2]', '[2.7, no upper bound]', '37%')
    >>> peak(float("inf"), 8), peak(96.5, 8), peak(4.04, 8)
    ('none (κ = 0)', 'beyond the measured range (max 8)', '≈4.0 workers')
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "count",
    "duration",
    "factor",
    "interval",
    "number",
    "peak",
    "percent",
    "plural",
    "rate",
    "table",
]

_TINY = 1e-9  # below this a measured value is zero for any reader: "≈0", not 1e-16


def _bad(value: Any) -> str | None:
    """The text of a value that is not a finite number, or None for a finite one."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "none"
    return None


def number(value: float, digits: int = 3) -> str:
    """A measured value with ``digits`` significant digits, positional, with thousands
    separators above 1,000: ``number(1573.4) == '1,573'``, ``number(0.0123) == '0.0123'``.
    NaN is "n/a", infinity "none".

    Example:
        >>> number(524.454033), number(-0.0499), number(0), number(float("nan"))
        ('524', '-0.0499', '0', 'n/a')
    """
    if (bad := _bad(value)) is not None:
        return bad
    v = float(value)
    if v == 0:
        return "0"
    if abs(v) < _TINY:
        return "≈0"
    if abs(v) >= 10 ** (digits - 1):  # whole numbers: every integer digit, no decimals
        return f"{v:,.0f}"
    exponent = math.floor(math.log10(abs(v)))
    rounded = round(v, digits - 1 - exponent)
    if abs(rounded) >= 10 ** (digits - 1):  # 99.97 rounded up to 100
        return f"{rounded:,.0f}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(rounded))))
    return f"{rounded:,.{decimals}f}".rstrip("0").rstrip(".") if decimals else f"{rounded:,.0f}"


def count(value: float) -> str:
    """A count with thousands separators and no decimals: ``count(800.0) == '800'``."""
    if (bad := _bad(value)) is not None:
        return bad
    return f"{float(value):,.0f}"


def plural(n: float, word: str, many: str | None = None) -> str:
    """``n`` and the noun in the right number: "1 worker", "4 processes".

    Args:
        n: how many.
        word: the singular noun.
        many: the plural when it is not ``word`` + "s" (or + "es" after s, x, ch, sh).
    """
    if many is None:
        many = word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")
    return f"{count(n)} {word if float(n) == 1 else many}"


def duration(seconds: float) -> str:
    """A duration with its unit: ms below one second, seconds up to two minutes, then
    minutes: ``duration(0.0123) == '12.3 ms'``."""
    if (bad := _bad(seconds)) is not None:
        return bad
    s = float(seconds)
    if abs(s) < 1.0:
        return f"{number(s * 1e3)} ms"
    if abs(s) < 120.0:
        return f"{number(s)} s"
    return f"{s / 60:,.1f} min"


def rate(per_second: float, unit: str = "jobs/s") -> str:
    """A throughput with its unit: ``rate(1573.4) == '1,573 jobs/s'``."""
    return f"{number(per_second)} {unit}"


def factor(value: float) -> str:
    """A ratio such as a speedup, with two decimals: ``factor(0.96) == '0.96×'``."""
    if (bad := _bad(value)) is not None:
        return bad
    return f"{float(value):,.2f}×"


def percent(value: float) -> str:
    """A fraction as a whole percentage: ``percent(0.374) == '37%'``."""
    if (bad := _bad(value)) is not None:
        return bad
    return f"{float(value):.0%}"


def interval(low: float, high: float, fmt: Any = number) -> str:
    """A confidence interval, ``[1.8, 2.2]``; an infinite end is said in words."""
    if math.isinf(float(high)) and float(high) > 0:
        return f"[{fmt(low)}, no upper bound]"
    if math.isinf(float(low)) and float(low) < 0:
        return f"[no lower bound, {fmt(high)}]"
    return f"[{fmt(low)}, {fmt(high)}]"


def peak(workers: float, max_workers: float) -> str:
    """Where a USL fit peaks, in words that claim no more than was measured; charts and
    the explorer's fit table both use it. ``max_workers`` is the largest worker count
    measured *for that fit's backend*."""
    w = float(workers)
    if math.isnan(w):
        return "n/a"
    if math.isinf(w):
        return "none (κ = 0)"
    if w > float(max_workers):
        return f"beyond the measured range (max {count(max_workers)})"
    return f"≈{w:.1f} workers"


def _cell(column: str, value: Any) -> str:
    """One value of column ``column`` for people, its unit chosen by the column's name."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return str(value)
    if (bad := _bad(value)) is not None:
        return bad
    v = float(value)
    name = str(column)
    if name.endswith("_s") or "_s_ci_" in name:
        return duration(v)
    if name.startswith("throughput"):
        return rate(v)
    if name in ("cpu_util", "efficiency") or name.endswith("_share"):
        return percent(v)
    if v == int(v) and abs(v) >= 1:
        return count(v)
    return number(v)


def table(data: Any) -> Any:
    """A DataFrame or Series as text for people, for display only: every value written
    with :func:`_cell`'s unit rules (``*_s`` columns as durations, ``throughput`` as
    jobs/s, counts with separators). The raw frame is left unchanged.

    Example:
        >>> import pandas as pd
        >>> s = pd.Series({"jobs": 800.0, "wall_s": 0.190674, "throughput": 524.454033})
        >>> table(s).tolist(), s["jobs"]
        (['800', '191 ms', '524 jobs/s'], np.float64(800.0))
    """
    import pandas as pd

    if isinstance(data, pd.Series):
        return pd.Series(
            [_cell(k, v) for k, v in data.items()], index=data.index, name=data.name, dtype="str"
        )
    return pd.DataFrame(
        {c: [_cell(c, v) for v in data[c]] for c in data.columns}, index=data.index, dtype="str"
    )
