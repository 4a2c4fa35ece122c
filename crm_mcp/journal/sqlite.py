"""The journal in a local SQLite file (the default: one machine, no database server).

The file and its directory are created readable by their owner only (0600 / 0700): the journal
holds copies of customer records. SQLite's WAL and shared-memory files take the database file's
permissions.

Statements run one at a time per store, on the event loop when they can: a journaled write's
statements take 20-50 µs there, where a worker thread's round trip alone costs ~120 µs of CPU
(two per write). They run on a connection that never waits for a lock (busy timeout 0) and never
checkpoints by itself; a statement that finds the file locked (another process of the server, or
a statement already running in the thread) runs again in the worker thread, on a connection that
waits up to 10 s for the lock, and so does a purge (`bulk`: it may delete many rows). Every
`CHECKPOINT_EVERY` statements the worker thread checkpoints the WAL into the database (PASSIVE: it
waits for nobody), as SQLite would have done by itself on a commit.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

from anyio import to_thread

from crm_mcp.journal.schema import MIGRATIONS, VERSION_TABLE
from crm_mcp.journal.store import JournalStore, Row

T = TypeVar("T")

_LOCKED = object()  # a statement that found the file locked
CHECKPOINT_EVERY = 200  # statements on the event loop between checkpoints (SQLite's own: every 1000 WAL pages)


def default_journal_path() -> Path:
    """`journal.db` in the user's data directory."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("crm-mcp")) / "journal.db"


def create_private_file(path: Path) -> None:
    """Make sure `path` exists and only its owner can read or write it (and its new directory)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)  # an older file may have been created with wider permissions


class SqliteJournal(JournalStore):
    def __init__(self, path: str | Path, *, retention: timedelta, purge_interval: float = 3600.0) -> None:
        super().__init__(retention=retention, purge_interval=purge_interval)
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None  # the worker thread's: waits for locks, checkpoints
        self._quick: sqlite3.Connection | None = None  # the event loop's: never waits, never checkpoints
        self._lock = threading.Lock()
        self._since_checkpoint = 0

    def __repr__(self) -> str:
        return f"SqliteJournal({str(self.path)!r})"

    async def open(self) -> None:
        await to_thread.run_sync(self._open)

    def _open(self) -> None:
        create_private_file(self.path)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; a crash loses no committed page
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(VERSION_TABLE)
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            version = row[0] if row else 0
            for number, statements in MIGRATIONS:
                if number > version:
                    for statement in statements:
                        conn.execute(statement)
                    conn.execute("UPDATE schema_version SET version = ?", (number,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            conn.close()
            raise
        try:
            quick = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0)
            quick.execute("PRAGMA synchronous=NORMAL")
            quick.execute("PRAGMA wal_autocheckpoint=0")  # the worker thread checkpoints (`_run`)
        except BaseException:
            conn.close()
            raise
        self._conn, self._quick = conn, quick

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        quick, self._quick = self._quick, None
        if quick is not None:
            quick.close()
        if conn is not None:
            await to_thread.run_sync(conn.close)  # the last connection: SQLite checkpoints the WAL

    async def _run(self, work: Callable[[sqlite3.Connection], T], *, bulk: bool = False) -> T:
        conn, quick = self._conn, self._quick
        if conn is None or quick is None:
            raise RuntimeError("the journal store is not open")
        if not bulk and self._lock.acquire(blocking=False):
            try:
                result: Any = work(quick)
            except sqlite3.OperationalError as exc:
                if not _locked(exc):
                    raise
                result = _LOCKED  # nothing was written: wait for the lock in the worker thread, below
            finally:
                self._lock.release()
            if result is not _LOCKED:
                self._since_checkpoint += 1
                if self._since_checkpoint >= CHECKPOINT_EVERY:
                    self._since_checkpoint = 0
                    await to_thread.run_sync(self._checkpoint)
                return cast(T, result)

        def locked() -> T:
            with self._lock:
                return work(conn)

        return await to_thread.run_sync(locked)

    def _checkpoint(self) -> None:
        conn = self._conn
        with self._lock:
            if conn is not None:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    async def _execute(self, sql: str, args: Sequence[Any]) -> int:
        return await self._run(lambda conn: conn.execute(sql, tuple(args)).rowcount)

    async def _transaction(self, statements: Sequence[tuple[str, Sequence[Any]]], *, bulk: bool = False) -> list[int]:
        def work(conn: sqlite3.Connection) -> list[int]:
            conn.execute("BEGIN IMMEDIATE")
            try:
                counts = [conn.execute(sql, tuple(args)).rowcount for sql, args in statements]
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return counts

        return await self._run(work, bulk=bulk)

    async def _fetch(self, sql: str, args: Sequence[Any]) -> list[Row]:
        return await self._run(lambda conn: conn.execute(sql, tuple(args)).fetchall())

    async def schema_version(self) -> int:
        rows = await self._fetch("SELECT version FROM schema_version", ())
        return int(rows[0][0])


def _locked(exc: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED: another connection holds the lock the statement needs."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)
