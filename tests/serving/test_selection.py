"""Tool selection fixed at start-up (--read-only, --resources, --tools, --workflows/--no-workflows),
through a real in-memory client session against the sandbox, plus the `crm-mcp` flags."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp_support import sandbox_settings, text_of

from crm_mcp import cli
from crm_mcp.operations import OPERATIONS
from crm_mcp.selection import Selection, SelectionError, parse_names, select_tools
from crm_mcp.server import build_server
from crm_mcp.tools import WORKFLOWS, registry

pytestmark = pytest.mark.anyio

READS = [op.tool_name for op in OPERATIONS if op.action in ("list", "get")]



@pytest.fixture
def settings(sandbox_server: Any) -> Any:
    return sandbox_settings(sandbox_server)


async def names(client: Client) -> list[str]:
    return [t.name for t in (await client.list_tools()).tools]


@pytest.fixture
async def read_only(settings: Any) -> AsyncIterator[Client]:
    server = build_server(settings, selection=Selection(read_only=True, workflows=True))
    async with Client(server, raise_exceptions=True) as c:
        yield c


# ------------------------------------------------------------------------------------ read-only


async def test_read_only_offers_no_write_tool(read_only: Client) -> None:
    listed = (await read_only.list_tools()).tools
    assert [t.name for t in listed] == [*READS, "search_crm", "get_account_overview", "list_changes", "crm_changes"]
    for tool in listed:
        assert tool.annotations is not None and tool.annotations.read_only_hint is True, tool.name
    assert "read-only" in (read_only.instructions or "")
    assert "--read-only" in (read_only.instructions or "")


@pytest.mark.parametrize("tool", ["create_contact", "update_company", "delete_lead", "log_interaction"])
async def test_read_only_refuses_a_write_as_a_tool_error(
    read_only: Client, sandbox_server: Any, settings: Any, tool: str
) -> None:
    before = sandbox_server.faults.count(consumer=settings.consumer_id)
    args: dict[str, Any] = {"id": "lea_001"} if tool.startswith(("update", "delete")) else {"first_name": "X"}
    if tool == "log_interaction":
        args = {"type": "call", "contact_id": "con_0001"}
    result = await read_only.call_tool(tool, args)  # not a JSON-RPC error: raise_exceptions would raise
    assert result.is_error
    message = text_of(result)
    assert tool in message and "read-only" in message and "without --read-only" in message
    # nothing reached the CRM
    assert sandbox_server.faults.count(consumer=settings.consumer_id) == before


async def test_read_only_still_reads(read_only: Client) -> None:
    found = await read_only.call_tool("list_contacts", {"filter": {"email": "jane.doe@acme.example"}})
    assert not found.is_error and "con_0001" in text_of(found)
    searched = await read_only.call_tool("search_crm", {"query": "jane.doe@acme.example"})
    assert not searched.is_error and text_of(searched).splitlines()[1].startswith("contact | con_0001")


async def test_tool_list_never_changes_during_a_connection(read_only: Client) -> None:
    first = (await read_only.list_tools()).tools
    await read_only.call_tool("create_contact", {"first_name": "X"})
    await read_only.call_tool("list_users", {"limit": 1})
    second = (await read_only.list_tools()).tools
    assert [t.model_dump() for t in first] == [t.model_dump() for t in second]


async def test_unknown_tool_stays_a_protocol_error(settings: Any) -> None:
    from mcp.shared.exceptions import MCPError

    async with Client(build_server(settings, selection=Selection(read_only=True))) as c:
        with pytest.raises(MCPError):
            await c.call_tool("no_such_tool", {})


# ------------------------------------------------------------------------------- resources, tools


async def test_resources_narrow_the_tools(settings: Any) -> None:
    server = build_server(settings, selection=Selection(resources=("contacts", "notes")))
    async with Client(server, raise_exceptions=True) as c:
        assert await names(c) == [
            op.tool_name for op in OPERATIONS if op.resource in ("contacts", "notes")
        ]
        assert "contacts, notes" in (c.instructions or "")
        assert "read-write" in (c.instructions or "")
        ok = await c.call_tool("get_contact", {"id": "con_0001"})
        assert not ok.is_error and "Jane" in text_of(ok)
        off = await c.call_tool("list_companies", {})
        assert off.is_error
        assert "list_companies" in text_of(off) and "--resources" in text_of(off)


async def test_resources_and_read_only_combine(settings: Any) -> None:
    server = build_server(settings, selection=Selection(read_only=True, resources=("notes",)))
    async with Client(server) as c:
        assert await names(c) == ["list_notes", "get_note"]


async def test_workflows_follow_their_resources(settings: Any) -> None:
    selection = Selection(resources=("companies", "contacts", "leads", "opportunities"), workflows=True)
    async with Client(build_server(settings, selection=selection)) as c:
        listed = await names(c)
    assert "search_crm" in listed  # it uses only those four
    assert "get_account_overview" not in listed and "log_interaction" not in listed


async def test_tools_names_exactly_those(settings: Any) -> None:
    selection = Selection(tools=("get_contact", "list_contacts", "search_crm"), workflows=True)
    async with Client(build_server(settings, selection=selection)) as c:
        assert await names(c) == ["list_contacts", "get_contact", "search_crm"]  # catalogue order
        assert "list_contacts" in (c.instructions or "")
        off = await c.call_tool("create_contact", {"first_name": "X"})
        assert off.is_error and "--tools" in text_of(off)


async def test_tools_add_to_resources(settings: Any) -> None:
    selection = Selection(resources=("notes",), tools=("get_contact",))
    async with Client(build_server(settings, selection=selection)) as c:
        assert await names(c) == ["get_contact", *[op.tool_name for op in OPERATIONS if op.resource == "notes"]]


def test_unknown_resource_is_a_clear_startup_error(settings: Any) -> None:
    with pytest.raises(SelectionError) as caught:
        build_server(settings, selection=Selection(resources=("contacts", "deals")))
    message = str(caught.value)
    assert "'deals'" in message and "--resources" in message
    for valid in ("companies", "contacts", "opportunities", "leads", "notes", "activities", "custom_objects"):
        assert valid in message


def test_unknown_tool_is_a_clear_startup_error(settings: Any) -> None:
    with pytest.raises(SelectionError) as caught:
        build_server(settings, selection=Selection(tools=("list_contacts", "list_deals")))
    message = str(caught.value)
    assert "'list_deals'" in message and "--tools" in message and "list_contacts" in message


def test_contradictions_are_startup_errors() -> None:
    with pytest.raises(SelectionError, match="read-only"):
        select_tools(Selection(read_only=True, tools=("create_contact",)))
    with pytest.raises(SelectionError, match="workflows are off"):
        select_tools(Selection(tools=("search_crm",), workflows=False))
    with pytest.raises(SelectionError, match="at least one"):
        parse_names(" , ", "--tools")
    assert parse_names("contacts, notes,contacts", "--resources") == ("contacts", "notes")


# ------------------------------------------------------------------------------------ workflows


async def test_workflows_on_and_off(settings: Any) -> None:
    async with Client(build_server(settings, selection=Selection(workflows=True))) as c:
        listed = await names(c)
    journal_tools = ["undo_change", "list_changes", "crm_changes"]  # not workflows: --no-workflows keeps them
    assert listed == [*[op.tool_name for op in OPERATIONS], *(t.name for t in registry() if t.toolset == WORKFLOWS),
                      *journal_tools]
    async with Client(build_server(settings, selection=Selection(workflows=False))) as c:
        assert await names(c) == [*(op.tool_name for op in OPERATIONS), *journal_tools]
        off = await c.call_tool("search_crm", {"query": "Acme"})
        assert off.is_error and "--workflows" in text_of(off)


# ------------------------------------------------------------------------------------------ CLI


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], Selection()),
        (["--read-only"], Selection(read_only=True)),
        (["serve", "--read-only"], Selection(read_only=True)),
        (["--read-only", "serve"], Selection(read_only=True)),  # a flag before the subcommand is kept
        (["serve", "--resources", "contacts,notes"], Selection(resources=("contacts", "notes"))),
        (["--tools", "list_contacts,get_contact"], Selection(tools=("list_contacts", "get_contact"))),
        (["serve", "--no-workflows"], Selection(workflows=False)),
        (["--workflows"], Selection(workflows=True)),
        (["--http", "--read-only", "--resources", "notes"], Selection(read_only=True, resources=("notes",))),
    ],
)
def test_cli_flags(argv: list[str], expected: Selection) -> None:
    args = cli.build_parser().parse_args(argv)
    assert cli.selection_from_args(args) == expected


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--resources", "contacts,deals"], "Valid resources: companies, contacts"),
        (["serve", "--tools", "list_deals"], "unknown tool 'list_deals'"),
        (["serve", "--read-only", "--tools", "delete_contact"], "--read-only"),
        (["--resources", ","], "at least one"),
    ],
)
def test_cli_refuses_a_bad_selection_before_serving(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("APIDECK_API_KEY", "APIDECK_APP_ID", "APIDECK_BASE_URL", "APIDECK_CONSUMER_ID"):
        monkeypatch.delenv(name, raising=False)

    def must_not_serve(*_a: Any, **_k: Any) -> int:
        raise AssertionError("served despite a bad selection")

    monkeypatch.setattr(cli, "serve", must_not_serve)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "crm-mcp:" in err


@pytest.mark.slow
async def test_stdio_read_only_subprocess() -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("APIDECK_")}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "crm_mcp", "serve", "--read-only", "--resources", "contacts,companies"],
        env={**env, "CRM_MCP_SANDBOX_DB": ":memory:"},
    )
    async with Client(params) as c:
        assert "read-only" in (c.instructions or "")
        assert await names(c) == ["list_companies", "get_company", "list_contacts", "get_contact"]
        refused = await c.call_tool("create_company", {"name": "Nope Inc"})
        assert refused.is_error and "without --read-only" in text_of(refused)
