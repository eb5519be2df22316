"""Claiming a Redis queue's jobs: what a consumer or a resumer takes over, and how.

A claim takes entries never read (``XREADGROUP ... >``: each goes to one consumer) and,
under a short claim lock, the entries of consumers that are gone (released their
lease, or were processes of this host that died: ``XCLAIM``) or whose lease expired
(idle past ``lease``: ``XAUTOCLAIM``). The running attempts of what it takes over are
recorded ``lost``, uncharged. A consumer that asks for a few jobs at a time reads new
entries only (one round trip), and looks for others' expired leases every third of a
lease and whenever no new entry is there. A consumer is deleted from the group only
once every entry it held was claimed (``XGROUP DELCONSUMER`` drops its pending list).

Example:
    >>> chunks
    5000
"""

from __future__ import annotations

import math
import pickle
import time
from typing import Any

from qlab.queues.redis_scripts import Writes
from qlab.queues.store import Claimed, Row, lost_row, owner_dead
from qlab.queues.urls import shown

__all__ = ["GROUP", "UNLOCK", "Claims", "chunks", "open_state"]

GROUP = "qlab"
chunks = 5000  # entries per command or script at most

# delete the claim lock if it is still the given holder's
UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def open_state(attempt: int, extra: int, due: float | None) -> str:
    """An open job's entry in the queue's state hash: ``0,attempt,extra,due`` (due in
    epoch seconds, empty for now); a job that ended has its status code alone.

    Example:
        >>> open_state(2, 1, None), open_state(3, 0, 1700000000.5)
        ('0,2,1,', '0,3,0,1700000000.5')
    """
    return f"0,{attempt},{extra},{'' if due is None else repr(due)}"


class Claims:
    """The claim half of :class:`qlab.queues.redis.RedisStore` (its keys and client)."""

    r: Any
    url: str
    owner: str
    lease: float
    eids: dict[int, Any]
    k_jobs: str
    k_state: str
    k_running: str
    k_attempts: str
    k_rows: str
    k_owners: str
    k_claim: str
    _swept: float = 0.0  # when this consumer last looked for others' leases
    _more: bool = False  # that look found as many as it asked for: look again at once
    _unlock: Any

    def write(self, w: Writes) -> None: ...  # the store's guarded write

    def claim(self, limit: int | None = None) -> Claimed:
        """Take over up to ``limit`` open jobs (all if None): entries never read, and
        those of owners whose lease is over or who are gone (under the claim lock);
        their running attempts are recorded ``lost``, uncharged. A consumer that asks
        for a few at a time reads new entries only (one round trip), and looks for
        others' gone or expired leases every third of a lease, or again at once while
        the last look found as many as it asked for."""
        if limit is not None and not self._more and time.monotonic() < self._swept + self.lease / 3:
            got = self.r.xreadgroup(GROUP, self.owner, {self.k_jobs: ">"}, count=limit)
            return self._fresh(got[0][1] if got else [])
        deadline = time.monotonic() + 60
        while not self.r.set(self.k_claim, self.owner, nx=True, px=20_000):
            holder = self.r.get(self.k_claim)  # a claimer killed mid-claim: take its lock
            if holder is not None and owner_dead(holder.decode()):
                self._unlock(keys=[self.k_claim], args=[holder])
            elif time.monotonic() > deadline:
                raise TimeoutError(f"queue {shown(self.url)}: the claim lock is held")
            else:
                time.sleep(0.01)
        try:
            self._swept = time.monotonic()
            c = self._claim(math.inf if limit is None else limit)
            self._more = limit is not None and len(c.ids) >= limit
            return c
        finally:
            self._unlock(keys=[self.k_claim], args=[self.owner])

    def _claim(self, limit: float) -> Claimed:
        r, now = self.r, time.time()
        owners = {k.decode(): float(v) for k, v in r.hgetall(self.k_owners).items()}
        live = {o for o, until in owners.items() if until > now and not owner_dead(o)}
        gone = [o for o in owners if o not in live]  # (this owner's lease is set anew)
        live.discard(self.owner)
        entries: list[tuple[bytes, dict]] = []
        held, drained = 0, set()
        for c in r.xinfo_consumers(self.k_jobs, GROUP):
            name, pending = c["name"].decode(), c["pending"]
            if name == self.owner:
                continue
            if name in live:
                held += pending
                continue
            want = int(min(pending, limit - len(entries)))
            if want == pending:
                drained.add(name)  # all its entries are ours now: forget the consumer
            if want <= 0:
                continue
            ids = [e["message_id"] for e in r.xpending_range(
                self.k_jobs, GROUP, "-", "+", want, consumername=name)]  # fmt: skip
            for i in range(0, len(ids), chunks):
                entries += r.xclaim(self.k_jobs, GROUP, self.owner, 0, ids[i : i + chunks])
        start = "0-0"
        while len(entries) < limit:  # entries idle past the lease (owners elsewhere)
            count = int(min(chunks, limit - len(entries)))
            start, got, *_ = r.xautoclaim(
                self.k_jobs, GROUP, self.owner, int(self.lease * 1000), start, count=count
            )
            entries += [e for e in got if e and e[1] and int(e[1][b"i"]) not in self.eids]
            if start in (b"0-0", "0-0"):
                break
        if len(entries) < limit:  # never read yet (enqueued, or a put cut short)
            rest = None if limit == math.inf else int(limit - len(entries))
            for _, got in r.xreadgroup(GROUP, self.owner, {self.k_jobs: ">"}, count=rest) or ():
                entries += got
        return self._take_over([e for e in entries if e and e[1]], held, gone, drained)

    def _fresh(self, entries: list) -> Claimed:
        """Entries read for the first time: no state, nothing ran (no round trip)."""
        c = Claimed()
        for eid, f in entries:
            job = int(f[b"i"])
            self.eids[job] = eid
            c.ids.append(job)
            c.submitted.append(float(f[b"s"]))
            c.payloads.append(pickle.loads(f[b"p"]))
        n = len(c.ids)
        c.attempts, c.extra, c.due = [1] * n, [0] * n, [None] * n
        return c

    def _take_over(self, entries: list, held: int, gone: list[str], drained: set[str]) -> Claimed:
        r, c = self.r, Claimed(held=held)
        ids = [int(f[b"i"]) for _, f in entries]
        p = r.pipeline(transaction=False)
        p.hmget(self.k_state, ids)
        p.hmget(self.k_running, ids)
        states, taken = p.execute() if ids else ([], [])
        lost: list[Row] = []
        acks, state = [], {}
        for (eid, f), job, st, t in zip(entries, ids, states, taken, strict=True):
            status, att, extra, due = 0, 1, 0, None
            if st is not None:
                parts = st.decode().split(",")
                status = int(parts[0])
                if len(parts) > 1:
                    att, extra = int(parts[1]), int(parts[2])
                    due = float(parts[3]) if parts[3] else None
            if status:  # ended, but not acked (not expected: both are one MULTI)
                acks.append(eid)
                continue
            if t is not None:
                at, _, who = t.decode().partition(" ")
                lost.append(lost_row(job, att + extra, float(at), float(at), who or "?"))
                extra += 1
                state[job] = open_state(att, extra, due)
            self.eids[job] = eid
            c.ids.append(job)
            c.attempts.append(att)
            c.extra.append(extra)
            c.due.append(due)
            c.submitted.append(float(f[b"s"]))
            c.payloads.append(pickle.loads(f[b"p"]))
        c.lost = len(lost)
        w = Writes()
        if lost:
            w.add("XADD", self.k_attempts, "*", "r", pickle.dumps(lost, pickle.HIGHEST_PROTOCOL))
            w.add("INCRBY", self.k_rows, len(lost))
            w.many(("HSET", self.k_state), [x for kv in state.items() for x in kv], per=2)
            w.many(("HDEL", self.k_running), [row[0] for row in lost])
        w.many(("XACK", self.k_jobs, GROUP), acks)
        w.many(("HDEL", self.k_owners), gone)  # owners whose lease is over or who died
        for o in drained:  # consumers whose every entry we hold now
            w.add("XGROUP", "DELCONSUMER", self.k_jobs, GROUP, o)
        w.add("HSET", self.k_owners, self.owner, time.time() + self.lease)
        self.write(w)
        return c
