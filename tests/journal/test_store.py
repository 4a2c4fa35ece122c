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


@pytest.mark.slow  # waits out real timeouts: run with the timing-bound tests
async def test_a_write_waits_for_a_lock_another_process_holds_then_lands(tmp_path: Path) -> None:
    """SQLite statements run on the event loop without waiting for a lock: one that finds the file
    locked (here by another connection, as another worker process would) runs again in the worker
    thread, which waits for the lock, and lands once it is free; meanwhile the event loop runs."""
    import sqlite3

    path = tmp_path / "journal.db"
    scope = scope_for("app", "key", "c1")
    async with SqliteJournal(path, retention=timedelta(days=7)) as store:
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # holds the write lock
        change = a_change(scope)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await anyio.sleep(0.01)

        written = anyio.Event()

        async def record() -> None:
            await store.record(change)
            written.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(tick)
            tg.start_soon(record)
            await anyio.sleep(0.3)
            assert not written.is_set()  # it waits while the lock is held
            other.execute("COMMIT")
            with anyio.fail_after(5):
                await written.wait()
            tg.cancel_scope.cancel()
        other.close()
        assert ticks >= 20  # the event loop kept running while the write waited
        assert await store.get(scope, change.id) == change


async def test_the_wal_is_checkpointed_while_the_journal_writes(tmp_path: Path) -> None:
    """The event loop's connection never checkpoints by itself: the worker thread does every
    CHECKPOINT_EVERY statements, and SQLite then writes the WAL from its start again, so the WAL
    file stays the size of one stretch of writes instead of growing with every write."""
    from crm_mcp.journal.sqlite import CHECKPOINT_EVERY

    path = tmp_path / "journal.db"
    wal = tmp_path / "journal.db-wal"
    scope = scope_for("app", "key", "c1")
    async with SqliteJournal(path, retention=timedelta(days=7)) as store:
        for _ in range(CHECKPOINT_EVERY - 1):  # one statement per record: no checkpoint yet
            await store.record(a_change(scope))
        one_stretch = wal.stat().st_size
        for _ in range(2 * CHECKPOINT_EVERY + 1):
            await store.record(a_change(scope))
        assert wal.stat().st_size < 1.5 * one_stretch  # without the checkpoints: about 3 times
        assert len(await store.recent(scope, limit=1000)) == 3 * CHECKPOINT_EVERY
