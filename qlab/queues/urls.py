"""Queue URLs: what each kind's URL names, checked before anything is opened, and the
one redaction that every message naming a queue goes through.

Each parser raises ValueError naming the URL (its password redacted) and the parameter
at fault. A message that names a queue shows it through :func:`shown` (or
:func:`redact`), never as the URL itself.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["REDIS_DEFAULTS", "parse_redis", "parse_sqlite", "redact", "shown"]

_SYNC = {"normal": "NORMAL", "full": "FULL"}
# scheme://user:password@ (any scheme: a typo'd one too) and ?password=... / &pass=...
_AUTH = re.compile(r"([A-Za-z][\w+.-]*://[^:/@\s'\"]*):[^@/\s'\"]*@")
_QUERY = re.compile(r"([?&](?:password|pass|pwd|passwd)=)[^&#\s'\"]*", re.IGNORECASE)

# the socket timeouts every Redis queue has unless its URL says otherwise (seconds): a
# server that stops answering is a store failure, not a hang
REDIS_DEFAULTS = {"socket_timeout": "5", "socket_connect_timeout": "3"}
# query parameters handed to redis-py (the queue's own are name= and lease=)
_REDIS_PARAMS = {
    "socket_timeout": float, "socket_connect_timeout": float, "socket_keepalive": str,
    "health_check_interval": int, "client_name": str, "username": str, "password": str,
    "protocol": int, "max_connections": int, "ssl_cert_reqs": str, "ssl_ca_certs": str,
    "ssl_certfile": str, "ssl_keyfile": str, "ssl_check_hostname": str,
}  # fmt: skip


def redact(text: str) -> str:
    """``text`` (a URL, or a message that holds URLs) without any password: the
    ``user:password@`` of any scheme, and ``password=`` in a query.

    Example:
        >>> redact("redis://:secret@host:6379/0?name=q")
        'redis://:***@host:6379/0?name=q'
        >>> redact("got 'reddis://u:pw@h/0?name=q&password=pw'")
        "got 'reddis://u:***@h/0?name=q&password=***'"
    """
    if not isinstance(text, str):
        text = str(text)
    return _QUERY.sub(r"\1***", _AUTH.sub(r"\1:***@", text))


def shown(url: Any) -> str:
    """A queue URL as messages show it: quoted, its password redacted.

    Example:
        >>> shown("redis://:pw@h/0")
        "'redis://:***@h/0'"
    """
    return repr(redact(url)) if isinstance(url, str) else redact(repr(url))


def parse_sqlite(url: str) -> tuple[Path, dict[str, Any]]:
    """The file and options of a ``sqlite://`` URL; ValueError naming what is wrong.

    Example:
        >>> parse_sqlite("sqlite:///runs/q.db?synchronous=full")
        (PosixPath('runs/q.db'), {'synchronous': 'FULL', 'lease': 10.0, 'timeout': 30.0})
    """
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc or len(parts.path) < 2:
        raise ValueError(f"queue must be sqlite:///path/to/file.db, got {shown(url)}")
    opts: dict[str, Any] = {"synchronous": "NORMAL", "lease": 10.0, "timeout": 30.0}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "synchronous":
            if value.lower() not in _SYNC:
                raise ValueError(f"queue {shown(url)}: synchronous must be normal or full")
            opts[key] = _SYNC[value.lower()]
        elif key in ("lease", "timeout"):
            opts[key] = _seconds(url, key, value, 1 if key == "lease" else 0)
        else:
            raise ValueError(f"queue {shown(url)}: unknown parameter {key!r} "
                             "(known: synchronous, lease, timeout)")  # fmt: skip
    return Path(parts.path[1:]), opts


def _seconds(url: str, key: str, value: str, least: float) -> float:
    try:
        got = float(value)
    except ValueError:
        got = math.nan
    if not got >= least or math.isinf(got):
        raise ValueError(f"queue {shown(url)}: {key} must be a number of seconds >= "
                         f"{least:g}, got {redact(value)!r}")  # fmt: skip
    return got


def parse_redis(url: str) -> tuple[str, str, float]:
    """The redis-py URL (with the default socket timeouts), the queue's name and its
    lease; ValueError naming the fault.

    Example:
        >>> parse_redis("redis://h:6379/0?name=q&lease=5")
        ('redis://h:6379/0?socket_timeout=5&socket_connect_timeout=3', 'q', 5.0)
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError(f"queue must be redis://host[:port][/db]?name=..., got {shown(url)}")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ValueError(f"queue {shown(url)}: the port must be a number") from None
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ValueError(f"queue {shown(url)}: the db (the URL's path) must be a number, "
                         f"got {db!r}")  # fmt: skip
    name, lease, rest = "qlab", 10.0, dict(REDIS_DEFAULTS)
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "name":
            name = value
        elif key == "lease":
            lease = _seconds(url, "lease", value, 1)
        elif key in _REDIS_PARAMS:
            if _REDIS_PARAMS[key] is not str:
                try:
                    _REDIS_PARAMS[key](value)
                except ValueError:
                    raise ValueError(f"queue {shown(url)}: {key} must be a number, "
                                     f"got {redact(value)!r}") from None  # fmt: skip
            if key in ("socket_timeout", "socket_connect_timeout"):
                _seconds(url, key, value, 0.001)
            rest[key] = value
        else:
            raise ValueError(f"queue {shown(url)}: unknown parameter {key!r} (known: name, "
                             f"lease, {', '.join(_REDIS_PARAMS)})")  # fmt: skip
    if not name or any(c in name for c in " {}:"):
        raise ValueError(f"queue {shown(url)}: name must be a word without spaces, ':' or braces")
    return urlunsplit(parts._replace(query=urlencode(rest))), name, lease
