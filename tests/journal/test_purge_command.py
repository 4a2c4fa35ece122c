"""`crm-mcp journal purge` and the journal's settings (CRM_MCP_JOURNAL_*)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from crm_mcp.cli import main
from crm_mcp.config import ConfigError, settings_from_env
from crm_mcp.journal.factory import scope_for, store_from_settings
from crm_mcp.journal.postgres import PostgresJournal
from crm_mcp.journal.sqlite import SqliteJournal
from crm_mcp.journal.store import JournalStore

from .test_store import a_change


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("APIDECK_API_KEY", "APIDECK_APP_ID", "APIDECK_CONSUMER_ID", "APIDECK_BASE_URL",
                 "CRM_MCP_JOURNAL_DATABASE_URL", "CRM_MCP_JOURNAL_PATH", "CRM_MCP_JOURNAL_RETENTION_DAYS"):
        monkeypatch.delenv(name, raising=False)  # fmt: skip
    return monkeypatch


def fill(store: JournalStore) -> None:
    """One change of today and one of ten days ago."""
    scope = scope_for("app", "key", "consumer")

    async def go() -> None:
        async with store:
            await store.record(a_change(scope))  # the first write purges (nothing old yet)
            await store.record(a_change(scope, created_at=time.time() - 10 * 86400))

    anyio.run(go)


def test_purge_removes_what_is_past_the_retention_then_all_on_request(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "journal.db"
    clean_env.setenv("CRM_MCP_JOURNAL_PATH", str(path))
    fill(SqliteJournal(path, retention=timedelta(days=30)))

    assert main(["journal", "purge"]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"crm-mcp: journal purged (entries older than 7 days) in SQLite {path}: removed 1 change and 0 "
        "retry-window entries."
    )
    assert main(["journal", "purge", "--all"]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"crm-mcp: journal purged (every entry) in SQLite {path}: removed 1 change and 0 retry-window entries."
    )


@pytest.mark.slow
def test_purge_on_postgresql_never_prints_the_database_url(
    clean_env: pytest.MonkeyPatch, pg_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = pg_database.replace("postgres@", "postgres:hunter22@")  # trust auth ignores the password
    clean_env.setenv("CRM_MCP_JOURNAL_DATABASE_URL", url)
    clean_env.setenv("CRM_MCP_JOURNAL_RETENTION_DAYS", "5")
    fill(PostgresJournal(url, retention=timedelta(days=30)))

    assert main(["journal", "purge"]) == 0
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        "crm-mcp: journal purged (entries older than 5 days) in PostgreSQL (CRM_MCP_JOURNAL_DATABASE_URL): "
        "removed 1 change and 0 retry-window entries."
    )
    assert "hunter22" not in err


def test_purge_reports_an_unreachable_database_without_its_password(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("CRM_MCP_JOURNAL_DATABASE_URL", "postgresql://u:hunter22@127.0.0.1:1/db")
    assert main(["journal", "purge"]) == 1
    err = capsys.readouterr().err
    assert "crm-mcp: cannot purge the journal in PostgreSQL (CRM_MCP_JOURNAL_DATABASE_URL): " in err
    assert "hunter22" not in err


def test_journal_settings_from_the_environment() -> None:
    url = "postgresql://u:s3cret-pw@db:5432/crm"
    settings = settings_from_env({"CRM_MCP_JOURNAL_DATABASE_URL": url, "CRM_MCP_JOURNAL_RETENTION_DAYS": "2.5"})
    assert settings.journal_retention_days == 2.5
    assert "s3cret-pw" in settings.secrets and "s3cret-pw" not in repr(settings)
    assert isinstance(store_from_settings(settings), PostgresJournal)
    default = settings_from_env({})
    assert (default.journal_database_url, default.journal_path, default.journal_retention_days) == (None, None, 7.0)
    assert isinstance(store_from_settings(default), SqliteJournal)


def test_open_journal_creates_the_configured_sqlite_journal(tmp_path: Path) -> None:
    from crm_mcp.journal import open_journal
    from crm_mcp.journal.schema import SCHEMA_VERSION

    path = tmp_path / "data" / "journal.db"
    settings = settings_from_env({"CRM_MCP_JOURNAL_PATH": str(path), "CRM_MCP_JOURNAL_RETENTION_DAYS": "3"})

    async def go() -> tuple[int, float]:
        journal = await open_journal(settings)
        try:
            return await journal.store.schema_version(), journal.store.retention.total_seconds()
        finally:
            await journal.store.aclose()

    assert anyio.run(go) == (SCHEMA_VERSION, 3 * 86400)
    assert path.exists()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CRM_MCP_JOURNAL_RETENTION_DAYS": "a week"}, "CRM_MCP_JOURNAL_RETENTION_DAYS must be a number of days"),
        ({"CRM_MCP_JOURNAL_RETENTION_DAYS": "0"}, "CRM_MCP_JOURNAL_RETENTION_DAYS must be a number of days"),
        ({"CRM_MCP_JOURNAL_DATABASE_URL": "mysql://db/crm"}, "CRM_MCP_JOURNAL_DATABASE_URL must be a PostgreSQL URL"),
    ],
)
def test_bad_journal_settings_are_a_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_env(env)


def test_postgresql_without_its_driver_is_a_configuration_error(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    clean_env.setitem(sys.modules, "asyncpg", None)  # as if the `postgres` extra were not installed
    clean_env.delitem(sys.modules, "crm_mcp.journal.postgres", raising=False)
    clean_env.setenv("CRM_MCP_JOURNAL_DATABASE_URL", "postgresql://u:hunter22@db/crm")
    with pytest.raises(ConfigError, match=r"pip install 'unified-crm-mcp\[postgres\]'"):
        store_from_settings(settings_from_env())
    assert main(["journal", "purge"]) == 2
    err = capsys.readouterr().err
    assert "the PostgreSQL driver is not installed" in err and "hunter22" not in err


@pytest.mark.slow
def test_an_in_memory_sandbox_keeps_no_journal_across_runs(tmp_path: Path) -> None:
    """Two runs on an in-memory sandbox make the same create: each creates its note. A journal that
    outlived the first sandbox would answer the second with a note of a CRM that is gone."""
    import json
    import os
    import subprocess
    import sys

    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("APIDECK_", "CRM_MCP_"))},
           "CRM_MCP_SANDBOX_DB": ":memory:", "XDG_DATA_HOME": str(tmp_path)}
    made = []
    for _ in range(2):
        run = subprocess.run([sys.executable, "-m", "crm_mcp", "call", "create_note",
                              json.dumps({"title": "Same", "content": "twice"})],
                             env=env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0 and run.stdout.startswith("Created note "), run.stdout + run.stderr
        made.append(run.stdout.split()[2].rstrip("."))
    assert made[0] != made[1]
    assert not (tmp_path / "crm-mcp" / "journal.db").exists()  # nothing kept in the user data directory
