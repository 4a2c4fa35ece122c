"""The journal in a local SQLite file (the default: one machine, no database server).

The file and its directory are created readable by their owner only (0600 / 0700): the journal
holds copies of customer records. SQLite's WAL and shared-memory files take the database file's
permissions. Statements run in a worker thread, one at a time per store.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from anyio import to_thread

from crm_mcp.journal.schema import MIGRATIONS, VERSION_TABLE
from crm_mcp.journal.store import JournalStore, Row

T = TypeVar("T")


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
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

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
        self._conn = conn

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await to_thread.run_sync(conn.close)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise RuntimeError("the journal store is not open")

        def locked() -> T:
            with self._lock:
                return work(conn)

        return await to_thread.run_sync(locked)

    async def _execute(self, sql: str, args: Sequence[Any]) -> int:
        return await self._run(lambda conn: conn.execute(sql, tuple(args)).rowcount)

    async def _transaction(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        def work(conn: sqlite3.Connection) -> list[int]:
            conn.execute("BEGIN IMMEDIATE")
            try:
                counts = [conn.execute(sql, tuple(args)).rowcount for sql, args in statements]
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return counts

        return await self._run(work)

    async def _fetch(self, sql: str, args: Sequence[Any]) -> list[Row]:
        return await self._run(lambda conn: conn.execute(sql, tuple(args)).fetchall())

    async def schema_version(self) -> int:
        rows = await self._fetch("SELECT version FROM schema_version", ())
        return int(rows[0][0])
