"""Issue 13 through real MCP client sessions: previews, undo (update, create, delete, conflict),
duplicate refusal, the retry window and the changes digest, on the seed records, in memory, over
stdio (a subprocess) and over HTTP (uvicorn on loopback), with the journal in SQLite and in
PostgreSQL; and two HTTP replicas sharing one PostgreSQL journal."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp_support import sandbox_settings, serve_in_thread, text_of

from crm_mcp.config import Settings
from crm_mcp.http import build_http_app
from crm_mcp.sandbox.server import SandboxServer
from crm_mcp.selection import Selection
from crm_mcp.server import build_server

pytestmark = pytest.mark.anyio

WRITES = ("POST", "PATCH", "DELETE")
Call = Callable[[str, dict[str, Any]], Awaitable[Any]]


def writes(sandbox: SandboxServer, consumer: str, path: str | None = None) -> int:
    """How many write requests the sandbox received for `consumer` (its request log)."""
    return sum(sandbox.faults.count(method=m, consumer=consumer, path=path) for m in WRITES)


@pytest.fixture
def settings(backend: str, sandbox_server: SandboxServer, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    base = sandbox_settings(sandbox_server)
    if backend == "sqlite":
        return dataclasses.replace(base, journal_path=str(tmp_path / "journal.db"))
    return dataclasses.replace(base, journal_database_url=request.getfixturevalue("pg_database"))


def _stdio_params(settings: Settings) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIDECK_", "CRM_MCP_"))}
    env.update({"APIDECK_API_KEY": settings.api_key or "", "APIDECK_APP_ID": settings.app_id or "",
                "APIDECK_CONSUMER_ID": settings.consumer_id or "", "APIDECK_BASE_URL": settings.base_url})
    if settings.journal_database_url:
        env["CRM_MCP_JOURNAL_DATABASE_URL"] = settings.journal_database_url
    else:
        env["CRM_MCP_JOURNAL_PATH"] = settings.journal_path or ""
    return StdioServerParameters(command=sys.executable, args=["-m", "crm_mcp"], env=env)


@asynccontextmanager
async def session(transport: str, settings: Settings, **server_options: Any) -> AsyncIterator[Client]:
    """A client session with a server for `settings` over `transport`."""
    if transport == "memory":
        async with Client(build_server(settings, **server_options)) as client:
            yield client
    elif transport == "stdio":
        async with Client(_stdio_params(settings)) as client:
            yield client
    else:
        server = build_server(settings, **server_options)
        app = build_http_app(server, settings, host="127.0.0.1", port=0, token=None)
        with serve_in_thread(app) as port:
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                yield client


def caller(client: Client) -> Call:
    async def call(name: str, arguments: dict[str, Any]) -> Any:
        return await client.call_tool(name, arguments)

    return call


async def ok(call: Call, name: str, arguments: dict[str, Any]) -> Any:
    result = await call(name, arguments)
    assert not result.is_error, text_of(result)
    return result


# ---------------------------------------------------------------------------------- the scenarios


async def previews_write_nothing(call: Call, sandbox: SandboxServer, consumer: str) -> None:
    before = writes(sandbox, consumer)
    update = await ok(call, "update_contact", {"id": "con_0001", "title": "COO", "dry_run": True})
    assert update.structured_content == {
        "dry_run": True, "request": {"method": "PATCH", "path": "/crm/contacts/con_0001", "body": {"title": "COO"}},
        "record_id": "con_0001", "exists": True,
        "fields": [{"field": "title", "current": "VP of Operations", "after": "COO"}],
    }
    assert "Would change contact con_0001 (Jane Doe):\n  title: VP of Operations -> COO" in text_of(update)
    delete = await ok(call, "delete_contact", {"id": "con_0002", "dry_run": True})
    assert "Would delete contact con_0002 (Renée Wilson):" in text_of(delete)
    assert {"field": "emails", "current": [{"email": "renee.wilson@acme.example",
            "type": "work"}], "after": None} in delete.structured_content["fields"]  # fmt: skip
    create = await ok(call, "create_lead", {"name": "Preview Lead", "dry_run": True})
    assert create.structured_content["request"] == {"method": "POST", "path": "/crm/leads",
                                                    "body": {"name": "Preview Lead"}}
    logged = await ok(call, "log_interaction", {"type": "call", "contact": "con_0001", "dry_run": True})
    body = logged.structured_content["activity"]["body"]
    assert (body["contact_id"], body["company_id"], body["type"]) == ("con_0001", "com_001", "call")
    assert writes(sandbox, consumer) == before  # the sandbox's request log: no POST, PATCH or DELETE


async def undo_an_update_and_a_conflict(call: Call, sandbox: SandboxServer, consumer: str) -> None:
    first = await ok(call, "update_contact", {"id": "con_0001", "title": "COO"})
    change = first.structured_content["change_id"]
    assert first.structured_content["id"] == "con_0001" and change.startswith("chg_")
    assert f"undo_change with change_id {change!r}" in text_of(first)
    await ok(call, "update_contact", {"id": "con_0001", "title": "CFO"})  # someone changes it again
    refused = await call("undo_change", {"change_id": change})
    assert refused.is_error
    assert "  title: the change wrote COO, now CFO" in text_of(refused) and "force: true" in text_of(refused)
    assert "title: CFO" in text_of(await ok(call, "get_contact", {"id": "con_0001", "fields": ["title"]}))
    forced = await ok(call, "undo_change", {"change_id": change, "force": True})
    assert forced.structured_content["undone"] == [{"change_id": change, "undo": "patched back",
                                                    "record_id": "con_0001",
                                                    "restored": {"title": "VP of Operations"}}]  # fmt: skip
    assert "title: VP of Operations" in text_of(await ok(call, "get_contact", {"id": "con_0001", "fields": ["title"]}))
    again = await call("undo_change", {"change_id": change})
    assert again.is_error and "already undone" in text_of(again)


async def undo_a_create_and_a_delete(call: Call, sandbox: SandboxServer, consumer: str) -> None:
    created = await ok(call, "create_contact", {"first_name": "Ada", "last_name": "Undo",
                                                "emails": [{"email": "ada.undo@example.com", "type": "work"}]})
    new_id = created.structured_content["id"]
    undone = await ok(call, "undo_change", {"change_id": created.structured_content["change_id"]})
    assert undone.structured_content["undone"][0]["undo"] == "deleted"
    gone = await call("get_contact", {"id": new_id})
    assert gone.is_error and f"No contact with id `{new_id}` exists" in text_of(gone)

    deleted = await ok(call, "delete_company", {"id": "com_002"})
    assert deleted.structured_content["id"] == "com_002"
    back = await ok(call, "undo_change", {"last": 1})
    [row] = back.structured_content["undone"]
    assert row["undo"] == "re-created" and row["record_id"] != "com_002"
    assert "Records that pointed to com_002 are not relinked" in text_of(back)
    assert row["record_id"] in text_of(back)
    card = await ok(call, "get_company", {"id": row["record_id"]})
    assert "Larkspur Energy" in text_of(card)


async def duplicates_and_the_retry_window(call: Call, sandbox: SandboxServer, consumer: str) -> None:
    before = writes(sandbox, consumer)
    jane = {"first_name": "Jane", "last_name": "Doe", "emails": [{"email": "jane.doe@acme.example", "type": "work"}]}
    refused = await ok(call, "create_contact", jane)
    assert text_of(refused).startswith("Possible duplicate of con_0001 Jane Doe, jane.doe@acme.example (same email).")
    assert "allow_duplicate: true" in text_of(refused) and "Checked: email." in text_of(refused)
    assert refused.structured_content["duplicates"][0]["id"] == "con_0001"
    assert writes(sandbox, consumer) == before  # nothing was created
    second = await ok(call, "create_contact", {**jane, "allow_duplicate": True})
    assert second.structured_content["id"] != "con_0001"

    lead = {"name": "Retry Lead", "emails": [{"email": "retry.lead@example.com", "type": "work"}]}
    first = await ok(call, "create_lead", lead)
    posts = writes(sandbox, consumer, "/crm/leads")
    repeat = await ok(call, "create_lead", lead)  # an agent retrying
    assert repeat.structured_content == {"id": first.structured_content["id"], "replayed": True,
                                         "change_id": first.structured_content["change_id"]}  # fmt: skip
    assert text_of(repeat).startswith(f"Not created again: the same create_lead call created lead "
                                      f"{first.structured_content['id']}")
    assert writes(sandbox, consumer, "/crm/leads") == posts  # no second POST


async def the_journal_and_the_digest(call: Call, sandbox: SandboxServer, consumer: str) -> None:
    change = (await ok(call, "update_company", {"id": "com_001", "industry": "Aerospace"})).structured_content
    listed = await ok(call, "list_changes", {"limit": 5})
    top = listed.structured_content["changes"][0]
    assert top == {"change_id": change["change_id"], "action": "update", "resource": "companies",
                   "record_id": "com_001", "undone": False}
    assert "update company com_001 (Acme Corporation): industry" in text_of(listed)
    stamp = await ok(call, "get_company", {"id": "com_001", "fields": ["updated_at"]})
    since = text_of(stamp).split("updated_at: ")[1].split()[0]
    digest = await ok(call, "crm_changes", {"since": since, "resources": ["companies"]})
    records = digest.structured_content["changes"]["companies"]["records"]
    acme = [r for r in records if r["id"] == "com_001"]
    assert [{**r, "updated_at": None} for r in acme] == [
        {"id": "com_001", "name": "Acme Corporation", "created": False, "updated_at": None}]
    # the card writes 01:02:00Z as 01:02Z (seconds left out when zero): compare the moments
    assert datetime.fromisoformat(acme[0]["updated_at"]) == datetime.fromisoformat(since)
    assert "companies: " in text_of(digest) and "com_001 Acme Corporation (changed" in text_of(digest)


SCENARIOS = [previews_write_nothing, undo_an_update_and_a_conflict, undo_a_create_and_a_delete,
             duplicates_and_the_retry_window, the_journal_and_the_digest]


@pytest.mark.parametrize("transport", ["memory", pytest.param("http", marks=pytest.mark.slow),
                                       pytest.param("stdio", marks=pytest.mark.slow)])
async def test_trusted_writes_in_a_session(transport: str, settings: Settings, sandbox_server: SandboxServer) -> None:
    async with session(transport, settings) as client:
        for scenario in SCENARIOS:
            await scenario(caller(client), sandbox_server, settings.consumer_id or "")


async def test_read_only_offers_the_journal_but_no_write_preview_or_undo(settings: Settings) -> None:
    async with session("memory", settings, selection=Selection(read_only=True)) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"list_changes", "crm_changes"} <= names
        assert "undo_change" not in names and not any(n.startswith(("create_", "update_", "delete_")) for n in names)
        preview = await client.call_tool("update_contact", {"id": "con_0001", "title": "X", "dry_run": True})
        assert preview.is_error and "read-only" in text_of(preview)
        undo = await client.call_tool("undo_change", {"last": 1})
        assert undo.is_error and "read-only" in text_of(undo)


async def test_undo_arguments_are_checked(settings: Settings) -> None:
    async with session("memory", settings) as client:
        both = await client.call_tool("undo_change", {"change_id": "chg_x", "last": 1})
        assert both.is_error and "give change_id or last" in text_of(both)
        unknown = await client.call_tool("undo_change", {"change_id": "chg_doesnotexist"})
        assert unknown.is_error and "chg_doesnotexist" in text_of(unknown)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgres"])
async def test_two_replicas_share_the_journal(settings: Settings, sandbox_server: SandboxServer) -> None:
    """A change made through one replica is undone through the other; two undos of one change
    racing through both, exactly one wins."""
    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(session("http", settings))
        two = await stack.enter_async_context(session("http", settings))
        made = await ok(caller(one), "update_contact", {"id": "con_0003", "title": "Replica One"})
        change = made.structured_content["change_id"]
        undone = await ok(caller(two), "undo_change", {"change_id": change})
        assert undone.structured_content["undone"][0]["change_id"] == change

        raced = await ok(caller(one), "update_contact", {"id": "con_0003", "title": "Race"})
        results: list[Any] = []

        async def undo(client: Client) -> None:
            results.append(await client.call_tool("undo_change", {"change_id": raced.structured_content["change_id"]}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(undo, one)
            tg.start_soon(undo, two)
        assert sorted(r.is_error for r in results) == [False, True]


class Asker:
    """An elicitation callback answering as a user would; records the questions."""

    def __init__(self, action: str) -> None:
        self.action = action
        self.asked: list[str] = []

    async def __call__(self, _ctx: Any, params: Any) -> types.ElicitResult:
        self.asked.append(params.message)
        content = {"confirm": True} if self.action == "accept" else None
        return types.ElicitResult(action=self.action, content=content)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_confirm_destructive_asks_before_an_undo_that_deletes(settings: Settings, mode: str) -> None:
    asker = Asker("decline")
    server = build_server(settings, confirm_destructive=True)
    async with Client(server, mode=mode, elicitation_callback=asker) as client:  # type: ignore[arg-type]
        call = caller(client)
        await ok(call, "delete_contact", {"id": "con_0002", "dry_run": True})  # a preview deletes nothing
        changed = await ok(call, "update_contact", {"id": "con_0001", "title": "COO"})
        created = await ok(call, "create_contact", {"first_name": "Ada", "last_name": "Confirm"})
        assert asker.asked == []  # neither a preview, an update nor a create is asked about
        await ok(call, "undo_change", {"change_id": changed.structured_content["change_id"]})  # patches: not asked
        assert asker.asked == []
        new_id = created.structured_content["id"]
        declined = await call("undo_change", {"change_id": created.structured_content["change_id"]})
        assert asker.asked == [f"Undoing {created.structured_content['change_id']} deletes the record it created. "
                               f"Delete contact {new_id} (Ada Confirm)? Undo re-creates it with a new id; "
                               "records linked to it are not relinked."]
        assert declined.is_error and f"the user declined deleting contact {new_id}" in text_of(declined)
        await ok(call, "get_contact", {"id": new_id})  # still there
        asker.action = "accept"
        await ok(call, "undo_change", {"last": 1})
        gone = await call("get_contact", {"id": new_id})
        assert gone.is_error


async def test_log_interaction_is_journaled_and_undone(settings: Settings, sandbox_server: SandboxServer) -> None:
    async with session("memory", settings) as client:
        call = caller(client)
        logged = await ok(call, "log_interaction", {"type": "call", "contact": "con_0001", "note": "Renewal"})
        activity, note = logged.structured_content["activity_id"], logged.structured_content["note_id"]
        ids = logged.structured_content["change_ids"]
        assert len(ids) == 2 and f"Changes {ids[0]}, {ids[1]}" in text_of(logged)
        for change in ids:
            await ok(call, "undo_change", {"change_id": change})
        assert (await call("get_activity", {"id": activity})).is_error
        assert (await call("get_note", {"id": note})).is_error


async def test_without_a_journal_writes_are_refused_and_reads_go_on(
    sandbox_server: SandboxServer, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    settings = dataclasses.replace(sandbox_settings(sandbox_server), journal_path=str(blocker / "journal.db"))
    async with session("memory", settings) as client:
        refused = await client.call_tool("update_contact", {"id": "con_0001", "title": "COO"})
        assert refused.is_error and text_of(refused).startswith("Nothing was written: the write journal")
        assert writes(sandbox_server, settings.consumer_id or "") == 0
        read = await client.call_tool("get_contact", {"id": "con_0001", "fields": ["title"]})
        assert not read.is_error and "title: VP of Operations" in text_of(read)


async def test_the_digest_pages_with_its_cursor_and_explains_bad_input(settings: Settings) -> None:
    async with session("memory", settings) as client:
        call = caller(client)
        first = await ok(call, "crm_changes", {"since": "2026-01-01T00:00:00Z", "resources": ["contacts"], "limit": 2})
        page = first.structured_content
        assert page["changes"]["contacts"]["count"] == 2 and page["changes"]["contacts"]["more"] is True
        assert f"call crm_changes again with cursor {page['cursor']!r}" in text_of(first)
        second = (await ok(call, "crm_changes", {"cursor": page["cursor"], "limit": 2})).structured_content
        ids = [r["id"] for r in page["changes"]["contacts"]["records"]]
        later = [r["id"] for r in second["changes"]["contacts"]["records"]]
        assert len(later) == 2 and not set(ids) & set(later)
        bad = await call("crm_changes", {"since": "last tuesday"})
        assert bad.is_error and "since must be an ISO 8601 date or time" in text_of(bad)
        both = await call("crm_changes", {"since": "2026-01-01", "cursor": page["cursor"]})
        assert both.is_error and "Give since or cursor, not both" in text_of(both)


def test_the_journal_tools_are_small_and_scoped() -> None:
    """Each under 250 tokens as tools/list sends it; undo_change needs crm:write (it takes back the
    consumer's own writes, even a create), the two others only read."""
    from crm_mcp.tokens import json_tokens
    from crm_mcp.tools import by_name

    tools = by_name()
    sizes = {name: json_tokens(tools[name].to_wire()) for name in ("undo_change", "list_changes", "crm_changes")}
    assert all(size < 250 for size in sizes.values()), sizes
    assert {name: tools[name].scope for name in sizes} == {
        "undo_change": "crm:write", "list_changes": "crm:read", "crm_changes": "crm:read"}
