"""The Redis queue: ``queue="redis://127.0.0.1:6379/0?name=q"``, durable and shared.

Through redis-py, with streams and a consumer group (keys under ``qlab:{name}:``):

- ``jobs``: a stream, one entry per job (id, pickled payload, submission time), read
  by the group ``qlab``; each owner (a pool: a run, a resumer, a ``qlab.serve``
  consumer) is a consumer of the group. An entry pending for a consumer is that
  owner's lease: a run's ``put`` adds its jobs and reads them to itself in one script;
  ``qlab.enqueue`` only adds them (ids from ``next``), and consumers read them with
  XREADGROUP, a few at a time. The owner renews its leases (XCLAIM ... JUSTID resets
  the idle time, and its heartbeat in ``owners``) every third of ``lease``; a job that
  ends is XACKed. Others take over entries idle longer than ``lease`` (XAUTOCLAIM), and
  at once those of an owner that released its lease or was a process of this host that
  is gone (XCLAIM), under a short claim lock (:mod:`qlab.queues.redis_claim`).
- ``state`` (a hash: a job's status, next attempt, uncharged rows, due time),
  ``running`` (a hash: jobs taken and not settled, with their owner, found ``lost``
  when taken over), ``attempts`` (a stream, one entry per settlement: its rows, each
  naming its consumer, pickled), ``dead`` (a stream of the jobs that failed for good:
  the dead letters), ``meta``, ``owners``, ``next`` (the next job id), ``tat`` (the
  shared rate limit's bucket, see :class:`qlab.engine.ratelimit.SharedLimiter`).

Each put, batch taken and settlement is one round trip (a pipeline, MULTI/EXEC where
several keys change together). URL: ``redis://[:password@]host[:port][/db]`` or
``rediss://`` for TLS, with ``name=`` (default ``qlab``) and ``lease=`` (seconds,
default 10, >= 1); other query parameters go to redis-py.

Security: Redis has no authentication by default; give a password in the URL (or use
an ACL user) and ``rediss://`` across machines. Payloads and trace rows are pickled:
whoever can write to the queue can run code in every process that reads it. A queue
URL is a code-execution boundary.

Example:
    >>> import qlab
    >>> run = qlab.run(abs, [-1, -2], queue="redis://127.0.0.1:6379/0?name=doc")  # doctest: +SKIP
"""

from __future__ import annotations

import pickle
import time
from typing import Any

from qlab.core.batches import Batch
from qlab.core.codes import ST_FAILED
from qlab.queues.durable import DurableQueue
from qlab.queues.redis_claim import GROUP, UNLOCK, Claims, chunks, open_state
from qlab.queues.store import (
    COLUMNS,
    S_OK,
    Row,
    Settled,
    owner_id,
)
from qlab.queues.urls import parse_redis

__all__ = ["RedisQueue", "RedisStore"]

# put: add the jobs and read them to this owner (its lease), atomically, in one round
# trip (a script: redis-py packs one command much faster than thousands). Job j is the
# entry "j+1-0" (a fresh queue's ids only grow, so explicit entry ids are in order).
_ADD = """
local key, group, owner, first, sub = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
for i = 5, #ARGV do
  local job = string.format('%d', first + i - 5)
  redis.call('XADD', key, string.format('%d-0', first + i - 4), 'i', job, 'p', ARGV[i], 's', sub)
end
redis.call('SET', KEYS[2], string.format('%d', first + #ARGV - 4))
redis.call('XREADGROUP', 'GROUP', group, owner, 'COUNT', #ARGV - 4, 'STREAMS', key, '>')
return #ARGV - 4
"""

# enqueue: add jobs no consumer holds yet, ids from the queue's counter; the first id
_ENQUEUE = """
local key, sub, n = KEYS[1], ARGV[1], #ARGV - 1
local first = redis.call('INCRBY', KEYS[2], n) - n
for i = 2, #ARGV do
  local job = first + i - 2
  redis.call('XADD', key, string.format('%d-0', job + 1), 'i', string.format('%d', job),
             'p', ARGV[i], 's', sub)
end
return first
"""

# the rate limit shared by every consumer (GCRA, as qlab.engine.ratelimit.Limiter, on the
# server's clock): each token's time as seconds from now
_TOKENS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local step, tol, k = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local out = {}
for i = 1, k do
  local at = math.max(now, tat - tol)
  out[i] = string.format('%.6f', at - now)
  tat = math.max(tat, at) + step
end
local ttl = math.ceil((tat - now) * 1000) + 60000
redis.call('SET', KEYS[1], string.format('%.6f', tat), 'PX', ttl)
return out
"""


def entry(job: int) -> str:
    """The stream entry of job ``job``."""
    return f"{job + 1}-0"


class RedisStore(Claims):
    """A queue's jobs, leases and attempt rows in Redis (see the module).

    Raises:
        ValueError: a bad URL, or no queue of that name (``create=False``).
        ConnectionError: Redis cannot be reached (the message names the queue).
    """

    def __init__(self, url: str, create: bool = False) -> None:
        import redis

        from qlab.queues import redact

        target, name, self.lease = parse_redis(url)
        self.url = url
        self.owner = owner_id()
        self.eids: dict[int, Any] = {}  # job -> its stream entry (leased to this owner)
        try:
            self.r = redis.Redis.from_url(target, socket_connect_timeout=3)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"queue {redact(url)!r}: {exc}") from exc
        try:
            self.r.ping()
        except redis.RedisError as exc:
            self.r.close()
            raise ConnectionError(f"queue {redact(url)!r}: cannot reach Redis ({exc})") from exc
        self._add = self.r.register_script(_ADD)
        self._unlock = self.r.register_script(UNLOCK)
        self._tokens = self.r.register_script(_TOKENS)
        k = f"qlab:{name}:"
        self.k_jobs, self.k_state, self.k_running = k + "jobs", k + "state", k + "running"
        self.k_attempts, self.k_rows, self.k_dead = k + "attempts", k + "rows", k + "dead"
        self.k_meta, self.k_owners, self.k_claim = k + "meta", k + "owners", k + "claim"
        self.k_next, self.k_tat = k + "next", k + "tat"
        self._enqueue = self.r.register_script(_ENQUEUE)
        if not create and not self.r.exists(self.k_meta):
            self.r.close()
            raise ValueError(f"queue {redact(url)!r}: no queue named {name!r} there")

    # -- the queue's writes ------------------------------------------------------------

    def count(self) -> int:
        return self.r.xlen(self.k_jobs)

    def init(self, meta: dict[str, str], owner: bool = True) -> None:
        import redis

        try:
            self.r.xgroup_create(self.k_jobs, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:  # BUSYGROUP: made by a run that put nothing
            if "BUSYGROUP" not in str(exc):
                raise
        p = self.r.pipeline()
        p.hset(self.k_meta, mapping=meta)
        if owner:
            p.hset(self.k_owners, self.owner, time.time() + self.lease)
        p.execute()

    def meta(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.r.hgetall(self.k_meta).items()}

    def add(self, first: int, blobs: list[bytes], submitted: float) -> None:
        for at in range(0, len(blobs), chunks):
            part = blobs[at : at + chunks]
            args = [GROUP, self.owner, first + at, repr(submitted), *part]
            self._add(keys=[self.k_jobs, self.k_next], args=args)
        self.eids.update((job, entry(job)) for job in range(first, first + len(blobs)))

    def enqueue(self, blobs: list[bytes], submitted: float) -> list[range]:
        """Add jobs that no consumer holds yet (any consumer's XREADGROUP may take
        them), a script per chunk; their ids, a range per chunk (producers that write
        at once interleave their chunks)."""
        ids = []
        for at in range(0, len(blobs), chunks):
            part = blobs[at : at + chunks]
            first = int(
                self._enqueue(keys=[self.k_jobs, self.k_next], args=[repr(submitted), *part])
            )
            ids.append(range(first, first + len(part)))
        return ids

    def taken(self, batch: Batch, t: float) -> None:
        self.r.hset(self.k_running, mapping=dict.fromkeys(batch.ids, f"{t!r} {self.owner}"))

    def settled(self, s: Settled) -> None:
        rows, ok, ended, again, back = s.rows, s.ok, s.ended, s.again, s.back
        p = self.r.pipeline(transaction=True)
        if rows:
            p.xadd(self.k_attempts, {"r": pickle.dumps(rows, pickle.HIGHEST_PROTOCOL)})
            p.incrby(self.k_rows, len(rows))
        state = dict.fromkeys(ok, str(S_OK))
        state.update((job, str(code)) for job, code, _, _ in ended)
        done = list(state)
        for job, code, etype, msg in ended:
            if code == ST_FAILED:
                p.xadd(self.k_dead, {"i": job, "t": etype, "e": msg})
        state.update((job, open_state(a, x, d)) for job, a, x, d in again)
        if state:
            p.hset(self.k_state, mapping=state)
        settled = [*state, *back]
        if settled:
            p.hdel(self.k_running, *settled)
        acks = [self.eids[job] for job in done if job in self.eids]
        if acks:
            p.xack(self.k_jobs, GROUP, *acks)
        p.execute()
        for job in done:
            self.eids.pop(job, None)

    def renew(self, until: float) -> None:
        p = self.r.pipeline()
        p.hset(self.k_owners, self.owner, until)
        eids = list(self.eids.values())
        for i in range(0, len(eids), chunks):
            p.xclaim(self.k_jobs, GROUP, self.owner, 0, eids[i : i + chunks], justid=True)
        p.execute()

    def release(self) -> None:
        self.r.hdel(self.k_owners, self.owner)

    def reserve_tokens(self, k: int, step: float, tolerance: float) -> list[float]:
        """``k`` tokens of the queue's shared bucket: each one's time, in seconds from
        the server's now (see :class:`qlab.engine.ratelimit.SharedLimiter`)."""
        got = self._tokens(keys=[self.k_tat], args=[repr(step), repr(tolerance), k])
        return [float(o) for o in got]

    def unfinished(self) -> int:
        """Open jobs: entries read and not acked, and entries no consumer read yet."""
        info = next(g for g in self.r.xinfo_groups(self.k_jobs) if g["name"] == GROUP.encode())
        lag = info.get("lag")
        if lag is None:  # not known (Redis < 7): is any entry after the last read?
            after = b"(" + info["last-delivered-id"]
            lag = len(self.r.xrange(self.k_jobs, after, "+", count=1))
        return info["pending"] + lag

    def load(self) -> tuple[list[tuple[int, float, int]], list[Row]]:
        """Every job (id, submitted, status) and every attempt row."""
        r = self.r
        status = {int(k): int(v.split(b",")[0]) for k, v in r.hgetall(self.k_state).items()}
        jobs, rows = [], []
        for _, f in _scan(r, self.k_jobs):
            job = int(f[b"i"])
            jobs.append((job, float(f[b"s"]), status.get(job, 0)))
        for _, f in _scan(r, self.k_attempts):
            rows += pickle.loads(f[b"r"])
        rows = [row if len(row) == len(COLUMNS) else (*row, None) for row in rows]
        jobs.sort()
        return jobs, rows

    def close(self) -> None:
        self.r.close()


def _scan(r: Any, key: str) -> Any:
    """Every entry of a stream, read in chunks."""
    start = "-"
    while True:
        got = r.xrange(key, start, "+", count=chunks)
        yield from got
        if len(got) < chunks:
            return
        start = b"(" + got[-1][0]


class RedisQueue(DurableQueue):
    """A :class:`~qlab.queues.durable.DurableQueue` in Redis streams (see the module)."""

    store_class = RedisStore
    store: RedisStore

    def reserve_tokens(self, k: int, step: float, tolerance: float) -> list[float]:
        """The queue's shared rate limit (the pool's ``rate_limit=`` uses it)."""
        return self.store.reserve_tokens(k, step, tolerance)
