"""The 50 operation tools through a real MCP client session (in memory) against the sandbox:
listed with valid schemas and the right annotations, within the token budget, and each called
with a valid and an invalid input; every request the server sends is checked against the contract."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import http_clients
import jsonschema
import pytest
from mcp.client import Client
from mcp_support import ContractCheckingTransport, sandbox_settings, text_of, valid_arguments
from sweeps import split_sweep

from crm_mcp.operations import OPERATIONS
from crm_mcp.server import build_server
from crm_mcp.tokens import json_tokens
from crm_mcp.tools import operation_tools

pytestmark = pytest.mark.anyio

# The protocol's defaults for hints a tool leaves out.
ANNOTATION_DEFAULTS = {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": True}

EXPECTED_HINTS = {
    "list": {"readOnlyHint": True, "openWorldHint": True},
    "get": {"readOnlyHint": True, "openWorldHint": True},
    "create": {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": False, "openWorldHint": True},
    "update": {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": True, "openWorldHint": True},
    "delete": {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": True, "openWorldHint": True},
}



@pytest.fixture
def transport() -> ContractCheckingTransport:
    return ContractCheckingTransport()


@pytest.fixture
async def client(sandbox_server: Any, transport: ContractCheckingTransport) -> AsyncIterator[Client]:
    server = build_server(sandbox_settings(sandbox_server), transport=transport)
    async with Client(server, raise_exceptions=True) as c:
        yield c
    assert transport.violations == []


def effective_hints(annotations: Any) -> dict[str, bool]:
    """The hints a client reads, the protocol's defaults filling what the server left out."""
    given = annotations.model_dump(by_alias=True, exclude_none=True) if annotations else {}
    return {k: given.get(k, default) for k, default in ANNOTATION_DEFAULTS.items()}


async def test_fifty_tools_with_valid_schemas_and_true_annotations(client: Client) -> None:
    listed = (await client.list_tools()).tools
    names = [t.name for t in listed]
    assert names[:50] == [op.tool_name for op in OPERATIONS]
    assert set(names[50:]) == {"search_crm", "get_account_overview", "log_interaction", "undo_change",
                               "list_changes", "crm_changes"}
    by_op = {op.tool_name: op for op in OPERATIONS}
    for tool in listed:
        assert re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", tool.name)
        assert tool.title and tool.description
        jsonschema.Draft202012Validator.check_schema(tool.input_schema)
        assert tool.input_schema["type"] == "object"
        assert tool.output_schema is not None
        jsonschema.Draft202012Validator.check_schema(tool.output_schema)
        if tool.name not in by_op:
            continue  # workflow tools: see tests/registry/test_workflows.py
        hints = effective_hints(tool.annotations)
        for key, value in EXPECTED_HINTS[by_op[tool.name].action].items():
            assert hints[key] == value, (tool.name, key)
    # read-only fields are never offered; every writable field is
    create_contact = next(t for t in listed if t.name == "create_contact")
    props = create_contact.input_schema["properties"]
    assert "id" not in props and "created_at" not in props and "updated_by" not in props
    for field in ("first_name", "last_name", "emails", "phone_numbers", "addresses", "company_id", "tags"):
        assert field in props
    assert not {"consumer_id", "service_id"} & set(props)  # off by default: tests/registry/test_schemas.py


async def test_tools_list_is_stable(client: Client) -> None:
    first = (await client.list_tools()).tools
    await client.call_tool("list_users", {"limit": 1})
    second = (await client.list_tools()).tools
    assert [t.model_dump() for t in first] == [t.model_dump() for t in second]


def test_token_budget_of_the_tool_list() -> None:
    wire = [t.to_wire() for t in operation_tools()]
    total = json_tokens(wire)
    largest = max((json_tokens(t), t["name"]) for t in wire)
    assert total <= 12_500, total
    assert largest[0] <= 750, largest


# The inner loop calls each kind of operation on contacts; the other resources' tools run with the
# slow tests (the fast run still calls every tool validly and invalidly in tests/security/test_secrets.py).
@pytest.mark.parametrize("op", split_sweep(OPERATIONS, fast=lambda op: op.resource == "contacts",
                                           ids=lambda op: op.tool_name))
async def test_every_tool_valid_then_invalid(client: Client, op: Any) -> None:
    tool = next(t for t in operation_tools() if t.name == op.tool_name)
    result = await client.call_tool(op.tool_name, valid_arguments(op.tool_name, op.resource, op.action))
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    jsonschema.validate(result.structured_content, tool.output_schema)
    assert text_of(result)

    bad = dict(valid_arguments(op.tool_name, op.resource, op.action))
    bad["no_such_argument"] = 1
    if op.action == "list":
        bad["limit"] = 0
    elif op.path_params:
        bad["id"] = "../users"
    result = await client.call_tool(op.tool_name, bad)
    assert result.is_error
    message = text_of(result)
    assert "no_such_argument" in message
    assert "Traceback" not in message
    if op.action == "list":
        assert "limit" in message
    elif op.path_params:
        assert "id" in message
    # the server keeps serving
    again = await client.call_tool(op.tool_name, valid_arguments(op.tool_name, op.resource, op.action))
    assert op.action in ("create", "delete") or not again.is_error


async def _raw_and_result(client: Client, settings: Any, tool: str, args: dict[str, Any], path: str,
                          params: dict[str, Any]) -> tuple[int, int]:

    from crm_mcp.tokens import compact_json, count_tokens

    headers = {"Authorization": f"Bearer {settings.api_key}", "x-apideck-app-id": settings.app_id,
               "x-apideck-consumer-id": settings.consumer_id}
    async with http_clients.async_client(base_url=settings.base_url, headers=headers) as http:
        raw = (await http.get(path, params=params)).json()
    result = await client.call_tool(tool, args)
    assert not result.is_error, text_of(result)
    paid = count_tokens(text_of(result)) + count_tokens(compact_json(result.structured_content))
    return count_tokens(compact_json(raw)), paid


@pytest.mark.parametrize(("limit", "ratio"), [(20, 5), (100, 6)])
async def test_list_result_costs_a_fraction_of_the_raw_page(sandbox_server: Any, limit: int, ratio: int) -> None:
    settings = sandbox_settings(sandbox_server)
    async with Client(build_server(settings)) as client:
        raw, paid = await _raw_and_result(
            client, settings, "list_contacts", {"limit": limit}, "/crm/contacts", {"limit": limit}
        )
    assert paid * ratio <= raw, (paid, raw)


async def test_single_record_costs_a_third_of_the_raw_record(sandbox_server: Any) -> None:
    settings = sandbox_settings(sandbox_server)
    async with Client(build_server(settings)) as client:
        raw, paid = await _raw_and_result(client, settings, "get_contact", {"id": "con_0001"},
                                          "/crm/contacts/con_0001", {})
    assert paid * 3 <= raw, (paid, raw)
