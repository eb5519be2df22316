"""The Redis queue's scripts, and its guarded writes: each lands only while the queue
is still there.

A Redis that restarts empty mid-run (no persistence, or a failover to an empty
replica) must not receive the rest of the run's writes: they would leave keys that a
later queue of that name takes for its own. So every write of a store is a list of
commands run by one script (:data:`GUARD`, atomic as MULTI/EXEC, in one round trip)
that first checks the queue's marker, its meta's ``created`` value, and writes nothing
if it is gone; the store then fails (:class:`qlab.queues.store.StoreError`).

Every Redis error of a store's call is a ``StoreError`` naming the queue (see
:func:`failing`), its password redacted.

Example:
    >>> w = Writes()
    >>> w.add("HSET", "k", "f", 1)
    >>> w.many(("HDEL", "k"), ["a", "b", "c"])
    >>> w.args
    [4, 'HSET', 'k', 'f', 1, 5, 'HDEL', 'k', 'a', 'b', 'c']
    >>> w.many(("HDEL", "k"), list(range(4001)))   # a command per 4,000 words at most
    >>> len(w.args) - 11
    4007
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from qlab.queues.store import StoreError

__all__ = ["ADD", "CREATE", "ENQUEUE", "GONE", "GUARD", "TOKENS", "Writes", "failing"]

GONE = "QLABGONE the queue's keys are gone from the server (did it restart empty?)"

# KEYS[1]: the queue's meta; ARGV[1]: its `created`; then each command as its length
# and its words. Nothing is written unless the marker is there.
GUARD = """
if redis.call('HGET', KEYS[1], 'created') ~= ARGV[1] then return redis.error_reply(GONE) end
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 1
""".replace("GONE", repr(GONE))

# put: add the jobs and read them to this owner (its lease), atomically, in one round
# trip (a script: redis-py packs one command much faster than thousands). Job j is the
# entry "j+1-0" (a fresh queue's ids only grow, so explicit entry ids are in order).
ADD = """
if redis.call('HGET', KEYS[3], 'created') ~= ARGV[1] then return redis.error_reply(GONE) end
local key, group, owner, first, sub = KEYS[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
for i = 6, #ARGV do
  local job = string.format('%d', first + i - 6)
  redis.call('XADD', key, string.format('%d-0', first + i - 5), 'i', job, 'p', ARGV[i], 's', sub)
end
redis.call('SET', KEYS[2], string.format('%d', first + #ARGV - 5))
redis.call('XREADGROUP', 'GROUP', group, owner, 'COUNT', #ARGV - 5, 'STREAMS', key, '>')
return #ARGV - 5
""".replace("GONE", repr(GONE))

# enqueue: add jobs no consumer holds yet, ids from the queue's counter; the first id
ENQUEUE = """
if redis.call('HGET', KEYS[3], 'created') ~= ARGV[1] then return redis.error_reply(GONE) end
local key, sub, n = KEYS[1], ARGV[2], #ARGV - 2
local first = redis.call('INCRBY', KEYS[2], n) - n
for i = 3, #ARGV do
  local job = first + i - 3
  redis.call('XADD', key, string.format('%d-0', job + 1), 'i', string.format('%d', job),
             'p', ARGV[i], 's', sub)
end
return first
""".replace("GONE", repr(GONE))

# claim a fresh queue for a run, atomically: refused if it holds jobs or another run
# holds its run key; else the run key (expiring with the lease), the meta, the lease
CREATE = """
local held = redis.call('XLEN', KEYS[1])
if held > 0 then return {held, ''} end
local holder = redis.call('GET', KEYS[4])
if holder and holder ~= ARGV[1] then return {0, holder} end
redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[3])
redis.call('HSET', KEYS[2], unpack(ARGV, 4, #ARGV))
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.pcall('XGROUP', 'CREATE', KEYS[1], 'qlab', '0', 'MKSTREAM')
return {0, ''}
"""

# the rate limit shared by every consumer (GCRA, as qlab.engine.ratelimit.Limiter, on the
# server's clock): each token's time as seconds from now
TOKENS = """
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

_PER = 4000  # words per command at most (Lua's unpack is bounded)


class Writes:
    """Commands for one :data:`GUARD` script: ``args`` are its ARGV after the marker."""

    def __init__(self) -> None:
        self.args: list[Any] = []

    def add(self, *words: Any) -> None:
        """One command."""
        self.args += [len(words), *words]

    def many(
        self, head: Sequence[Any], items: Sequence[Any], per: int = 1, tail: Sequence[Any] = ()
    ) -> None:
        """``head + items + tail`` as several commands of at most a few thousand words
        each (``per``: words that go together, as a hash's field and value); none if
        there is no item."""
        step = max(per, _PER // per * per)
        for at in range(0, len(items), step):
            self.add(*head, *items[at : at + step], *tail)


def failing(method: Callable[..., Any]) -> Callable[..., Any]:
    """A store method whose Redis errors are StoreErrors naming its queue (the
    script's :data:`GONE` says the queue's keys vanished)."""

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        import redis

        try:
            return method(self, *args, **kwargs)
        except redis.RedisError as exc:
            cause = GONE.split(" ", 1)[1] if "QLABGONE" in str(exc) else exc
            raise StoreError(self.url, cause) from exc

    return call
