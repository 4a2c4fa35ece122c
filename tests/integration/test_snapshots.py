"""What the server publishes and answers, pinned: tools/list in each mode and the results (text and
structured content) of a fixed set of calls on the seed data, through a real MCP client session.

A refactor must leave these unchanged. A change that is meant (a new hint, a schema rule, a seed
date) is accepted by regenerating the files and reviewing their diff:

    CRM_MCP_UPDATE_SNAPSHOTS=1 python -m pytest tests/integration/test_snapshots.py
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client
from mcp_support import sandbox_settings

from crm_mcp.selection import Selection
from crm_mcp.server import build_server

pytestmark = pytest.mark.anyio

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("CRM_MCP_UPDATE_SNAPSHOTS") == "1"

MODES: dict[str, Selection] = {
    "default": Selection(),
    "read_only": Selection(read_only=True),
    "discover": Selection(tool_mode="discover"),
}

# (label, tool, arguments): reads of the seed data, writes on a fresh consumer, each workflow, errors.
CALLS: list[tuple[str, str, dict[str, Any]]] = [
    ("list_contacts", "list_contacts", {"limit": 5}),
    ("list_contacts_filter", "list_contacts", {"filter": {"email": "jane.doe@acme.example"}}),
    ("list_companies_fields", "list_companies", {"limit": 3, "fields": ["name", "industry"]}),
    ("list_opportunities_max_records", "list_opportunities", {"max_records": 30, "limit": 10}),
    ("list_pipelines", "list_pipelines", {}),
    ("list_notes", "list_notes", {"limit": 3}),
    ("get_contact", "get_contact", {"id": "con_0001"}),
    ("get_company_all_fields", "get_company", {"id": "com_001", "fields": ["*"]}),
    ("get_opportunity", "get_opportunity", {"id": "opp_001"}),
    ("get_custom_object_schema", "get_custom_object_schema", {"id": "cos_projects"}),
    ("create_note", "create_note", {"title": "Call recap", "content": "Discussed renewal.", "company_id": "com_001"}),
    ("update_contact", "update_contact", {"id": "con_0001", "title": "COO"}),
    ("update_opportunity_stage", "update_opportunity", {"id": "opp_001", "pipeline_stage_id": "stg_nb_negotiation"}),
    ("delete_note", "delete_note", {"id": "not_002"}),
    ("search_crm", "search_crm", {"query": "acme"}),
    ("get_account_overview", "get_account_overview", {"company": "com_001"}),
    ("log_interaction", "log_interaction", {"type": "call", "contact": "con_0001", "title": "Check-in",
                                            "when": "2026-11-27T15:00:00Z", "note": "Asked for a quote."}),
    ("error_not_found", "get_contact", {"id": "con_nope"}),
    ("error_invalid_arguments", "list_contacts", {"limit": "five", "colour": "red"}),
    ("error_workflow_invalid", "log_interaction", {"type": "call"}),
]

DISCOVER_CALLS: list[tuple[str, str, dict[str, Any]]] = [
    ("find_tools_index", "find_tools", {}),
    ("find_tools_query", "find_tools", {"query": "log a call"}),
    ("describe_tool", "describe_tool", {"name": "create_contact"}),
    ("call_tool_get_contact", "call_tool", {"name": "get_contact", "arguments": {"id": "con_0001"}}),
]


def check(name: str, value: Any) -> None:
    """Compare `value` with the stored snapshot `name` (or write it when updating)."""
    path = SNAPSHOTS / f"{name}.json"
    text = json.dumps(value, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    if UPDATE or not path.exists():
        path.write_text(text, encoding="utf-8")
        if not UPDATE:
            pytest.fail(f"snapshot {path.name} did not exist and was written; check it in")
        return
    assert text == path.read_text(encoding="utf-8"), f"{path.name} changed (CRM_MCP_UPDATE_SNAPSHOTS=1 to accept)"


NEW_ID = re.compile(r"([a-z]{3})_[0-9a-f]{16}\b")  # ids the sandbox gives created records, random


CURSOR = re.compile(r'cursor=("[^"]+"|[^\s.,]+)')  # the sandbox's cursors name rows of its shared database


def result_of(result: Any) -> dict[str, Any]:
    structured = result.structured_content
    if structured and "next_cursor" in structured:
        structured = {**structured, "next_cursor": "<cursor>"}
    value = {
        "text": CURSOR.sub("cursor=<cursor>", "\n".join(getattr(c, "text", "") for c in result.content)),
        "structured": structured,
        "is_error": bool(result.is_error),
    }
    text = NEW_ID.sub(r"\1_<new>", json.dumps(value))
    return json.loads(text.replace(datetime.now(UTC).date().isoformat(), "<today>"))


@pytest.mark.parametrize("mode", list(MODES))
async def test_tools_list(sandbox_server: Any, mode: str) -> None:
    settings = sandbox_settings(sandbox_server)
    server = build_server(settings, selection=MODES[mode])
    async with Client(server) as client:
        tools = (await client.list_tools()).tools
        instructions = (client.instructions or "").replace(settings.base_url, "<sandbox>")
        instructions = instructions.replace(settings.consumer_id, "<consumer>")
    check(f"tools_list_{mode}", {
        "instructions": instructions,
        "tools": [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in tools],
    })


async def test_call_results(sandbox_server: Any) -> None:
    server = build_server(sandbox_settings(sandbox_server))  # a fresh consumer: the seed data as written
    async with Client(server) as client:
        results = {label: result_of(await client.call_tool(tool, args)) for label, tool, args in CALLS}
        pipelines = await client.read_resource("crm://pipelines")
        fields = await client.read_resource("crm://fields/contacts")
    results["resource_pipelines"] = {"text": pipelines.contents[0].text}
    results["resource_fields_contacts"] = {"text": fields.contents[0].text}
    for label, value in results.items():
        check(f"call_{label}", value)


async def test_discover_results(sandbox_server: Any) -> None:
    server = build_server(sandbox_settings(sandbox_server), selection=MODES["discover"])
    async with Client(server) as client:
        for label, tool, args in DISCOVER_CALLS:
            check(f"discover_{label}", result_of(await client.call_tool(tool, args)))
