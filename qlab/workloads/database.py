"""``sqlite_write``: inserts into one SQLite database in WAL mode, one writer at a time.

What it contends on: SQLite's write lock. In WAL mode readers never block, but only one
connection writes at a time: ``BEGIN IMMEDIATE`` takes the lock, the insert and the
durable commit (``synchronous=FULL``: the log is synced to disk) run under it, and the
other writers wait (``timeout`` 60 s). So the write is the serial fraction of each job:
with ``ms`` milliseconds of other work outside the transaction, σ of the Universal
Scalability Law comes out near the write's share of the job, write / (write + ms), on
threads and processes alike (the sqlite3 module releases the GIL while SQLite works).
Waiting writers do not queue, though: a writer that finds the lock taken sleeps in
SQLite's busy handler (1, 2, 5, 10 ms ...) and tries again, so under heavy contention a
short write costs its waiters more than its own duration, and throughput can fall below
the one-writer ceiling (the USL shows that as κ, or as a σ above the write's share).

Without ``path``, the database lives in a temporary folder that the workload creates
when the pool opens it and deletes when the pool closes it (see
:mod:`qlab.workloads.owned`); worker processes open the same file.

Example:
    >>> from qlab.workloads import sqlite_write
    >>> with sqlite_write(rows=3) as db:
    ...     [db(job) for job in range(4)], db.count()
    ([3, 3, 3, 3], 12)
"""

from __future__ import annotations

import functools
import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from typing import Any

from qlab.core.context import cancellable_sleep
from qlab.workloads.checks import number
from qlab.workloads.owned import Owned, Stop

__all__ = ["sqlite_write"]

_TABLE = "CREATE TABLE IF NOT EXISTS qlab_writes (job TEXT NOT NULL, row INTEGER NOT NULL)"
_INSERT = "INSERT INTO qlab_writes (job, row) VALUES (?, ?)"
_BUSY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class sqlite_write(Owned):
    """Waits ``ms``, then inserts ``rows`` rows (job, row number) in one transaction;
    returns the number of rows written.

    Args:
        path: the database file (created with its table if missing, kept afterwards);
            None: a temporary database, deleted when the pool closes.
        rows: rows inserted per job, in one transaction.
        ms: milliseconds of other work per job, outside the transaction (a sleep).

    Raises:
        ValueError: ``rows`` < 1, ``ms`` < 0, or a ``path`` in a folder that does not exist.
    """

    path: str | None = None
    rows: int = 1
    ms: float = 0.0

    def __post_init__(self) -> None:
        number("sqlite_write", "rows", self.rows, low=1, integer=True)
        number("sqlite_write", "ms", self.ms, low=0)
        if self.path is not None:
            folder = os.path.dirname(os.path.abspath(os.fspath(self.path)))
            if not os.path.isdir(folder):
                raise ValueError(
                    f"sqlite_write: path must be in an existing folder, got {self.path!r}"
                )

    def _start(self) -> tuple[Any, Stop | None]:
        if self.path is not None:
            _create(os.fspath(self.path))
            return os.fspath(self.path), None
        folder = tempfile.mkdtemp(prefix="qlab-sqlite-")
        database = os.path.join(folder, "qlab.db")
        _create(database)
        return database, functools.partial(shutil.rmtree, folder, ignore_errors=True)

    def _connect(self, location: str) -> sqlite3.Connection:
        # autocommit mode: the transaction is ours to begin; the connection is used by one
        # thread, but closed by another when the pool closes
        conn = sqlite3.connect(
            location, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def __call__(self, payload: Any) -> int:
        conn = self._client()
        if self.ms:
            cancellable_sleep(self.ms / 1000)
        job = str(payload)
        conn.execute("BEGIN IMMEDIATE")  # take the write lock now, not at the first write
        try:
            conn.executemany(_INSERT, ((job, i) for i in range(self.rows)))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return self.rows

    def count(self) -> int:
        """Rows in the database now (starting it if need be)."""
        with sqlite3.connect(self._ensure(), timeout=_BUSY_TIMEOUT_S) as conn:
            (n,) = conn.execute("SELECT count(*) FROM qlab_writes").fetchone()
        conn.close()
        return n


def _create(database: str) -> None:
    conn = sqlite3.connect(database, timeout=_BUSY_TIMEOUT_S)
    try:
        conn.execute("PRAGMA journal_mode=WAL")  # persistent: every connection gets WAL
        conn.execute(_TABLE)
        conn.commit()
    finally:
        conn.close()
