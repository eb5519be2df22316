"""The SQLite queue: ``queue="sqlite:///runs/q.db"``, a durable queue in one file.

Jobs (payloads pickled), leases, and every attempt's row live in one SQLite file, in
WAL mode; each write is one ``BEGIN IMMEDIATE`` transaction per put, per batch taken
and per settlement (never one per job), so the queue is not bound by one fsync per
job. URL parameters:

- ``synchronous=normal`` (default) or ``full``: with ``normal`` (WAL) a committed
  settlement survives the process being killed, but the last transactions before a
  power loss or an OS crash may be lost (they run again on resume); ``full`` syncs
  the WAL at every commit and survives those too, at the cost of an fsync per
  transaction.
- ``lease=10``: seconds an owner's lease lasts without renewal (>= 1; renewed every
  third of it while the pool lives). A resumer takes over jobs whose owner's lease
  expired, or at once if the owner was a process of this host that is gone.
- ``timeout=30``: seconds to wait for another process's write lock.

Several processes of one host may use one file at once (resumers, ``qlab.serve``
consumers, ``qlab.enqueue`` producers): each claim marks the rows it takes with its
token in one ``BEGIN IMMEDIATE`` transaction, so no two take a job. Not over a network
file system (SQLite's locks are not reliable there).

``sqlite:///runs/q.db`` is the relative path ``runs/q.db``; ``sqlite:////tmp/q.db``
is absolute. A queue file is a code-execution boundary: payloads are pickled, so open
only files you trust.

Example:
    >>> import os, tempfile, qlab
    >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "q.db")
    >>> run = qlab.run(abs, range(-3, 0), workers=2, queue=url)
    >>> qlab.resume(url, abs).summary()[["jobs", "ok"]].tolist()
    [3, 3]
"""

from __future__ import annotations

import contextlib
import itertools
import pickle
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

from qlab.core.batches import Batch
from qlab.queues.durable import DurableQueue
from qlab.queues.sqlite_files import SCHEMA, SCHEMA_VERSION, check_file, connect, prepare
from qlab.queues.store import (
    S_OK,
    Claimed,
    Row,
    Settled,
    StoreError,
    lost_row,
    owner_dead,
    owner_id,
)
from qlab.queues.urls import parse_sqlite, shown

__all__ = ["SQLiteQueue", "SQLiteStore"]

_INSERT_ROWS = "INSERT INTO qlab_attempts VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"


class SQLiteStore:
    """A queue's jobs, leases and attempt rows in one SQLite file (WAL).

    One connection, used under the queue's lock (or by one thread); every write is
    one ``BEGIN IMMEDIATE`` transaction. ``readonly``: only read it (``load_run``: a
    finished queue on a read-only disk still loads).

    Raises:
        ValueError: a bad URL, a directory, a missing or empty file (``create=False``),
            a read-only file (unless ``readonly``), or a file that is not a qlab queue
            (corrupt, or another program's database); each names the queue.
        StoreError: the store failed while it was read or written.
    """

    def __init__(self, url: str, create: bool = False, readonly: bool = False) -> None:
        path, opts = parse_sqlite(url)
        self.url, self.path = url, path
        self.lease = opts["lease"]
        self.owner = owner_id()
        self._claims = itertools.count(1)
        check_file(url, path, create, readonly)
        try:
            self.db = connect(path, opts["timeout"], readonly)
        except sqlite3.Error as exc:
            raise ValueError(f"queue {shown(url)}: cannot open {str(path)!r} ({exc})") from exc
        try:
            tables = prepare(self.db, url, create, readonly, opts["synchronous"])
            if not tables:  # a new queue: the schema
                self._tx(lambda db: [db.execute(sql) for sql in SCHEMA.split(";") if sql.strip()])
            elif (schema := self.meta().get("schema")) not in (None, SCHEMA_VERSION):
                raise ValueError(
                    f"queue {shown(url)}: made by another qlab version (schema {schema}, "
                    f"expected {SCHEMA_VERSION})"
                )
        except sqlite3.DatabaseError as exc:
            self.db.close()
            if isinstance(exc, sqlite3.OperationalError):  # full, locked...: not its content
                if "readonly" in str(exc):
                    raise ValueError(f"queue {shown(url)}: {str(path)!r} is read-only") from exc
                raise StoreError(url, exc) from exc
            raise ValueError(
                f"queue {shown(url)}: {str(path)!r} is not a qlab queue ({exc})"
            ) from exc
        except BaseException:
            self.db.close()
            raise

    @contextlib.contextmanager
    def _failing(self) -> Iterator[None]:
        """A SQLite error is a :class:`StoreError` naming the queue."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(self.url, exc) from exc

    def _tx(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``work`` in one BEGIN IMMEDIATE transaction."""
        db = self.db
        with self._failing():
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        return result

    def _read(self, sql: str, args: Any = ()) -> list:
        with self._failing():
            return self.db.execute(sql, args).fetchall()

    def claim_fresh(self, meta: dict[str, str]) -> tuple[int, str | None]:
        """Claim a fresh queue for a run, in one transaction: ``(0, None)`` and the
        run's meta and lease written, or what refuses it (nothing written): the jobs it
        holds, or the live owner that uses it."""
        meta = {**meta, "schema": SCHEMA_VERSION}
        until = time.time() + self.lease

        def work(db: sqlite3.Connection) -> tuple[int, str | None]:
            held = db.execute("SELECT count(*) FROM qlab_jobs").fetchone()[0]
            if held:
                return held, None
            for owner, alive in db.execute("SELECT owner, until FROM qlab_owners").fetchall():
                if owner != self.owner and alive > time.time() and not owner_dead(owner):
                    return 0, owner
            db.executemany("INSERT OR REPLACE INTO qlab_meta VALUES (?, ?)", meta.items())
            db.execute("INSERT OR REPLACE INTO qlab_owners VALUES (?, ?)", (self.owner, until))
            return 0, None

        return self._tx(work)

    # -- the queue's writes ------------------------------------------------------------

    def count(self) -> int:
        return self._read("SELECT count(*) FROM qlab_jobs")[0][0]

    def init(self, meta: dict[str, str], owner: bool = True) -> None:
        meta = {**meta, "schema": SCHEMA_VERSION}
        until = time.time() + self.lease

        def work(db: sqlite3.Connection) -> None:
            db.executemany("INSERT OR REPLACE INTO qlab_meta VALUES (?, ?)", meta.items())
            if owner:
                db.execute("INSERT OR REPLACE INTO qlab_owners VALUES (?, ?)", (self.owner, until))

        self._tx(work)

    def meta(self) -> dict[str, str]:
        return dict(self._read("SELECT key, value FROM qlab_meta"))

    def add(self, first: int, blobs: list[bytes], submitted: float) -> None:
        rows = ((first + i, blob, submitted, self.owner) for i, blob in enumerate(blobs))
        sql = "INSERT INTO qlab_jobs(id, payload, submitted, owner) VALUES (?, ?, ?, ?)"
        self._tx(lambda db: db.executemany(sql, rows))

    def enqueue(self, blobs: list[bytes], submitted: float) -> list[range]:
        """Add jobs that no owner holds yet (any consumer may claim them); their ids."""
        sql = "INSERT INTO qlab_jobs(id, payload, submitted) VALUES (?, ?, ?)"

        def work(db: sqlite3.Connection) -> list[range]:
            first = db.execute("SELECT coalesce(max(id), -1) + 1 FROM qlab_jobs").fetchone()[0]
            db.executemany(sql, ((first + i, b, submitted) for i, b in enumerate(blobs)))
            return [range(first, first + len(blobs))]

        return self._tx(work)

    def taken(self, batch: Batch, t: float) -> None:
        ids = batch.ids
        if isinstance(ids, range) and ids.step == 1:
            sql = "UPDATE qlab_jobs SET taken = ? WHERE id BETWEEN ? AND ?"
            self._tx(lambda db: db.execute(sql, (t, ids.start, ids.stop - 1)))
        else:
            sql = "UPDATE qlab_jobs SET taken = ? WHERE id = ?"
            self._tx(lambda db: db.executemany(sql, ((t, job) for job in ids)))

    def settled(self, s: Settled) -> None:
        rows, ok, ended, again, back = s.rows, s.ok, s.ended, s.again, s.back

        def work(db: sqlite3.Connection) -> None:
            if rows:
                db.executemany(_INSERT_ROWS, rows)
            if isinstance(ok, range) and len(ok):
                db.execute(
                    "UPDATE qlab_jobs SET status = ?, taken = NULL WHERE id BETWEEN ? AND ?",
                    (S_OK, ok.start, ok.stop - 1),
                )
            elif ok:
                db.executemany(
                    "UPDATE qlab_jobs SET status = ?, taken = NULL WHERE id = ?",
                    ((S_OK, job) for job in ok),
                )
            if ended:
                db.executemany(
                    "UPDATE qlab_jobs SET status = ?, taken = NULL WHERE id = ?",
                    ((code, job) for job, code, _, _ in ended),
                )
            if again:
                db.executemany(
                    "UPDATE qlab_jobs SET attempt = ?, extra = ?, due = ?, taken = NULL "
                    "WHERE id = ?",
                    ((att, extra, due, job) for job, att, extra, due in again),
                )
            if back:
                db.executemany(
                    "UPDATE qlab_jobs SET taken = NULL WHERE id = ?", ((j,) for j in back)
                )

        self._tx(work)

    def renew(self, until: float) -> None:
        sql = "INSERT OR REPLACE INTO qlab_owners VALUES (?, ?)"
        self._tx(lambda db: db.execute(sql, (self.owner, until)))

    def release(self) -> None:
        sql = "DELETE FROM qlab_owners WHERE owner = ?"
        self._tx(lambda db: db.execute(sql, (self.owner,)))

    # -- resume --------------------------------------------------------------------------

    def claim(self, limit: int | None = None) -> Claimed:
        """Take over up to ``limit`` open jobs (all if None) that no live lease covers:
        jobs no one claimed yet, and those whose owner's lease is over (or whose owner
        died on this host); their running attempts are recorded ``lost``, uncharged."""
        return self._tx(lambda db: self._claim(db, -1 if limit is None else limit))

    def _claim(self, db: sqlite3.Connection, limit: int) -> Claimed:
        now = time.time()
        owners = dict(db.execute("SELECT owner, until FROM qlab_owners"))
        live = sorted(o for o, until in owners.items() if until > now and not owner_dead(o))
        others = [o for o in live if o != self.owner]
        c = Claimed()
        marks = ",".join("?" * len(others))
        c.held = db.execute(f"SELECT count(*) FROM qlab_jobs WHERE status = 0 AND owner IN "
                            f"({marks})", others).fetchone()[0]  # fmt: skip
        # open jobs under no live lease, not ours already: marked with this claim's
        # token (a few set-wide statements, not one per job)
        token = next(self._claims)
        free = f"status = 0 AND (owner IS NULL OR owner NOT IN ({marks + ',?' if marks else '?'}))"
        db.execute(
            f"UPDATE qlab_jobs SET claim = ? WHERE id IN "
            f"(SELECT id FROM qlab_jobs WHERE {free} ORDER BY id LIMIT ?)",
            [token, *others, self.owner, limit],
        )
        lost: list[Row] = []
        sql = "SELECT id, attempt, extra, owner, taken FROM qlab_jobs WHERE claim = ? AND taken > 0"
        for job, att, extra, owner, taken in db.execute(sql, (token,)).fetchall():
            # it ran when its owner stopped: lost, and not charged (extra counts it)
            seen = max(owners.get(owner, taken) - self.lease, taken)
            lost.append(lost_row(job, att + extra, taken, seen, owner))
        c.lost = len(lost)
        db.executemany(_INSERT_ROWS, lost)
        db.executemany(
            "UPDATE qlab_jobs SET extra = extra + 1 WHERE id = ?", ((r[0],) for r in lost)
        )
        db.execute("UPDATE qlab_jobs SET owner = ?, taken = NULL WHERE claim = ?",
                   (self.owner, token))  # fmt: skip
        sql = "SELECT id, attempt, extra, due, submitted, payload FROM qlab_jobs WHERE claim = ?"
        for job, att, extra, due, sub, blob in db.execute(sql, (token,)):
            c.ids.append(job)
            c.attempts.append(att)
            c.extra.append(extra)
            c.due.append(due)
            c.submitted.append(sub)
            c.payloads.append(pickle.loads(blob))
        db.execute("UPDATE qlab_jobs SET claim = NULL WHERE claim = ?", (token,))
        gone = [(o,) for o in owners if o not in live]
        db.executemany("DELETE FROM qlab_owners WHERE owner = ?", gone)
        db.execute(
            "INSERT OR REPLACE INTO qlab_owners VALUES (?, ?)", (self.owner, now + self.lease)
        )
        return c

    def unfinished(self) -> int:
        return self._read("SELECT count(*) FROM qlab_jobs WHERE status = 0")[0][0]

    def load(self) -> tuple[list[tuple[int, float, int]], list[Row]]:
        """Every job (id, submitted, status) and every attempt row."""
        jobs = self._read("SELECT id, submitted, status FROM qlab_jobs ORDER BY id")
        return jobs, self._read("SELECT * FROM qlab_attempts")

    def close(self) -> None:
        self.db.close()


class SQLiteQueue(DurableQueue):
    """A :class:`~qlab.queues.durable.DurableQueue` in a SQLite file (see the module)."""

    store_class = SQLiteStore
    fresh = "file"

    @classmethod
    def open(cls, url: str, readonly: bool = False) -> SQLiteStore:
        """The store of an existing queue; ``readonly`` for ``load_run``."""
        return SQLiteStore(url, readonly=readonly)
