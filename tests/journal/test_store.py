"""The journal's storage on real SQLite and a real PostgreSQL server: schema and migrations,
scoping, retention, undo claims and the retry window, with two stores sharing one journal."""

from __future__ import annotations

import stat
import time
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from crm_mcp.journal.factory import scope_for, tenant_fingerprint
from crm_mcp.journal.schema import SCHEMA_VERSION
from crm_mcp.journal.sqlite import SqliteJournal
from crm_mcp.journal.store import Change, JournalStore, Scope, new_change_id

pytestmark = pytest.mark.anyio


def a_change(scope: Scope, *, created_at: float | None = None, record_id: str = "con_0001") -> Change:
    return Change(
        id=new_change_id(),
        scope=scope,
        tool="update_contact",
        resource="contacts",
        action="update",
        record_id=record_id,
        path_params={"id": record_id},
        before={"id": record_id, "title": "VP of Operations", "name": "Jane Doe"},
        written={"title": "COO"},
        after={"title": "COO"},
        created_at=time.time() if created_at is None else created_at,
    )


async def test_schema_is_created_at_the_current_version_and_reopening_keeps_it(make_store, scope) -> None:
    async with make_store() as first:
        assert await first.schema_version() == SCHEMA_VERSION
        change = a_change(scope)
        await first.record(change)
    async with make_store() as second:  # a second start (or replica) migrates nothing and sees the data
        assert await second.schema_version() == SCHEMA_VERSION
        assert await second.get(scope, change.id) == change


async def test_sqlite_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "private" / "journal.db"
    async with SqliteJournal(path, retention=timedelta(days=7)) as store:
        await store.record(a_change(scope_for("app", "key", "c1")))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    path.chmod(0o644)  # an older, too open file is tightened when the journal opens it
    async with SqliteJournal(path, retention=timedelta(days=7)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_tenant_fingerprint_is_stable_per_tenant_and_never_the_key() -> None:
    key = "sk_live_0123456789abcdef"
    fingerprint = tenant_fingerprint("app-1", key)
    assert fingerprint == tenant_fingerprint("app-1", key)
    assert fingerprint != tenant_fingerprint("app-2", key)
    assert fingerprint != tenant_fingerprint("app-1", key + "x")
    assert key not in fingerprint and "0123456789abcdef" not in fingerprint
    assert fingerprint.startswith("tnt_") and len(fingerprint) == 36


async def test_changes_are_scoped_to_tenant_and_consumer(store: JournalStore, scope: Scope) -> None:
    change = a_change(scope)
    await store.record(change)
    other_consumer = Scope(scope.tenant, scope.consumer + "-other")
    other_tenant = scope_for("test-app", "another-key", scope.consumer)
    assert await store.get(scope, change.id) == change
    assert await store.get(other_consumer, change.id) is None
    assert await store.get(other_tenant, change.id) is None
    assert await store.recent(other_consumer) == []
    assert await store.claim_undo(other_tenant, change.id) is None


async def test_recent_lists_newest_first_and_leaves_out_undone(store: JournalStore, scope: Scope) -> None:
    now = time.time()
    changes = [a_change(scope, created_at=now - 30 + i, record_id=f"con_000{i + 1}") for i in range(3)]
    for change in changes:
        await store.record(change)
    assert [c.id for c in await store.recent(scope)] == [c.id for c in reversed(changes)]
    assert [c.id for c in await store.recent(scope, limit=2)] == [changes[2].id, changes[1].id]
    token = await store.claim_undo(scope, changes[2].id)
    assert token is not None
    assert await store.finish_undo(changes[2].id, token, {"restored": ["title"]})
    assert [c.id for c in await store.recent(scope, undone=False)] == [changes[1].id, changes[0].id]
    (undone,) = await store.recent(scope, undone=True)
    assert undone.id == changes[2].id and undone.undone and undone.undo_result == {"restored": ["title"]}


async def test_retention_hides_then_purges_old_changes(make_store, scope: Scope) -> None:
    async with make_store(timedelta(days=2)) as store:
        old = a_change(scope, created_at=time.time() - 3 * 86400)
        fresh = a_change(scope)
        await store.record(fresh)  # the first write purges (nothing yet); the next is within the interval
        await store.record(old)
        assert await store.get(scope, old.id) is None  # expired: invisible before it is even purged
        assert [c.id for c in await store.recent(scope)] == [fresh.id]
        counts = await store.purge()
        assert counts.changes == 1
        assert (await store.purge()).changes == 0
        assert await store.get(scope, fresh.id) == fresh


async def test_a_released_undo_claim_can_be_claimed_again(store: JournalStore, scope: Scope) -> None:
    change = a_change(scope)
    await store.record(change)
    token = await store.claim_undo(scope, change.id)
    assert token is not None
    assert await store.claim_undo(scope, change.id) is None  # held
    await store.release_undo(change.id, token)  # e.g. the upstream call failed
    again = await store.claim_undo(scope, change.id)
    assert again is not None and again != token
    assert not await store.finish_undo(change.id, token, {})  # the old token no longer counts
    assert await store.finish_undo(change.id, again, {})
    assert await store.claim_undo(scope, change.id) is None  # done: never again


async def test_two_replicas_racing_to_claim_one_undo_exactly_one_wins(make_store, scope: Scope) -> None:
    async with make_store() as one, make_store() as two:
        for _ in range(10):
            change = a_change(scope)
            await one.record(change)
            tokens: list[str | None] = []

            async def claim(store: JournalStore, change_id: str = change.id, tokens: list = tokens) -> None:
                tokens.append(await store.claim_undo(scope, change_id))

            async with anyio.create_task_group() as tg:
                tg.start_soon(claim, one)
                tg.start_soon(claim, two)
            assert len(tokens) == 2
            assert sum(t is not None for t in tokens) == 1


async def test_retry_window_claims_once_then_answers_with_the_first_record(make_store, scope: Scope) -> None:
    async with make_store() as one, make_store() as two:
        now = time.time()
        assert await one.claim_retry("k1", window=600, now=now) is None  # claimed by replica one
        pending = await two.claim_retry("k1", window=600, now=now + 1)
        assert pending is not None and pending.record_id is None  # still running on replica one
        change = a_change(scope, created_at=now + 2, record_id="con_0999")
        await one.record(change, retry_key="k1", retry_window=600)
        hit = await two.claim_retry("k1", window=600, now=now + 3)
        assert hit is not None and (hit.record_id, hit.change_id) == ("con_0999", change.id)
        assert await two.claim_retry("k1", window=600, now=now + 603) is None  # window over: a new claim


async def test_a_failed_create_frees_its_retry_window_entry(store: JournalStore) -> None:
    assert await store.claim_retry("k2", window=600) is None
    await store.release_retry("k2")
    assert await store.claim_retry("k2", window=600) is None
