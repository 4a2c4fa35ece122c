"""Fixtures of the journal tests: a real PostgreSQL server, journal stores on SQLite and on
PostgreSQL, and an API client for the sandbox CRM (a fresh consumer per test, full demo data)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from crm_mcp.client import ApideckClient
from crm_mcp.journal.factory import scope_for
from crm_mcp.journal.postgres import PostgresJournal
from crm_mcp.journal.sqlite import SqliteJournal
from crm_mcp.journal.store import JournalStore, Scope
from crm_mcp.journal.writes import WriteJournal
from crm_mcp.sandbox.server import SandboxServer

from .postgres_server import find_bindir, postgres_server
from .support import RETENTION


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server started for this session. Skipped only when PostgreSQL is not installed
    and CRM_MCP_REQUIRE_POSTGRES is not set (CI sets it, so there a missing server fails)."""
    bindir = find_bindir()
    if bindir is None:
        reason = "PostgreSQL is not installed (no initdb/pg_ctl; `apt-get install postgresql`)"
        if os.environ.get("CRM_MCP_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + ", and CRM_MCP_REQUIRE_POSTGRES=1")
        pytest.skip(reason)
    with postgres_server(bindir) as url:
        yield url


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[str]:
    """A URL whose journal starts empty: a fresh schema on the session's server, made the
    connection's search_path (asyncpg passes unknown URL parameters on as server settings)."""
    import asyncio

    import asyncpg

    name = f"journal_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(postgres_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f"CREATE SCHEMA {name}"))
    yield f"{postgres_url}?search_path={name}"
    asyncio.run(admin(f"DROP SCHEMA {name} CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Opens stores ("replicas") sharing one journal: the same SQLite file or PostgreSQL database."""
    target = str(tmp_path / "journal.db") if backend == "sqlite" else request.getfixturevalue("pg_database")

    def make(retention: timedelta = RETENTION) -> JournalStore:
        if backend == "sqlite":
            return SqliteJournal(target, retention=retention)
        return PostgresJournal(target, retention=retention)

    return make


@pytest.fixture
async def store(make_store) -> AsyncIterator[JournalStore]:  # type: ignore[no-untyped-def]
    async with make_store() as opened:
        yield opened


@pytest.fixture
def consumer() -> str:
    return f"journal-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def scope(consumer: str) -> Scope:
    return scope_for("test-app", "test-secret-key", consumer)


@pytest.fixture
async def crm(sandbox_server: SandboxServer, consumer: str) -> AsyncIterator[ApideckClient]:
    """The real API client against the sandbox over HTTP, as a fresh consumer (full demo data)."""
    async with ApideckClient("test-secret-key", "test-app", consumer, base_url=sandbox_server.base_url) as client:
        yield client


@pytest.fixture
def journal(store: JournalStore) -> WriteJournal:
    return WriteJournal(store, secrets=("test-secret-key",))
