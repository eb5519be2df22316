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
from qlab.queues.redis_scripts import (
    ADD,
    CREATE,
    ENQUEUE,
    GONE,
    GUARD,
    TOKENS,
    Writes,
    failing,
)
from qlab.queues.store import (
    COLUMNS,
    S_OK,
    Claimed,
    Row,
    Settled,
    StoreError,
    owner_dead,
    owner_id,
)
from qlab.queues.urls import parse_redis, redact, shown

__all__ = ["RedisQueue", "RedisStore"]


def entry(job: int) -> str:
    """The stream entry of job ``job``."""
    return f"{job + 1}-0"


class RedisStore(Claims):
    """A queue's jobs, leases and attempt rows in Redis (see the module).

    Raises:
        ValueError: a bad URL, or no queue of that name (``create=False``).
        ConnectionError: Redis cannot be reached (the message names the queue).
        StoreError: Redis failed a call (down, frozen past ``socket_timeout``, the
            queue's keys gone); every method raises it, naming the queue.
    """

    _add: Any  # the Lua scripts, registered in __init__
    _tokens: Any
    _enqueue: Any
    _guard: Any
    _create: Any

    def __init__(self, url: str, create: bool = False) -> None:
        import redis
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        target, name, self.lease = parse_redis(url)
        self.url = url
        self.owner = owner_id()
        self.eids: dict[int, Any] = {}  # job -> its stream entry (leased to this owner)
        self._created: str | None = None  # the queue's marker (its meta's `created`)
        self._run = False  # this store holds the queue's run key (a qlab.run's queue)
        try:  # one retry (a dropped connection), then the store has failed
            retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), 1)
            self.r = redis.Redis.from_url(target, retry=retry)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"queue {shown(url)}: {redact(str(exc))}") from exc
        try:
            self.r.ping()
        except redis.RedisError as exc:
            self.r.close()
            raise ConnectionError(f"queue {shown(url)}: cannot reach Redis ({exc})") from exc
        scripts = {"_add": ADD, "_unlock": UNLOCK, "_tokens": TOKENS, "_enqueue": ENQUEUE,
                   "_guard": GUARD, "_create": CREATE}  # fmt: skip
        for attr, script in scripts.items():
            setattr(self, attr, self.r.register_script(script))
        k = f"qlab:{name}:"
        self.k_jobs, self.k_state, self.k_running = k + "jobs", k + "state", k + "running"
        self.k_attempts, self.k_rows, self.k_dead = k + "attempts", k + "rows", k + "dead"
        self.k_meta, self.k_owners, self.k_claim = k + "meta", k + "owners", k + "claim"
        self.k_next, self.k_tat, self.k_run = k + "next", k + "tat", k + "run"
        try:
            there = self.r.exists(self.k_meta)
        except redis.RedisError as exc:
            self.r.close()
            raise StoreError(url, exc) from exc
        if not create and not there:
            self.r.close()
            raise ValueError(f"queue {shown(url)}: no queue named {name!r} there")

    def _mark(self) -> str:
        """The queue's marker; the store fails if it is gone."""
        if self._created is None:
            got = self.r.hget(self.k_meta, "created")
            if got is None:
                raise StoreError(self.url, GONE.split(" ", 1)[1])
            self._created = got.decode()
        return self._created

    def write(self, w: Writes) -> None:
        """Run ``w``'s commands in one guarded script (see :mod:`.redis_scripts`)."""
        if w.args:
            self._guard(keys=[self.k_meta], args=[self._mark(), *w.args])

    # -- the queue's writes ------------------------------------------------------------

    @failing
    def count(self) -> int:
        return self.r.xlen(self.k_jobs)

    @failing
    def claim_fresh(self, meta: dict[str, str]) -> tuple[int, str | None]:
        """Claim a fresh queue for a run in one script: ``(0, None)`` and the run key,
        meta and lease written; or what refuses it: the jobs it holds, or the live run
        that holds its run key (one of a dead process of this host is taken over)."""
        pairs = [x for kv in meta.items() for x in kv]
        for _ in range(2):
            args = [self.owner, time.time() + self.lease, int(self.lease * 1000), *pairs]
            held, holder = self._create(
                keys=[self.k_jobs, self.k_meta, self.k_owners, self.k_run], args=args
            )
            holder = holder.decode() if holder else None
            if holder is None or not owner_dead(holder):
                break
            self._unlock(keys=[self.k_run], args=[holder])  # its run died on this host
        if not held and holder is None:
            self._created, self._run = meta.get("created"), True
        return int(held), holder

    @failing
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

    @failing
    def meta(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.r.hgetall(self.k_meta).items()}

    @failing
    def add(self, first: int, blobs: list[bytes], submitted: float) -> None:
        for at in range(0, len(blobs), chunks):
            part = blobs[at : at + chunks]
            args = [self._mark(), GROUP, self.owner, first + at, repr(submitted), *part]
            self._add(keys=[self.k_jobs, self.k_next, self.k_meta], args=args)
        self.eids.update((job, entry(job)) for job in range(first, first + len(blobs)))

    @failing
    def enqueue(self, blobs: list[bytes], submitted: float) -> list[range]:
        """Add jobs that no consumer holds yet (any consumer's XREADGROUP may take
        them), a script per chunk; their ids, a range per chunk (producers that write
        at once interleave their chunks)."""
        ids = []
        for at in range(0, len(blobs), chunks):
            part = blobs[at : at + chunks]
            first = int(self._enqueue(keys=[self.k_jobs, self.k_next, self.k_meta],
                                      args=[self._mark(), repr(submitted), *part]))  # fmt: skip
            ids.append(range(first, first + len(part)))
        return ids

    @failing
    def taken(self, batch: Batch, t: float) -> None:
        w, mark = Writes(), f"{t!r} {self.owner}"
        w.many(("HSET", self.k_running), [x for job in batch.ids for x in (job, mark)], per=2)
        self.write(w)

    @failing
    def settled(self, s: Settled) -> None:
        rows, ok, ended, again, back = s.rows, s.ok, s.ended, s.again, s.back
        w = Writes()
        if rows:
            w.add("XADD", self.k_attempts, "*", "r", pickle.dumps(rows, pickle.HIGHEST_PROTOCOL))
            w.add("INCRBY", self.k_rows, len(rows))
        state = dict.fromkeys(ok, str(S_OK))
        state.update((job, str(code)) for job, code, _, _ in ended)
        done = list(state)
        for job, code, etype, msg in ended:
            if code == ST_FAILED:
                w.add("XADD", self.k_dead, "*", "i", job, "t", etype or "", "e", msg or "")
        state.update((job, open_state(a, x, d)) for job, a, x, d in again)
        w.many(("HSET", self.k_state), [x for kv in state.items() for x in kv], per=2)
        w.many(("HDEL", self.k_running), [*state, *back])
        w.many(("XACK", self.k_jobs, GROUP), [self.eids[job] for job in done if job in self.eids])
        self.write(w)
        for job in done:
            self.eids.pop(job, None)

    @failing
    def renew(self, until: float) -> None:
        w = Writes()
        w.add("HSET", self.k_owners, self.owner, until)
        eids = list(self.eids.values())
        w.many(("XCLAIM", self.k_jobs, GROUP, self.owner, 0), eids, tail=("JUSTID",))
        if self._run:
            w.add("PEXPIRE", self.k_run, int(self.lease * 1000))
        self.write(w)

    @failing
    def release(self) -> None:
        self.r.hdel(self.k_owners, self.owner)
        if self._run:
            self._unlock(keys=[self.k_run], args=[self.owner])
            self._run = False

    @failing
    def reserve_tokens(self, k: int, step: float, tolerance: float) -> list[float]:
        """``k`` tokens of the queue's shared bucket: each one's time, in seconds from
        the server's now (see :class:`qlab.engine.ratelimit.SharedLimiter`)."""
        got = self._tokens(keys=[self.k_tat], args=[repr(step), repr(tolerance), k])
        return [float(o) for o in got]

    @failing
    def claim(self, limit: int | None = None) -> Claimed:
        return Claims.claim(self, limit)

    @failing
    def unfinished(self) -> int:
        """Open jobs: entries read and not acked, and entries no consumer read yet."""
        info = next(g for g in self.r.xinfo_groups(self.k_jobs) if g["name"] == GROUP.encode())
        lag = info.get("lag")
        if lag is None:  # not known (Redis < 7): is any entry after the last read?
            after = b"(" + info["last-delivered-id"]
            lag = len(self.r.xrange(self.k_jobs, after, "+", count=1))
        return info["pending"] + lag

    @failing
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
