"""Large reads (`max_records`) through a real MCP client session on the sandbox: the server follows
the cursors, asks for no more than is wanted, stops at N, at the last page or at the token budget,
always returns the cursor to go on from and says why it stopped, and reports progress to a client
that asks for it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import httpx2
import jsonschema
import pytest
from mcp.client import Client
from mcp_support import ContractCheckingTransport, sandbox_settings, text_of

from crm_mcp import large_reads
from crm_mcp.client import RetryPolicy
from crm_mcp.render import LIST_OUTPUT_SCHEMA, estimate_tokens
from crm_mcp.server import build_server
from crm_mcp.tools import operation_tools

pytestmark = pytest.mark.anyio

EXTRA = 300  # contacts added to the seed's 200



class FailingPagesTransport(ContractCheckingTransport):
    """Checks requests like ContractCheckingTransport; while `fail_cursor_pages` is set, a list
    request that carries a cursor gets a 503 from here instead of reaching the sandbox."""

    fail_cursor_pages = False

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self.fail_cursor_pages and "cursor" in parse_qs(request.url.query.decode()):
            self.requests.append(request)
            return httpx2.Response(503, json={"status_code": 503, "error": "Service Unavailable",
                                              "type_name": "ServiceUnavailable", "message": "try later"})
        return await super().handle_async_request(request)


@pytest.fixture
def settings(sandbox_server: Any) -> Any:
    """A fresh consumer with 500 contacts: the seed's 200 and 300 more."""
    settings = sandbox_settings(sandbox_server)
    store = sandbox_server.store
    store.ensure_consumer(settings.consumer_id)
    base = store.get(settings.consumer_id, "contacts", "", "con_0002")
    for i in range(EXTRA):
        assert store.insert(settings.consumer_id, "contacts", "", {**base, "id": f"con_9{i:03d}"})
    return settings


@pytest.fixture
def transport() -> FailingPagesTransport:
    return FailingPagesTransport()


@pytest.fixture
async def client(settings: Any, transport: FailingPagesTransport) -> AsyncIterator[Client]:
    server = build_server(settings, transport=transport, client_options={"retry": RetryPolicy.never()})
    async with Client(server, raise_exceptions=True) as c:
        yield c
    assert transport.violations == []


def ids_in(text: str) -> list[str]:
    return re.findall(r"^(con_\d+) \|", text, flags=re.M)


def limits(transport: ContractCheckingTransport) -> list[int]:
    return [int(parse_qs(r.url.query.decode())["limit"][0]) for r in transport.requests
            if r.url.path == "/crm/contacts"]


async def test_max_records_follows_cursors_and_returns_where_to_go_on(
    client: Client, transport: FailingPagesTransport
) -> None:
    result = await client.call_tool("list_contacts", {"max_records": 450})
    assert not result.is_error, text_of(result)
    jsonschema.validate(result.structured_content, LIST_OUTPUT_SCHEMA)
    text = text_of(result)
    first = ids_in(text)
    assert len(first) == 450 == len(set(first)) == result.structured_content["count"]
    assert limits(transport) == [200, 200, 50]  # never more than is still wanted
    cursor = result.structured_content["next_cursor"]
    assert cursor and f'cursor="{cursor}"' in text
    assert "Read 450 in 3 pages; stopped: reached max_records=450." in text

    transport.requests.clear()
    rest = await client.call_tool("list_contacts", {"max_records": 100, "cursor": cursor})
    second = ids_in(text_of(rest))
    assert len(second) == EXTRA + 200 - 450 and not set(second) & set(first)
    assert "next_cursor" not in rest.structured_content
    assert "stopped: that was the last page." in text_of(rest)
    assert limits(transport) == [100]


async def test_progress_is_reported_to_a_client_that_asks(client: Client) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    result = await client.call_tool("list_contacts", {"max_records": 450}, progress_callback=on_progress)
    assert not result.is_error
    assert seen == [(200.0, 450.0, "200 of 450 contacts read"), (400.0, 450.0, "400 of 450 contacts read"),
                    (450.0, 450.0, "450 of 450 contacts read")]


async def test_without_a_progress_token_nothing_is_reported(settings: Any) -> None:
    from crm_mcp.runtime import CrmRuntime, Run, call_tool
    from crm_mcp.tools import by_name

    runtime = CrmRuntime(settings)
    try:
        result = await call_tool(by_name()["list_contacts"], {"max_records": 250}, Run(runtime))  # progress=None
    finally:
        await runtime.aclose()
    assert not result.is_error and result.structured is not None and result.structured["count"] == 250


async def test_token_budget_stops_early_with_the_cursor(
    client: Client, transport: FailingPagesTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(large_reads, "TOKEN_BUDGET", 3000)
    result = await client.call_tool("list_contacts", {"max_records": 400})
    text = text_of(result)
    got = ids_in(text)
    assert 40 <= len(got) < 400 and result.structured_content["count"] == len(got)
    assert "ids_only" not in result.structured_content  # pages were sized to fit: every row in full
    assert estimate_tokens(text) <= 3000
    assert "the next page would not fit in the ~3,000 tokens a result may take" in text
    assert all(n <= 200 for n in limits(transport))
    cursor = result.structured_content["next_cursor"]
    rest = await client.call_tool("list_contacts", {"max_records": 10, "cursor": cursor})
    assert not set(ids_in(text_of(rest))) & set(got)
    assert ids_in(text_of(rest))[0] == f"con_{len(got) + 1:04d}"


async def test_a_failing_later_page_returns_what_was_read(client: Client, transport: FailingPagesTransport) -> None:
    transport.fail_cursor_pages = True
    result = await client.call_tool("list_contacts", {"max_records": 300})
    assert not result.is_error
    text = text_of(result)
    assert len(ids_in(text)) == 200
    assert "stopped: page 2 failed:" in text and "503" in text
    retry = await client.call_tool("list_contacts", {"limit": 1})  # first pages still work
    assert not retry.is_error
    transport.fail_cursor_pages = False
    rest = await client.call_tool("list_contacts", {"max_records": 100,
                                                    "cursor": result.structured_content["next_cursor"]})
    assert ids_in(text_of(rest))[0] == "con_9000"  # the first record after the 200 read


async def test_a_failing_first_page_is_an_error(client: Client, sandbox_server: Any) -> None:
    sandbox_server.faults.clear()
    sandbox_server.faults.fail(503, times=None, probability=1.0, methods={"GET"}, path="/crm/contacts")
    try:
        result = await client.call_tool("list_contacts", {"max_records": 300})
    finally:
        sandbox_server.faults.clear()
    assert result.is_error and "503" in text_of(result)


async def test_cap_small_lists_and_invalid_values(client: Client) -> None:
    capped = await client.call_tool("list_contacts", {"max_records": 5000, "fields": ["name"]})
    assert capped.structured_content["count"] == 500
    assert "(max_records is capped at 1000)" in text_of(capped)
    users = await client.call_tool("list_users", {"max_records": 100, "limit": 5})
    assert users.structured_content["count"] == 12 and "next_cursor" not in users.structured_content
    assert "Read 12 in 3 pages" in text_of(users)
    schemas = await client.call_tool("list_custom_object_schemas", {"max_records": 10})
    assert not schemas.is_error, text_of(schemas)
    for bad in ({"max_records": 0}, {"max_records": "10"}, {"max_records": 10.5}):
        result = await client.call_tool("list_contacts", bad)
        assert result.is_error and "max_records" in text_of(result)


def test_every_list_tool_offers_max_records_compactly() -> None:
    lists = [t for t in operation_tools() if t.kind == "list"]
    assert len(lists) == 10
    for tool in lists:
        props = tool.input_schema["properties"]
        assert props["max_records"] == {"type": "integer", "description": "Total to read across pages (≤ 1000)"}
        assert props["limit"] == {"maximum": 200, "type": "integer"}
    assert not any("max_records" in t.input_schema["properties"] for t in operation_tools() if t.kind != "list")


async def test_max_records_on_custom_objects_passes_the_schema_id(
    client: Client, transport: FailingPagesTransport
) -> None:
    result = await client.call_tool("list_custom_objects", {"object_id": "cos_projects", "max_records": 4,
                                                            "limit": 3})
    assert not result.is_error, text_of(result)
    got = re.findall(r"^(cob_\d+) \|", text_of(result), flags=re.M)
    assert got == ["cob_001", "cob_002", "cob_003", "cob_004"]
    paths = [r.url.path for r in transport.requests]
    assert paths == ["/crm/custom-objects/cos_projects"] * 2
    assert "Read 4 in 2 pages; stopped: reached max_records=4." in text_of(result)
