"""The job database: one SQLite file in WAL mode, its schema, connections and error mapping.

Responsibilities: open `jobs.db` lazily, once per process and thread (a
connection inherited through fork is never used, nor closed, in the child);
set the pragmas that make a commit durable before it returns
(`journal_mode=WAL`, `synchronous=FULL`) and, for a new file, its page size
(`PAGE_SIZE`); create the schema; run short write
transactions (`BEGIN IMMEDIATE` … `COMMIT`) and translate SQLite's errors into
harunner's exception tree.

Invariants:
- Every write runs inside `Database.write()`: a failure anywhere rolls the
  whole transaction back, so a batch is all or nothing.
- `sequence` in table `meta` only grows; each write transaction reads it once,
  hands out the next numbers to the rows it changes and stores the new high
  mark in the same transaction, so a change feed never sees a number twice or
  out of order, even after rows are deleted.
- I/O errors (SQLITE_IOERR*, which include a failed fsync) raise
  `DurabilityError`; SQLITE_FULL raises `DiskFullError` after the rollback
  (the old state is intact); SQLITE_CORRUPT / SQLITE_NOTADB raise
  `CorruptFileError` naming the file: a damaged database is never reset.
- Waits for SQLite's write lock are bounded by `busy_timeout` (the store's
  lock timeout) and end in `LockTimeoutError`. They are ours, not SQLite's
  (`_patiently`): its busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ms between
  tries, while the runners' transactions last about a millisecond, so a
  waiter slept long after the lock was free; ours sleeps 50 µs doubling to 1 ms.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from harunner.errors import (
    CorruptFileError,
    DiskFullError,
    DurabilityError,
    LockTimeoutError,
    StoreError,
)
from harunner.failpoints import failpoint

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, name TEXT NOT NULL, state TEXT NOT NULL,
    generation INTEGER NOT NULL, owner_slot INTEGER, owner_incarnation INTEGER,
    attempts INTEGER NOT NULL, retries INTEGER NOT NULL, backoff REAL NOT NULL,
    timeout REAL, not_before REAL NOT NULL, created_at REAL NOT NULL,
    updated_at REAL NOT NULL, args TEXT NOT NULL, result TEXT, error TEXT,
    history TEXT NOT NULL, seq INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_by_seq ON jobs (seq);
CREATE INDEX IF NOT EXISTS jobs_by_state_due ON jobs (state, not_before, created_at, job_id);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_at, job_id);
CREATE INDEX IF NOT EXISTS jobs_by_finish ON jobs (state, updated_at);
"""

COMMIT_FAILPOINTS = ("store.db.before_commit", "store.db.after_commit")

_IOERR, _CORRUPT, _FULL, _NOTADB = 10, 11, 13, 26
_BUSY, _LOCKED = 5, 6
# Pages of a new database: a commit writes every page it changed to the WAL (a submission
# changes about 7: the row and five indexes and `meta`), so smaller pages mean fewer bytes
# to write and fsync per commit; a row larger than a page spills to overflow pages.
PAGE_SIZE = 1024
BUSY_PAUSE_FIRST = 0.00005  # the first sleep while SQLite is busy; doubled up to BUSY_PAUSE_MAX
BUSY_PAUSE_MAX = 0.001
T = TypeVar("T")

# Connections inherited through fork: kept referenced so that the child never closes
# (and so never checkpoints or unlocks) the parent's connection.
_inherited: list[sqlite3.Connection] = []


class Database:
    """The job database at `path`; one connection per process and thread, opened on first use."""

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._local = threading.local()

    def connection(self) -> sqlite3.Connection:
        """This process's and thread's connection; a fork or a new thread opens its own."""
        held = getattr(self._local, "held", None)
        if held is not None and held[0] == os.getpid():
            return held[1]  # type: ignore[no-any-return]
        if held is not None:
            _inherited.append(held[1])
        conn = self._open()
        self._local.held = (os.getpid(), conn)
        return conn

    def _open(self) -> sqlite3.Connection:
        with translated(self.path):
            conn = sqlite3.connect(self.path, timeout=0, isolation_level=None,
                                   check_same_thread=True)
            try:
                with contextlib.suppress(OSError):  # before -wal and -shm exist: they copy it
                    os.chmod(self.path, 0o600)
                conn.execute("PRAGMA busy_timeout=0")  # waits are ours: `_patiently`
                conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a new file only (else a no-op)
                mode = self._patiently(
                    lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
                if str(mode).lower() != "wal":
                    raise StoreError(f"{self.path}: SQLite refused WAL mode (got {mode}); "
                                     "put the state directory on a local disk")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA foreign_keys=OFF")
                self._patiently(lambda: self._create_schema(conn))
            except BaseException:
                conn.close()
                raise
        return conn

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        found = conn.execute("SELECT name FROM sqlite_master WHERE name='meta'").fetchone()
        if found is not None:
            version = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if version is not None and version[0] == SCHEMA_VERSION:
                return
            if version is not None:
                raise StoreError(f"{self.path}: schema version {version[0]}, this harunner "
                                 f"reads version {SCHEMA_VERSION}; upgrade harunner")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(str.strip, SCHEMA.split(";")):
                conn.execute(statement)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('sequence', 0)")
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    @contextlib.contextmanager
    def write(self) -> Iterator[Writer]:
        """A short write transaction: BEGIN IMMEDIATE, yield, COMMIT (fsynced); rollback if not."""
        conn = self.connection()
        with translated(self.path):
            self._patiently(lambda: conn.execute("BEGIN IMMEDIATE"))
            try:
                writer = Writer(conn)
                yield writer
                writer.store_sequence()
                failpoint("store.db.before_commit")
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        failpoint("store.db.after_commit")

    def read(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """All rows of one query (a snapshot of its own; never blocks on writers)."""
        conn = self.connection()
        with translated(self.path):
            return self._patiently(lambda: conn.execute(sql, parameters).fetchall())

    def _patiently(self, attempt: Callable[[], T]) -> T:
        """`attempt()`, tried again after short sleeps while SQLite is busy, for at most
        `busy_timeout` seconds (then SQLite's busy error, translated by the caller)."""
        deadline, pause = None, BUSY_PAUSE_FIRST
        while True:
            try:
                return attempt()
            except sqlite3.OperationalError as error:
                code = getattr(error, "sqlite_errorcode", None)
                if not isinstance(code, int) or code & 0xFF not in (_BUSY, _LOCKED):
                    raise
                now = time.monotonic()
                deadline = now + self.busy_timeout if deadline is None else deadline
                if now >= deadline:
                    raise
                time.sleep(min(pause, deadline - now))
                pause = min(pause * 2, BUSY_PAUSE_MAX)

    def close(self) -> None:
        """Close this thread's connection (if it was opened by this process)."""
        held = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None and held[0] == os.getpid():
            held[1].close()


class Writer:
    """The handle of one write transaction: statements and the next change numbers."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        row = conn.execute("SELECT value FROM meta WHERE key='sequence'").fetchone()
        self.sequence = int(row[0])
        self._start = self.sequence

    def next_seq(self) -> int:
        """The change number of the next row this transaction changes."""
        self.sequence += 1
        return self.sequence

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, parameters)

    def store_sequence(self) -> None:
        if self.sequence != self._start:
            self.conn.execute("UPDATE meta SET value=? WHERE key='sequence'", (self.sequence,))


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


@contextlib.contextmanager
def translated(path: Path) -> Iterator[None]:
    """Turn a sqlite3 error inside the block into the matching harunner error."""
    try:
        yield
    except sqlite3.Error as error:
        raise translate(error, path) from error


def translate(error: sqlite3.Error, path: Path) -> Exception:
    """The harunner error for SQLite's `error` on the database at `path`."""
    code = getattr(error, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary == _IOERR:
        return DurabilityError(f"{path}: I/O error from SQLite ({error}); the last change may "
                               "not be durable and the process must stop")
    if primary == _FULL:
        return DiskFullError(f"disk full while writing {path} ({error}); the previous state "
                             "is intact. Free some space and retry")
    if primary in (_CORRUPT, _NOTADB):
        return CorruptFileError(f"{path}: the job database is damaged ({error}); it was left "
                                "as it is: restore it from a backup, or move it away to start "
                                "with no jobs")
    if primary in (_BUSY, _LOCKED):
        return LockTimeoutError(f"{path}: the database's write lock was not acquired within "
                                "the lock timeout; its holder may be paused (SIGSTOP) or hung: "
                                "the supervisor kills a runner that stops beating")
    return StoreError(f"{path}: SQLite error ({error})")
