"""A SQLite queue's file: what may be opened as a queue, and how.

A directory, a missing or empty file (except for a run, which makes one), and a
read-only file or folder (except to read a finished queue) are refused with a
ValueError that names the queue and says which.

Example:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> check_file("sqlite:///" + folder, Path(folder), create=True, readonly=False)
    Traceback (most recent call last):
    ...
    ValueError: queue 'sqlite:///...': '...' is a directory, not a queue file
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from qlab.queues.urls import shown

__all__ = ["SCHEMA", "SCHEMA_VERSION", "check_file", "connect", "prepare"]

SCHEMA_VERSION = "2"
SCHEMA = """
CREATE TABLE IF NOT EXISTS qlab_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS qlab_jobs(
    id INTEGER PRIMARY KEY, payload BLOB NOT NULL, submitted REAL NOT NULL,
    status INTEGER NOT NULL DEFAULT 0, attempt INTEGER NOT NULL DEFAULT 1,
    extra INTEGER NOT NULL DEFAULT 0, due REAL, owner TEXT, taken REAL, claim INTEGER);
CREATE INDEX IF NOT EXISTS qlab_jobs_open ON qlab_jobs(id) WHERE status = 0;
CREATE INDEX IF NOT EXISTS qlab_jobs_claim ON qlab_jobs(claim) WHERE claim IS NOT NULL;
CREATE TABLE IF NOT EXISTS qlab_attempts(
    job_id INTEGER NOT NULL, attempt INTEGER NOT NULL, worker INTEGER, start REAL,
    end REAL, cpu REAL, outcome INTEGER NOT NULL, error_type TEXT, error TEXT, backoff REAL,
    throttle REAL, consumer TEXT);
CREATE TABLE IF NOT EXISTS qlab_owners(owner TEXT PRIMARY KEY, until REAL NOT NULL);
"""


def check_file(url: str, path: Path, create: bool, readonly: bool) -> None:
    """ValueError naming the queue if ``path`` cannot be its file: a directory, missing
    or empty (unless ``create``: a missing file, or an empty one as ``touch`` or
    ``mkstemp`` leaves, becomes a new queue), or read-only (unless ``readonly``)."""
    where = str(path)
    if path.is_dir():
        raise ValueError(f"queue {shown(url)}: {where!r} is a directory, not a queue file")
    exists = path.exists()
    if not create and not exists:
        raise ValueError(f"queue {shown(url)}: no queue file at {where!r}")
    if not create and path.stat().st_size == 0:
        raise ValueError(f"queue {shown(url)}: {where!r} is an empty file (0 bytes), not a qlab "
                         "queue")  # fmt: skip
    if readonly:
        return
    folder = path.parent if str(path.parent) else Path(".")
    if create and not exists:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"queue {shown(url)}: cannot make its folder ({exc})") from exc
    # WAL mode writes the -wal and -shm files beside the queue file
    if not os.access(folder, os.W_OK) or (exists and not os.access(path, os.W_OK)):
        raise ValueError(
            f"queue {shown(url)}: {where!r} is read-only (a read-only disk, or no write "
            "permission): a run or a resume writes to its queue; qlab.load_run(url) only reads"
        )


def connect(path: Path, timeout: float, readonly: bool) -> sqlite3.Connection:
    """A connection to the queue file (autocommit: transactions are explicit); a
    ``readonly`` one (``mode=ro``, or ``immutable=1`` where SQLite cannot share the
    file read-only: a WAL file on a read-only disk)."""
    if not readonly:
        return sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    uri = f"file:{quote(str(path.resolve()))}"
    try:  # read-only; a finished WAL queue on a read-only disk: immutable
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None,
                             check_same_thread=False)  # fmt: skip
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None,
                               check_same_thread=False)  # fmt: skip


def prepare(db: sqlite3.Connection, url: str, create: bool, readonly: bool, sync: str) -> set:
    """The file's tables, once it is known to be a qlab queue (or a new file, with
    ``create``), in WAL mode with ``synchronous=sync`` unless ``readonly``."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    if (tables and "qlab_meta" not in tables) or (not tables and not create):
        raise ValueError(f"queue {shown(url)}: the file is a database, not a qlab queue")
    if not readonly:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={sync}")
    return tables
