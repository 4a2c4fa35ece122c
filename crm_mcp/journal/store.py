"""Journal storage: the changes a server made and the retry window, in SQLite or PostgreSQL.

`JournalStore` holds every query (one place for the SQL); `SqliteJournal` and `PostgresJournal`
only run them. Times are Unix seconds; records are stored as JSON text. Everything is scoped to a
`Scope` (tenant fingerprint + consumer id): a change is only ever read, listed or undone within
the scope that made it.

Retention: a change older than `retention` is invisible to every read at once and deleted by
`purge()`, which the store also runs on a write at most every `purge_interval` (the first write
of a server purges at once), and which `crm-mcp journal purge` runs.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

Action = Literal["create", "update", "delete"]
Row = Sequence[Any]

# A claim on an undo (or a pending create) whose replica died is taken over after this long.
STALE_CLAIM_SECONDS = 120.0
_CHANGE_COLUMNS = (
    "id, tenant, consumer, tool, resource, action, record_id, path_params, before_state, written, "
    "after_state, omitted, created_at, undo_state, undone_at, undo_result"
)


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose journal: `tenant` is a fingerprint of the credentials (never the key), `consumer` the
    Apideck consumer id the write was made for."""

    tenant: str
    consumer: str


@dataclass(frozen=True, slots=True)
class Change:
    """One journaled write. `before` is the record as it was (None for a create), `written` the
    fields the write sent, `after` the record as the write left it (as far as known)."""

    id: str
    scope: Scope
    tool: str
    resource: str
    action: Action
    record_id: str
    path_params: dict[str, str]
    before: dict[str, Any] | None
    written: dict[str, Any]
    after: dict[str, Any] | None
    created_at: float
    omitted: tuple[str, ...] = ()  # fields the write sent that the journal does not keep (secrets)
    undo_state: str | None = None  # None, "claimed" (an undo is running) or "done"
    undone_at: float | None = None
    undo_result: dict[str, Any] | None = field(default=None)

    @property
    def undone(self) -> bool:
        return self.undo_state == "done"


@dataclass(frozen=True, slots=True)
class RetryHit:
    """The retry window already holds this create. `state`: "done" (`record_id` is the record it
    created), "pending" (still running) or "uncertain" (its answer was lost: it may have created one)."""

    record_id: str | None
    change_id: str | None
    created_at: float
    state: str = "done"


@dataclass(frozen=True, slots=True)
class PurgeCounts:
    changes: int
    retry_entries: int


def new_change_id() -> str:
    return "chg_" + secrets.token_hex(8)


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class JournalStore(ABC):
    """The journal's queries over an abstract connection (see the module docstring)."""

    def __init__(self, *, retention: timedelta, purge_interval: float = 3600.0) -> None:
        if retention.total_seconds() <= 0:
            raise ValueError("retention must be positive")
        self.retention = retention
        self.purge_interval = purge_interval
        self._last_purge = 0.0

    # -- what a backend provides

    @abstractmethod
    async def open(self) -> None:
        """Connect, and create or migrate the schema."""

    @abstractmethod
    async def aclose(self) -> None: ...

    @abstractmethod
    async def _execute(self, sql: str, args: Sequence[Any]) -> int:
        """Run one statement in its own transaction; the number of rows it changed."""

    @abstractmethod
    async def _transaction(self, statements: Sequence[tuple[str, Sequence[Any]]], *, bulk: bool = False) -> list[int]:
        """Run statements in one transaction; the rows each changed. `bulk`: they may touch many rows
        (a purge), so a backend that runs statements on the event loop runs these elsewhere."""

    @abstractmethod
    async def _fetch(self, sql: str, args: Sequence[Any]) -> list[Row]: ...

    async def _execute_both(self, first: tuple[str, Sequence[Any]], second: tuple[str, Sequence[Any]]) -> None:
        """Run two statements, in one round trip where the database allows (PostgreSQL)."""
        await self._transaction([first, second])

    @abstractmethod
    async def schema_version(self) -> int: ...

    async def __aenter__(self) -> JournalStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- changes

    def _cutoff(self, now: float) -> float:
        return now - self.retention.total_seconds()

    async def record(self, change: Change, *, retry_key: str | None = None, retry_window: float = 0.0) -> None:
        """Store a change; with `retry_key`, also fill in the retry-window entry claimed for it."""
        insert = (
            f"INSERT INTO changes ({_CHANGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL)",
            (
                change.id, change.scope.tenant, change.scope.consumer, change.tool, change.resource, change.action,
                change.record_id, _dump(change.path_params), _dump(change.before), _dump(change.written),
                _dump(change.after), _dump(list(change.omitted)), change.created_at,
            ),
        )  # fmt: skip
        if retry_key is None:
            await self._execute(*insert)
        else:
            fill = (
                "UPDATE retry_window SET state = 'done', record_id = ?, change_id = ?, expires_at = ? WHERE key = ?",
                (change.record_id, change.id, change.created_at + retry_window, retry_key),
            )
            await self._execute_both(fill, insert)
        await self._purge_if_due(change.created_at)

    async def get(self, scope: Scope, change_id: str, *, now: float | None = None) -> Change | None:
        now = time.time() if now is None else now
        rows = await self._fetch(
            f"SELECT {_CHANGE_COLUMNS} FROM changes WHERE id = ? AND tenant = ? AND consumer = ? AND created_at >= ?",
            (change_id, scope.tenant, scope.consumer, self._cutoff(now)),
        )
        return _change(rows[0]) if rows else None

    async def recent(
        self, scope: Scope, *, limit: int = 20, undone: bool | None = None, now: float | None = None
    ) -> list[Change]:
        """This scope's changes, newest first; `undone=False` leaves out those undone or being undone."""
        now = time.time() if now is None else now
        where = "tenant = ? AND consumer = ? AND created_at >= ?"
        if undone is False:
            where += " AND undo_state IS NULL"
        elif undone is True:
            where += " AND undo_state = 'done'"
        rows = await self._fetch(
            f"SELECT {_CHANGE_COLUMNS} FROM changes WHERE {where} ORDER BY created_at DESC, id DESC LIMIT ?",
            (scope.tenant, scope.consumer, self._cutoff(now), limit),
        )
        return [_change(row) for row in rows]

    # -- undo claims: exactly one replica wins the right to undo a change

    async def claim_undo(self, scope: Scope, change_id: str, *, now: float | None = None) -> str | None:
        """Take the undo of a change; the claim's token, or None when another undo holds or did it."""
        now = time.time() if now is None else now
        token = secrets.token_hex(8)
        claimed = await self._execute(
            "UPDATE changes SET undo_state = 'claimed', undo_token = ?, undone_at = ? "
            "WHERE id = ? AND tenant = ? AND consumer = ? AND created_at >= ? "
            "AND (undo_state IS NULL OR (undo_state = 'claimed' AND undone_at < ?))",
            (token, now, change_id, scope.tenant, scope.consumer, self._cutoff(now), now - STALE_CLAIM_SECONDS),
        )
        return token if claimed == 1 else None

    async def finish_undo(self, change_id: str, token: str, result: Mapping[str, Any]) -> bool:
        done = await self._execute(
            "UPDATE changes SET undo_state = 'done', undone_at = ?, undo_result = ? "
            "WHERE id = ? AND undo_token = ? AND undo_state = 'claimed'",
            (time.time(), _dump(dict(result)), change_id, token),
        )
        return done == 1

    async def release_undo(self, change_id: str, token: str) -> None:
        """Give a claim back (the upstream call failed): the change can be undone again."""
        await self._execute(
            "UPDATE changes SET undo_state = NULL, undo_token = NULL, undone_at = NULL "
            "WHERE id = ? AND undo_token = ? AND undo_state = 'claimed'",
            (change_id, token),
        )

    # -- the retry window: the same create within a short time answers with the first record

    async def claim_retry(self, key: str, *, window: float, now: float | None = None) -> RetryHit | None:
        """Claim `key` for a create about to run (None), or the entry an earlier create holds."""
        now = time.time() if now is None else now
        pending_until = now + min(window, STALE_CLAIM_SECONDS)
        claimed = await self._execute(  # a new key, or one whose window is over: ours
            "INSERT INTO retry_window (key, state, record_id, change_id, created_at, expires_at) "
            "VALUES (?, 'pending', NULL, NULL, ?, ?) ON CONFLICT (key) DO UPDATE SET state = 'pending', "
            "record_id = NULL, change_id = NULL, created_at = excluded.created_at, expires_at = excluded.expires_at "
            "WHERE retry_window.expires_at < excluded.created_at",
            (key, now, pending_until),
        )
        if claimed:
            return None
        rows = await self._fetch(
            "SELECT record_id, change_id, created_at, state FROM retry_window WHERE key = ?", (key,)
        )
        if not rows:  # purged between the two statements: the window is free again
            return await self.claim_retry(key, window=window, now=now)
        record_id, change_id, created_at, state = rows[0]
        return RetryHit(record_id=record_id, change_id=change_id, created_at=float(created_at), state=state)

    async def mark_retry_uncertain(self, key: str, *, window: float, now: float | None = None) -> None:
        """The create's answer was lost (it may have created the record): hold the window for it."""
        now = time.time() if now is None else now
        await self._execute(
            "UPDATE retry_window SET state = 'uncertain', expires_at = ? WHERE key = ? AND state = 'pending'",
            (now + window, key),
        )

    async def forget_retry(self, change_id: str) -> None:
        """The record a create made is gone (its change was undone): the same create may run again."""
        await self._execute("DELETE FROM retry_window WHERE change_id = ?", (change_id,))

    async def release_retry(self, key: str) -> None:
        """The create failed: free its retry-window entry."""
        await self._execute("DELETE FROM retry_window WHERE key = ? AND state = 'pending'", (key,))

    # -- retention

    async def purge(self, *, now: float | None = None, everything: bool = False) -> PurgeCounts:
        """Delete changes older than the retention and retry-window entries past their window
        (`everything`: every change and entry, whatever its age)."""
        now = time.time() if now is None else now
        self._last_purge = now
        changes_before, entries_before = (math.inf, math.inf) if everything else (self._cutoff(now), now)
        changes, entries = await self._transaction(
            [
                ("DELETE FROM changes WHERE created_at < ?", (changes_before,)),
                ("DELETE FROM retry_window WHERE expires_at < ?", (entries_before,)),
            ],
            bulk=True,
        )
        return PurgeCounts(changes=changes, retry_entries=entries)

    async def _purge_if_due(self, now: float) -> None:
        if now - self._last_purge >= self.purge_interval:
            await self.purge(now=now)


def _change(row: Row) -> Change:
    (id_, tenant, consumer, tool, resource, action, record_id, path_params, before, written, after, omitted,
     created_at, undo_state, undone_at, undo_result) = row  # fmt: skip
    return Change(
        id=id_,
        scope=Scope(tenant, consumer),
        tool=tool,
        resource=resource,
        action=action,
        record_id=record_id,
        path_params=_load(path_params) or {},
        before=_load(before),
        written=_load(written) or {},
        after=_load(after),
        created_at=float(created_at),
        omitted=tuple(_load(omitted) or ()),
        undo_state=undo_state,
        undone_at=None if undone_at is None else float(undone_at),
        undo_result=_load(undo_result),
    )
