"""`crm-mcp journal purge`: delete what the journal keeps past its retention (or everything)."""

from __future__ import annotations

import sys

import anyio

from crm_mcp.config import ConfigError, Settings
from crm_mcp.journal.factory import store_from_settings
from crm_mcp.journal.store import PurgeCounts
from crm_mcp.redaction import redact


def describe_store(settings: Settings) -> str:
    """Where the journal lives, without the database URL (it may hold a password)."""
    if settings.journal_database_url:
        return "PostgreSQL (CRM_MCP_JOURNAL_DATABASE_URL)"
    from crm_mcp.journal.sqlite import default_journal_path

    return f"SQLite {settings.journal_path or default_journal_path()}"


def purge_journal(settings: Settings, *, everything: bool = False) -> int:
    """Run the purge and print what it removed; the command's exit status."""

    async def go() -> PurgeCounts:
        async with store_from_settings(settings) as store:
            return await store.purge(everything=everything)

    try:
        store_from_settings(settings)  # a missing driver is a configuration error, said as such
    except ConfigError as exc:
        print(f"crm-mcp: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        counts = anyio.run(go)
    except Exception as exc:  # the drivers raise their own families (OSError, asyncpg.PostgresError, ...)
        detail = redact(f"{type(exc).__name__}: {exc}", settings.secrets)
        print(f"crm-mcp: cannot purge the journal in {describe_store(settings)}: {detail}", file=sys.stderr)
        return 1
    scope = "every entry" if everything else f"entries older than {settings.journal_retention_days:g} days"
    print(
        f"crm-mcp: journal purged ({scope}) in {describe_store(settings)}: removed "
        f"{_count(counts.changes, 'change', 'changes')} and "
        f"{_count(counts.retry_entries, 'retry-window entry', 'retry-window entries')}.",
        file=sys.stderr,
    )
    return 0


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"
