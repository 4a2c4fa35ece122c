"""The journal in PostgreSQL (when a database URL is configured), shared by server replicas.
Needs the `postgres` extra (`pip install 'unified-crm-mcp[postgres]'`).

Driver: asyncpg. It is maintained, asyncio-native (the server runs on asyncio), ships binary
wheels with no system libpq to install, and is the fastest PostgreSQL driver for Python, which
matters for a per-write cost target of a few milliseconds. Queries are written once with `?`
placeholders (see `crm_mcp.journal.store`) and numbered `$1, $2, ...` here.

Commits are asynchronous (`synchronous_commit = off` on the journal's own connections): a commit
is visible to every replica at once, so the undo claim still lets exactly one replica win, but
its flush to disk is not waited for. A crash of the database server may lose the last fraction
of a second of journal entries (never corrupt them), the same trade SQLite's WAL with
`synchronous=NORMAL` makes; waiting for the flush would cost a disk sync per write (about 10 ms
on this project's machines, against a 3 ms budget).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from functools import cache
from typing import Any

import asyncpg

from crm_mcp.journal.schema import MIGRATIONS, VERSION_TABLE
from crm_mcp.journal.store import JournalStore, Row

# Any constant: replicas starting together take this lock, so exactly one runs the migrations.
_MIGRATION_LOCK = 0x63726D6A  # "crmj"


@cache
def numbered(sql: str) -> str:
    """`?` placeholders as asyncpg's `$1, $2, ...` (the journal's SQL has no `?` in literals)."""
    counter = iter(range(1, 1000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


def _rowcount(status: str) -> int:
    """Rows changed, from a command status such as "UPDATE 1" or "INSERT 0 1"."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PostgresJournal(JournalStore):
    def __init__(
        self, url: str, *, retention: timedelta, purge_interval: float = 3600.0, max_connections: int = 10
    ) -> None:
        super().__init__(retention=retention, purge_interval=purge_interval)
        self._url = url
        self._max_connections = max_connections
        self._pool: asyncpg.Pool | None = None

    def __repr__(self) -> str:  # never the URL: it may hold a password
        return "PostgresJournal()"

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self._url,
            min_size=1,
            max_size=self._max_connections,
            server_settings={"synchronous_commit": "off", "application_name": "crm-mcp journal"},
        )
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(VERSION_TABLE)
            version = await conn.fetchval("SELECT version FROM schema_version")
            if version is None:
                await conn.execute("INSERT INTO schema_version (version) VALUES (0)")
                version = 0
            for number, statements in MIGRATIONS:
                if number > version:
                    for statement in statements:
                        await conn.execute(statement)
                    await conn.execute("UPDATE schema_version SET version = $1", number)

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def _ready(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the journal store is not open")
        return self._pool

    async def _execute(self, sql: str, args: Sequence[Any]) -> int:
        return _rowcount(await self._ready().execute(numbered(sql), *args))

    async def _transaction(self, statements: Sequence[tuple[str, Sequence[Any]]], *, bulk: bool = False) -> list[int]:
        async with self._ready().acquire() as conn, conn.transaction():
            return [_rowcount(await conn.execute(numbered(sql), *args)) for sql, args in statements]

    async def _execute_both(self, first: tuple[str, Sequence[Any]], second: tuple[str, Sequence[Any]]) -> None:
        # One statement (a data-modifying WITH), so one round trip and one transaction.
        (first_sql, first_args), (second_sql, second_args) = first, second
        await self._execute(f"WITH earlier AS ({first_sql}) {second_sql}", (*first_args, *second_args))

    async def _fetch(self, sql: str, args: Sequence[Any]) -> list[Row]:
        return [tuple(record) for record in await self._ready().fetch(numbered(sql), *args)]

    async def schema_version(self) -> int:
        return int(await self._ready().fetchval("SELECT version FROM schema_version"))
