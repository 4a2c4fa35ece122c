"""The journal's tables and their migrations, one list for SQLite and PostgreSQL.

A migration is a version number and its statements; `schema_version` holds the version the
database is at. The stores apply the missing migrations at open, in one transaction (under an
advisory lock on PostgreSQL, so replicas starting together migrate once). Types are those both
databases take: TEXT (JSON documents as text) and DOUBLE PRECISION (Unix time in seconds).
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """CREATE TABLE changes (
                id TEXT PRIMARY KEY,
                tenant TEXT NOT NULL,
                consumer TEXT NOT NULL,
                tool TEXT NOT NULL,
                resource TEXT NOT NULL,
                action TEXT NOT NULL,
                record_id TEXT NOT NULL,
                path_params TEXT NOT NULL,
                before_state TEXT,
                written TEXT NOT NULL,
                after_state TEXT,
                omitted TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                undo_state TEXT,
                undo_token TEXT,
                undone_at DOUBLE PRECISION,
                undo_result TEXT
            )""",
            "CREATE INDEX changes_by_scope ON changes (tenant, consumer, created_at)",
            "CREATE INDEX changes_by_age ON changes (created_at)",
            """CREATE TABLE retry_window (
                key TEXT PRIMARY KEY,
                state TEXT NOT NULL,
                record_id TEXT,
                change_id TEXT,
                created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX retry_window_by_expiry ON retry_window (expires_at)",
        ),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1][0]
VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
