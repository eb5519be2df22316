"""Queue URLs: what each kind's URL names, checked before anything is opened.

Each parser raises ValueError naming the URL and the parameter at fault.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["parse_redis", "parse_sqlite"]

_SYNC = {"normal": "NORMAL", "full": "FULL"}


def parse_sqlite(url: str) -> tuple[Path, dict[str, Any]]:
    """The file and options of a ``sqlite://`` URL; ValueError naming what is wrong.

    Example:
        >>> parse_sqlite("sqlite:///runs/q.db?synchronous=full")
        (PosixPath('runs/q.db'), {'synchronous': 'FULL', 'lease': 10.0, 'timeout': 30.0})
    """
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc or len(parts.path) < 2:
        raise ValueError(f"queue must be sqlite:///path/to/file.db, got {url!r}")
    opts: dict[str, Any] = {"synchronous": "NORMAL", "lease": 10.0, "timeout": 30.0}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "synchronous":
            if value.lower() not in _SYNC:
                raise ValueError(f"queue {url!r}: synchronous must be normal or full")
            opts[key] = _SYNC[value.lower()]
        elif key in ("lease", "timeout"):
            try:
                opts[key] = float(value)
            except ValueError:
                opts[key] = math.nan
            if not opts[key] >= (1 if key == "lease" else 0) or math.isinf(opts[key]):
                raise ValueError(f"queue {url!r}: {key} must be a number of seconds >= "
                                 f"{1 if key == 'lease' else 0}, got {value!r}")  # fmt: skip
        else:
            raise ValueError(
                f"queue {url!r}: unknown parameter {key!r} (known: synchronous, lease, timeout)"
            )
    return Path(parts.path[1:]), opts


def parse_redis(url: str) -> tuple[str, str, float]:
    """The redis-py URL, the queue's name and its lease; ValueError naming the fault.

    Example:
        >>> parse_redis("redis://h:6379/0?name=q&lease=5")
        ('redis://h:6379/0', 'q', 5.0)
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError(f"queue must be redis://host[:port][/db]?name=..., got {url!r}")
    name, lease, rest = "qlab", 10.0, []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "name":
            name = value
        elif key == "lease":
            try:
                lease = float(value)
            except ValueError:
                lease = math.nan
        else:
            rest.append((key, value))
    if not name or any(c in name for c in " {}:"):
        raise ValueError(f"queue {url!r}: name must be a word without spaces, ':' or braces")
    if not 1 <= lease < math.inf:
        raise ValueError(f"queue {url!r}: lease must be a number of seconds >= 1")
    return urlunsplit(parts._replace(query=urlencode(rest))), name, lease
