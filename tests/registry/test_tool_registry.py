"""The tool registry and the call pipeline: each tool is one value whose published definition is
what the registry derives from its declaration; each has the OAuth scope its calls need; every
call, direct or through discover mode, runs the same pipeline, whose answers carry no secret."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from mcp.client import Client
from mcp_support import sandbox_settings, text_of

from crm_mcp.config import ConfigError, settings_from_env
from crm_mcp.operations import OPERATIONS
from crm_mcp.selection import Selection
from crm_mcp.server import build_server
from crm_mcp.tools import WORKFLOWS, Tool, declarations, derive_input_schema, registry

pytestmark = pytest.mark.anyio

READ_WORKFLOWS = {"search_crm", "get_account_overview"}
# the write journal's tools (crm_mcp.changes_tools): undo_change needs crm:write even when it deletes
JOURNAL_SCOPES = {"undo_change": "crm:write", "list_changes": "crm:read", "crm_changes": "crm:read"}


def _published(tool: Tool) -> dict[str, Any]:
    return {**tool.to_wire(), "resources": tool.resources, "scope": tool.scope, "toolset": tool.toolset}


def test_published_definitions_are_exactly_what_the_registry_derives() -> None:
    """tools.json (precomputed for start-up speed) holds, for every declared tool, the compaction
    of its argument model, and the rest of the definition of each tool declared in a module of
    its own: a declaration changed without `python tools/generate.py` fails here."""
    published = {t.name: _published(t) for t in registry()}
    derived = {t.name: {**_published(t), "inputSchema": derive_input_schema(t)} for t in declarations()}
    assert published == derived
    assert [t.name for t in registry()] == [*(op.tool_name for op in OPERATIONS), *sorted(
        READ_WORKFLOWS | {"log_interaction"}, key=["search_crm", "get_account_overview", "log_interaction"].index),
        *JOURNAL_SCOPES]


def test_every_tool_declares_the_scope_its_calls_need() -> None:
    expected = {"list": "crm:read", "get": "crm:read", "create": "crm:write", "update": "crm:write",
                "delete": "crm:delete"}
    for tool in registry():
        if tool.operation is not None:
            assert tool.scope == expected[tool.operation.action], tool.name
            assert tool.resources == {tool.operation.resource} and tool.toolset == tool.operation.resource
        elif tool.name in JOURNAL_SCOPES:
            assert tool.scope == JOURNAL_SCOPES[tool.name] and tool.toolset == "changes", tool.name
        else:
            assert tool.toolset == WORKFLOWS
            assert tool.scope == ("crm:read" if tool.name in READ_WORKFLOWS else "crm:write"), tool.name
        # the read-only hint agrees with the scope: a tool that needs no write scope never writes
        assert bool(tool.annotations.get("readOnlyHint")) == (tool.scope == "crm:read"), tool.name


def test_descriptions_say_only_what_the_tool_takes() -> None:
    by_name = {t.name: t for t in registry()}
    for tool in by_name.values():
        props = tool.input_schema["properties"]
        if "filter:" in tool.description or ": filter" in tool.description:
            assert "filter" in props, tool.name
        if "sort" in tool.description.split(":")[-1]:
            assert "sort" in props, tool.name
        if 'fields=["*"]' in tool.description:
            assert "fields" in props, tool.name
    assert by_name["list_notes"].description == "Find notes: page with cursor."
    assert by_name["list_contacts"].description == "Find contacts: filter, sort, page with cursor."
    assert by_name["get_custom_object_schema"].description == "One custom object schema by id: all fields."


async def test_a_get_tool_without_fields_shows_the_whole_record(sandbox_server: Any) -> None:
    async with Client(build_server(sandbox_settings(sandbox_server))) as client:
        text = text_of(await client.call_tool("get_custom_object_schema", {"id": "cos_projects"}))
    assert "fields=" not in text and "more fields" not in text
    assert "created_by: usr_12" in text and "field: budget (fld_budget): currency" in text


async def test_discover_call_tool_runs_the_pipeline_and_logs_one_line(
    sandbox_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = build_server(sandbox_settings(sandbox_server), selection=Selection(tool_mode="discover"))
    with caplog.at_level(logging.INFO, logger="crm_mcp.calls"):
        async with Client(server) as client:
            result = await client.call_tool("call_tool", {"name": "get_contact", "arguments": {"id": "con_0001"}})
            bad = await client.call_tool("call_tool", {"name": "search_crm", "arguments": {"limit": 3}})
    assert not result.is_error and "Jane Doe" in text_of(result)
    assert bad.is_error and text_of(bad).startswith("Invalid arguments for search_crm: query: Field required")
    lines = [r.getMessage() for r in caplog.records if r.name == "crm_mcp.calls"]
    assert len(lines) == 2
    assert lines[0].startswith("tool=get_contact status=200 ms=") and "request_id=req_" in lines[0]
    assert lines[1].startswith("tool=search_crm status=invalid-arguments ms=")


async def test_secrets_echoed_in_successful_answers_and_resources_are_redacted(sandbox_server: Any) -> None:
    """A CRM (or a hostile upstream) may echo the key in ordinary data: a contact's name, a
    pipeline's name. Results (text and structured content) and resources never carry it."""
    key = f"sk_canary_{uuid.uuid4().hex}"
    settings = sandbox_settings(sandbox_server)
    settings = type(settings)(api_key=key, app_id=settings.app_id, consumer_id=settings.consumer_id,
                              base_url=settings.base_url)
    async with Client(build_server(settings)) as client:
        created = await client.call_tool("create_contact", {"first_name": "Leaky", "last_name": key})
        assert not created.is_error, text_of(created)
        await client.call_tool("create_pipeline", {"name": f"Pipe {key}", "stages": [{"name": key}]})
        contact_id = (created.structured_content or {})["id"]
        answers = [
            await client.call_tool("list_contacts", {"filter": {"first_name": "Leaky"},
                                                     "fields": ["id", "first_name", "last_name"]}),
            await client.call_tool("search_crm", {"query": "Leaky"}),
            await client.call_tool("get_contact", {"id": contact_id, "fields": ["*"]}),
        ]
        pipelines = await client.read_resource("crm://pipelines")
    texts = [text_of(a) + repr(a.structured_content) for a in answers] + [pipelines.contents[0].text]
    assert "Leaky | [REDACTED]" in texts[0] and "last_name: [REDACTED]" in texts[2]
    assert "Pipe [REDACTED]" in texts[-1]
    for text in texts:
        assert key not in text and key[:12] not in text


def test_a_short_request_state_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="CRM_MCP_REQUEST_STATE_KEY must be at least 32 characters"):
        settings_from_env({"CRM_MCP_REQUEST_STATE_KEY": "short"})
    settings = settings_from_env({"CRM_MCP_REQUEST_STATE_KEY": "k" * 32, "CRM_MCP_SANDBOX_DB": ":memory:",
                                  "CRM_MCP_ALLOWED_HOSTS": "crm.example.com:443, other:80"})
    assert settings.request_state_key == "k" * 32 and settings.sandbox_db == ":memory:"
    assert settings.allowed_hosts == ("crm.example.com:443", "other:80")
    assert "k" * 32 not in repr(settings)


async def test_resources_obey_the_resources_selection(sandbox_server: Any) -> None:
    from mcp.shared.exceptions import MCPError

    server = build_server(sandbox_settings(sandbox_server), selection=Selection(resources=("contacts", "notes")))
    async with Client(server) as client:
        listed = sorted(str(r.uri) for r in (await client.list_resources()).resources)
        [template] = (await client.list_resource_templates()).resource_templates
        fields = await client.read_resource("crm://fields/notes")
        with pytest.raises(MCPError, match="Unknown resource 'crm://pipelines'"):
            await client.read_resource("crm://pipelines")
        with pytest.raises(MCPError, match="resource one of contacts, notes"):
            await client.read_resource("crm://fields/companies")
    assert listed == ["crm://fields/contacts", "crm://fields/notes"]
    assert "(contacts, notes)" in (template.description or "")
    assert fields.contents[0].text.startswith("notes fields")


ODD_BODIES: list[dict[str, Any]] = [
    {"data": [{"id": "c1", "first_name": "Odd"}], "meta": ["cursors", "next"]},
    {"data": [{"id": "c1", "first_name": "Odd"}], "meta": {"cursors": "abc"}},
    {"data": [{"id": "c1", "first_name": "Odd"}, "stray", 7], "meta": {"cursors": {"next": 42}}},
    {"data": {"id": "c1"}, "meta": None},
    {"data": None},
]


@pytest.mark.parametrize("body", ODD_BODIES)
async def test_odd_envelopes_from_upstream_are_read_without_internal_errors(body: dict[str, Any]) -> None:
    """An upstream that breaks the envelope (meta a list, cursors a string, a cursor that is no
    string, data an object): lists, large reads, workflows and resources answer with what they can."""
    import httpx2

    from crm_mcp.config import Settings

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json={"status_code": 200, "status": "OK", **body},
                               headers={"x-request-id": "req-odd"})

    settings = Settings(api_key="odd-key-0123456789", app_id="app", consumer_id="c",
                        base_url="http://upstream.invalid")
    server = build_server(settings, transport=httpx2.MockTransport(answer))
    async with Client(server) as client:
        results = [
            await client.call_tool("list_contacts", {"limit": 5}),
            await client.call_tool("list_contacts", {"max_records": 30}),
            await client.call_tool("search_crm", {"query": "Odd"}),
            await client.call_tool("get_account_overview", {"company": "com_1"}),
        ]
        pipelines = await client.read_resource("crm://pipelines")
    for result in results:
        assert "failed inside the server" not in text_of(result), text_of(result)
    rows = isinstance(body.get("data"), list)
    assert ("c1" in text_of(results[0])) == rows
    assert "Last page." in text_of(results[0]) or "No contacts found. Last page." in text_of(results[0])
    assert pipelines.contents[0].text.startswith("Pipelines (")


@pytest.mark.slow  # a Python process of its own
def test_start_up_does_not_import_the_modules_that_declare_tools() -> None:
    """The workflow and journal tools are published from tools.json: building a server and its tool
    list imports neither their modules nor the journal (~10 ms of start-up); the first call does.
    Nor the API client and its errors (~10 ms, most of it their dataclasses): a call loads them."""
    import subprocess
    import sys

    code = (
        "import sys; from crm_mcp.config import Settings; from crm_mcp.server import build_server;"
        "build_server(Settings(api_key='k', app_id='a', consumer_id='c'));"
        "from crm_mcp.tools import registry; assert len(registry()) == 56;"
        "print(sorted(m for m in sys.modules if m.startswith(('crm_mcp.workflows', 'crm_mcp.journal', "
        "'crm_mcp.changes_tools', 'crm_mcp.client', 'crm_mcp.errors', 'crm_mcp.error_decoding'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
