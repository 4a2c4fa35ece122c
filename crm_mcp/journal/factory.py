"""Building the journal from the settings, and the scope a request's writes belong to."""

from __future__ import annotations

import atexit
import hashlib
import hmac
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

from crm_mcp.config import ConfigError, Settings
from crm_mcp.journal.store import JournalStore, Scope

# A fixed key: the fingerprint is not meant to be secret, only to never reveal the API key (which
# is long and random, so its keyed hash cannot be turned back into it) and to differ per tenant.
_FINGERPRINT_KEY = b"crm-mcp journal tenant v1"


def tenant_fingerprint(app_id: str, api_key: str) -> str:
    """A stable, non-secret name for the tenant holding these credentials (never the key itself)."""
    message = app_id.encode("utf-8") + b"\x00" + api_key.encode("utf-8")
    return "tnt_" + hmac.new(_FINGERPRINT_KEY, message, hashlib.sha256).hexdigest()[:32]


def scope_for(app_id: str, api_key: str, consumer_id: str) -> Scope:
    return Scope(tenant=tenant_fingerprint(app_id, api_key), consumer=consumer_id)


def store_from_settings(settings: Settings) -> JournalStore:
    """PostgreSQL when `journal_database_url` is set, else SQLite at `journal_path` (not yet opened).
    Raises ConfigError when PostgreSQL is asked for without its driver (the `postgres` extra)."""
    retention = timedelta(days=settings.journal_retention_days)
    if settings.journal_database_url:
        try:
            from crm_mcp.journal.postgres import PostgresJournal
        except ImportError:
            raise ConfigError(
                "CRM_MCP_JOURNAL_DATABASE_URL is set but the PostgreSQL driver is not installed: "
                "pip install 'unified-crm-mcp[postgres]' (or unset it to keep the journal in SQLite)."
            ) from None
        return PostgresJournal(settings.journal_database_url, retention=retention)
    from crm_mcp.journal.sqlite import SqliteJournal, default_journal_path

    path = settings.journal_path or default_journal_path()
    if settings.sandbox and settings.sandbox_db == ":memory:" and not settings.journal_path:
        # The sandbox keeps nothing, so neither does its journal: one that outlived the records it
        # names would answer a repeated create with a record of a CRM that no longer exists.
        folder = tempfile.mkdtemp(prefix="crm-mcp-journal-")  # readable by its owner only
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = Path(folder) / "journal.db"
    return SqliteJournal(path, retention=retention)
