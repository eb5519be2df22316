"""The queue as a sweep dimension: which queues a sweep runs on, and a fresh queue per run.

``qlab.sweep(..., queue=["memory", "sqlite:///runs/q.db", "redis://127.0.0.1:6379/0"])``
runs every point on every queue. A durable queue that has run its jobs is finished
(``qlab.run`` refuses it, ``qlab.resume`` returns its old Run), so each run of a sweep
gets a queue of its own, derived from the URL given:

- ``sqlite:///runs/q.db?synchronous=full``: the file ``runs/q-<n>.db`` beside the given
  one (same folder, so the same disk and the same fsync cost), ``n = 1, 2, ...`` in the
  order the sweep runs them (warm-ups included), the URL's parameters kept. The given
  file itself is not used. A sweep refuses to start when files of that pattern exist
  already (an earlier sweep's): remove them or name another file. The files are kept:
  each is its run's durable record (``qlab.resume(url, handler)`` reads one back).
- ``redis://host:port/db?name=q``: the stream name ``q-<token>-<n>`` (``token``: 6 random
  hex digits per sweep, so two sweeps never share a name); the keys stay in Redis.
  The server is pinged before any run.
- ``"memory"`` or None: the in-memory queue (the default).

A single string is a single queue; a list makes the ``queue`` column of ``sweep.df``
a dimension, like ``backend``. In ``sweep.df`` a queue is named by the URL given,
password redacted; charts use the short :func:`label`.

Example:
    >>> check_queues(["memory", "sqlite:///runs/q.db?synchronous=full"])
    ['memory', 'sqlite:///runs/q.db?synchronous=full']
    >>> label("sqlite:///runs/q.db?synchronous=full"), label("redis://h:6379/0?name=q")
    ('sqlite synchronous=full', 'redis')
    >>> fresh = RunQueues(["sqlite:///runs/q.db"], token="abc123")
    >>> fresh("sqlite:///runs/q.db"), fresh("sqlite:///runs/q.db"), fresh("memory")
    ('sqlite:///runs/q-1.db', 'sqlite:///runs/q-2.db', 'memory')
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["MEMORY", "RunQueues", "check_queues", "label", "labels"]

MEMORY = "memory"


def _kind(url: str) -> str:
    return MEMORY if url == MEMORY else urlsplit(url).scheme


def check_queues(queue: Any) -> list[str]:
    """The sweep's queues: ``"memory"`` or URLs, duplicates dropped, in the order given.

    Raises:
        ValueError: not ``"memory"``, None or a queue URL of a kind a sweep can make fresh
            per run (sqlite, redis, rediss), or a bad URL; the message names ``queue``.
    """
    from qlab.queues import queue_class, redact
    from qlab.queues.urls import parse_redis, parse_sqlite

    names = [queue] if queue is None or isinstance(queue, str) else queue
    names = list(names) if isinstance(names, Iterable) else [queue]
    if not names:
        raise ValueError("queue must be 'memory', a queue URL or a non-empty list of them, got []")
    out = []
    for q in names:
        q = MEMORY if q is None else q
        if not isinstance(q, str):
            raise ValueError(
                "queue must be 'memory' or a queue URL (a sweep makes a fresh queue per run, "
                f"so it takes no queue object), got {q!r}"
            )
        if q == MEMORY:
            out.append(q)
            continue
        queue_class(q)  # ValueError: "queue must be 'memory' or a URL of [...]"
        kind = _kind(q)
        if kind == "sqlite":
            parse_sqlite(q)
        elif kind in ("redis", "rediss"):
            parse_redis(q)
        else:
            raise ValueError(
                f"queue {redact(q)!r}: a sweep cannot make a fresh {kind} queue per run"
            )
        out.append(q)
    return list(dict.fromkeys(out))


def label(url: str) -> str:
    """A short name for charts: the kind and the URL's options (path, name and password
    left out): ``memory``, ``sqlite synchronous=full``, ``redis``."""
    if url == MEMORY:
        return MEMORY
    parts = urlsplit(url)
    opts = [f"{k}={v}" for k, v in parse_qsl(parts.query) if k != "name"]
    return " ".join([parts.scheme, *opts])


def labels(urls: Iterable[str]) -> dict[str, str]:
    """{url: label}; URLs whose short labels collide keep their redacted URL."""
    from qlab.queues import redact

    urls = list(dict.fromkeys(urls))
    short = {u: label(u) for u in urls}
    taken = list(short.values())
    return {u: s if taken.count(s) == 1 else redact(u) for u, s in short.items()}


class RunQueues:
    """A fresh queue URL for each run of a sweep (see the module); ``prepare()`` checks,
    before any run, that the SQLite files are free and the Redis servers answer."""

    def __init__(self, specs: list[str], token: str | None = None) -> None:
        self.specs = specs
        self.token = token or secrets.token_hex(3)
        self.n = 0

    def __call__(self, spec: str) -> str:
        kind = _kind(spec)
        if kind == MEMORY:
            return MEMORY
        self.n += 1
        parts = urlsplit(spec)
        if kind == "sqlite":
            path = _sqlite_path(spec)
            new = path.with_name(f"{path.stem}-{self.n}{path.suffix}")
            return f"sqlite:///{new}" + (f"?{parts.query}" if parts.query else "")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        query["name"] = f"{query.get('name', 'qlab')}-{self.token}-{self.n}"
        return urlunsplit(parts._replace(query=urlencode(query)))

    def prepare(self) -> None:
        """Refuse files of an earlier sweep beside a SQLite URL's file; ping each Redis.

        Raises:
            ValueError: such files exist (the message names ``queue`` and a file).
            ConnectionError: a Redis server cannot be reached (the URL redacted).
        """
        from qlab.queues import redact
        from qlab.queues.urls import parse_redis

        for spec in self.specs:
            kind = _kind(spec)
            if kind == "sqlite":
                path = _sqlite_path(spec)
                pattern = re.compile(rf"{re.escape(path.stem)}-\d+{re.escape(path.suffix)}")
                folder = path.parent
                old = sorted(p.name for p in folder.glob("*") if pattern.fullmatch(p.name))
                if old:
                    raise ValueError(
                        f"queue {spec!r}: {str(folder / old[0])!r} exists; a sweep gives each "
                        f"run a fresh file {path.stem}-<n>{path.suffix} beside the one named: "
                        "remove the files of the earlier sweep or name another file"
                    )
            elif kind != MEMORY:
                import redis

                target = parse_redis(spec)[0]
                client = redis.Redis.from_url(target, socket_connect_timeout=3)
                try:
                    client.ping()
                except redis.RedisError as exc:
                    raise ConnectionError(
                        f"queue {redact(spec)!r}: cannot reach Redis ({exc})"
                    ) from exc
                finally:
                    client.close()


def _sqlite_path(url: str) -> Path:
    from qlab.queues.urls import parse_sqlite

    return parse_sqlite(url)[0]
