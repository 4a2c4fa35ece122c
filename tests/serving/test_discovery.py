"""Discovery mode (`--tool-mode discover`) through a real MCP client session on the sandbox: three
meta-tools listed, finding, describing and running tools through them, the same validation,
selection and progress as direct calls, and the token targets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import pytest
from mcp.client import Client
from mcp_support import ContractCheckingTransport, sandbox_settings, text_of

from crm_mcp.cli import build_parser, selection_from_args
from crm_mcp.selection import Selection, SelectionError, select_tools
from crm_mcp.server import build_server
from crm_mcp.tokens import compact_json, count_tokens, json_tokens
from crm_mcp.tools import operation_tools, registry

pytestmark = pytest.mark.anyio

DISCOVER = Selection(tool_mode="discover")


def largest_create() -> str:
    """The create tool with the most tokens (found when a test asks: loading the tokenizer takes
    ~1.4 s, which collecting this module would cost every worker)."""
    return max((t for t in operation_tools() if t.kind == "create"), key=lambda t: json_tokens(t.to_wire())).name



@pytest.fixture
def settings(sandbox_server: Any) -> Any:
    return sandbox_settings(sandbox_server)


@pytest.fixture
def transport() -> ContractCheckingTransport:
    return ContractCheckingTransport()


async def connect(settings: Any, transport: ContractCheckingTransport, selection: Selection = DISCOVER) -> Any:
    return Client(build_server(settings, transport=transport, selection=selection), raise_exceptions=True)


@pytest.fixture
async def client(settings: Any, transport: ContractCheckingTransport) -> AsyncIterator[Client]:
    async with await connect(settings, transport) as c:
        yield c
    assert transport.violations == []


def paid(result: Any) -> int:
    """Tokens an agent reads of a result: its text and its structured content."""
    structured = result.structured_content
    return count_tokens(text_of(result)) + (count_tokens(compact_json(structured)) if structured is not None else 0)


def wire(tools: list[Any]) -> list[dict[str, Any]]:
    return [t.model_dump(by_alias=True, exclude_none=True) for t in tools]


async def test_lists_only_the_meta_tools_within_400_tokens(client: Client) -> None:
    listed = (await client.list_tools()).tools
    assert [t.name for t in listed] == ["find_tools", "describe_tool", "call_tool"]
    for tool in listed:
        jsonschema.Draft202012Validator.check_schema(tool.input_schema)
        assert tool.title and tool.description
    assert json_tokens(wire(listed)) <= 400, json_tokens(wire(listed))
    await client.call_tool("call_tool", {"name": "list_users", "arguments": {"limit": 1}})
    assert wire((await client.list_tools()).tools) == wire(listed)  # fixed at start-up
    hints = {t.name: t.annotations for t in listed}
    assert hints["find_tools"].read_only_hint and hints["describe_tool"].read_only_hint
    assert not (hints["call_tool"] and hints["call_tool"].read_only_hint)  # it can write


async def test_find_describe_and_run_list_contacts_within_700_tokens(client: Client) -> None:
    found = await client.call_tool("find_tools", {"query": "list contacts"})
    assert text_of(found).splitlines()[1].startswith("list_contacts:")
    described = await client.call_tool("describe_tool", {"name": "list_contacts"})
    schema = json.loads(text_of(described).split("arguments: ", 1)[1])
    published = next(t for t in operation_tools() if t.name == "list_contacts").input_schema
    assert schema == published  # the compact schema tools/list would publish
    ran = await client.call_tool("call_tool", {"name": "list_contacts", "arguments": {"limit": 5}})
    assert not ran.is_error and ran.structured_content is None
    assert "con_0001 | Jane Doe" in text_of(ran) and "\n5 contacts; " in text_of(ran)
    total = paid(found) + paid(described) + paid(ran)
    assert total <= 700, (paid(found), paid(described), paid(ran))


async def test_describing_the_largest_create_tool_within_750_tokens(client: Client) -> None:
    largest = largest_create()
    described = await client.call_tool("describe_tool", {"name": largest})
    assert not described.is_error
    published = next(t for t in operation_tools() if t.name == largest).input_schema
    assert json.loads(text_of(described).split("arguments: ", 1)[1]) == published
    assert paid(described) <= 750, paid(described)  # as the largest tool in tools/list


async def test_call_tool_runs_like_a_direct_call(
    client: Client, settings: Any, transport: ContractCheckingTransport
) -> None:
    via = await client.call_tool("call_tool", {"name": "get_contact", "arguments": {"id": "con_0001"}})
    async with await connect(settings, transport, Selection()) as direct_client:
        direct = await direct_client.call_tool("get_contact", {"id": "con_0001"})
        bad_direct = await direct_client.call_tool("list_contacts", {"limit": 0, "nope": 1})
    assert text_of(via) == text_of(direct) and via.structured_content is None  # the text carries it all
    bad = await client.call_tool("call_tool", {"name": "list_contacts", "arguments": {"limit": 0, "nope": 1}})
    assert bad.is_error and text_of(bad) == text_of(bad_direct)
    created = await client.call_tool("call_tool", {"name": "create_note", "arguments": {
        "title": "Via discovery", "content": "x", "company_id": "com_001"}})
    assert not created.is_error and text_of(created).startswith("Created note")
    search = await client.call_tool("call_tool", {"name": "search_crm",
                                                  "arguments": {"query": "jane.doe@acme.example"}})
    assert text_of(search).splitlines()[1].startswith("contact | con_0001 | Jane Doe")


def _scalars(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _scalars(v)]
    if isinstance(value, list):
        return [s for v in value for s in _scalars(v)]
    return [str(value)]


@pytest.mark.parametrize(("tool", "arguments"), [
    ("list_contacts", {}),
    ("list_opportunities", {"filter": {"company_id": "com_001"}, "max_records": 3, "limit": 2}),
    ("get_company", {"id": "com_001"}),
    ("create_note", {"title": "Text carries it", "content": "x", "company_id": "com_001"}),
    ("update_contact", {"id": "con_0002", "title": "COO"}),
    ("delete_lead", {"id": "lea_001"}),
    ("search_crm", {"query": "Acme"}),
    ("get_account_overview", {"company": "com_002"}),
    ("log_interaction", {"type": "email", "contact": "con_0005", "note": "Sent the deck."}),
])
async def test_the_text_carries_every_structured_value(
    settings: Any, transport: ContractCheckingTransport, tool: str, arguments: dict[str, Any]
) -> None:
    """Why call_tool may pass on the text alone: a direct call's text holds every value of its
    structured content."""
    async with await connect(settings, transport, Selection()) as direct_client:
        direct = await direct_client.call_tool(tool, arguments)
    assert not direct.is_error and direct.structured_content, text_of(direct)
    for value in _scalars(direct.structured_content):
        assert value in text_of(direct), (value, text_of(direct))


async def test_call_tool_passes_progress_through(client: Client) -> None:
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    result = await client.call_tool("call_tool", {"name": "list_contacts", "arguments": {"max_records": 150,
                                                                                        "limit": 50}},
                                    progress_callback=on_progress)
    assert "\n150 contacts" in text_of(result) and seen == [50.0, 100.0, 150.0]


async def test_unknown_names_and_bad_meta_arguments(client: Client) -> None:
    typo = await client.call_tool("call_tool", {"name": "list_contact", "arguments": {}})
    assert typo.is_error and "Did you mean list_contacts" in text_of(typo)
    missing = await client.call_tool("describe_tool", {"name": "frobnicate"})
    assert missing.is_error and "find_tools" in text_of(missing)
    meta = await client.call_tool("call_tool", {"name": "find_tools", "arguments": {}})
    assert meta.is_error and "meta-tool" in text_of(meta)
    for name, args in (("call_tool", {}), ("call_tool", {"name": "list_users", "arguments": []}),
                       ("describe_tool", {"name": 3}), ("find_tools", {"words": "x"})):
        result = await client.call_tool(name, args)
        assert result.is_error and text_of(result).startswith(f"Invalid arguments for {name}")
    unknown = await client.call_tool("find_tools", {"resource": "widgets"})
    assert unknown.is_error and "contacts" in text_of(unknown)


async def test_find_by_words_resource_and_the_index(client: Client) -> None:
    call = text_of(await client.call_tool("find_tools", {"query": "log a call"}))
    assert {"log_interaction", "create_activity"} <= {line.split(":")[0] for line in call.splitlines()[1:]}
    deal = text_of(await client.call_tool("find_tools", {"query": "move a deal to another stage"}))
    assert deal.splitlines()[1].startswith("update_opportunity:")
    notes = text_of(await client.call_tool("find_tools", {"resource": "notes"}))
    names = [line.split(":")[0] for line in notes.splitlines()[1:]]
    assert set(names) == {"list_notes", "get_note", "create_note", "update_note", "delete_note", "get_account_overview",
                          "log_interaction"}
    index = text_of(await client.call_tool("find_tools", {}))
    every = [t.name for t in registry()]
    assert all(name in index for name in every)
    assert count_tokens(index) <= 300
    none = await client.call_tool("find_tools", {"query": "zzyzx"})
    assert not none.is_error and "No tool matches" in text_of(none)


async def test_read_only_and_narrow_selections_are_respected(
    settings: Any, transport: ContractCheckingTransport
) -> None:
    selection = Selection(read_only=True, resources=("contacts", "notes"), tool_mode="discover")
    async with await connect(settings, transport, selection) as client:
        listed = (await client.list_tools()).tools
        call_tool = next(t for t in listed if t.name == "call_tool")
        assert call_tool.annotations.read_only_hint is True
        find = next(t for t in listed if t.name == "find_tools")
        assert find.input_schema["properties"]["resource"]["enum"] == ["contacts", "notes"]
        found = text_of(await client.call_tool("find_tools", {"query": "create contact"}))
        assert "create_contact:" not in found and "Not enabled on this server: create_contact" in found
        refused = await client.call_tool("call_tool", {"name": "create_contact", "arguments": {"first_name": "X"}})
        assert refused.is_error and "--read-only" in text_of(refused)
        other = await client.call_tool("describe_tool", {"name": "list_companies"})
        assert other.is_error and "--resources" in text_of(other)
        ok = await client.call_tool("call_tool", {"name": "list_notes", "arguments": {"limit": 2}})
        assert not ok.is_error


def test_cli_flag_and_selection() -> None:
    parser = build_parser()
    assert selection_from_args(parser.parse_args(["--tool-mode", "discover"])).tool_mode == "discover"
    assert selection_from_args(parser.parse_args(["serve", "--tool-mode", "discover"])).tool_mode == "discover"
    assert selection_from_args(parser.parse_args(["--tool-mode", "discover", "serve"])).tool_mode == "discover"
    assert selection_from_args(parser.parse_args([])).tool_mode == "all"
    with pytest.raises(SystemExit):
        parser.parse_args(["--tool-mode", "some"])
    with pytest.raises(SelectionError, match="--tool-mode"):
        select_tools(Selection(tool_mode="some"))
    assert "find_tools" in select_tools(DISCOVER).mode and "find_tools" not in select_tools(Selection()).mode


async def test_call_tool_goes_through_delete_confirmation(settings: Any, transport: ContractCheckingTransport) -> None:
    """call_tool dispatches to the server's own tools/call handler, so --confirm-destructive applies:
    a client that cannot be asked gets the delete refused, as with a direct call."""
    server = build_server(settings, transport=transport, selection=DISCOVER, confirm_destructive=True)
    async with Client(server, raise_exceptions=True) as client:
        refused = await client.call_tool("call_tool", {"name": "delete_contact", "arguments": {"id": "con_0003"}})
        assert refused.is_error and "Not deleted" in text_of(refused)
        still = await client.call_tool("call_tool", {"name": "get_contact", "arguments": {"id": "con_0003"}})
        assert not still.is_error
