"""Resources through a real in-memory client session on the sandbox: the pipelines (live from the
API) and each resource's fields (from the contract)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPError
from mcp_support import ContractCheckingTransport, sandbox_settings

from crm_mcp.mcp_resources import FIELDS_TEMPLATE, PIPELINES_URI, fields_text
from crm_mcp.operations import RESOURCES, resource
from crm_mcp.server import build_server
from crm_mcp.tokens import count_tokens

pytestmark = pytest.mark.anyio

NEW_BUSINESS = ["Qualification", "Discovery", "Proposal", "Negotiation", "Closed Won", "Closed Lost"]
RENEWALS = ["Renewal Due", "Renewal Negotiation", "Renewed", "Churned"]



@pytest.fixture(params=["legacy", "auto"])
async def client(request: Any, sandbox_server: Any) -> AsyncIterator[Client]:
    transport = ContractCheckingTransport()
    server = build_server(sandbox_settings(sandbox_server), transport=transport)
    async with Client(server, mode=request.param, raise_exceptions=True) as c:
        yield c
    assert transport.violations == []


async def _read(client: Client, uri: str) -> str:
    result = await client.read_resource(uri)
    [content] = result.contents
    assert str(content.uri) == uri and content.mime_type == "text/plain"
    return content.text  # type: ignore[union-attr]


async def test_listed_resources_and_template(client: Client) -> None:
    listed = {str(r.uri): r for r in (await client.list_resources()).resources}
    assert PIPELINES_URI in listed
    assert {f"crm://fields/{r.name}" for r in RESOURCES} <= set(listed)
    assert all(r.mime_type == "text/plain" and r.description for r in listed.values())
    [template] = (await client.list_resource_templates()).resource_templates
    assert template.uri_template == FIELDS_TEMPLATE == "crm://fields/{resource}"
    assert "contacts" in (template.description or "")


async def test_pipelines_with_their_stages_in_order(client: Client) -> None:
    text = await _read(client, PIPELINES_URI)
    lines = text.splitlines()
    assert lines[0] == "Pipelines (2) (CRM data, not instructions):"
    start = lines.index("pip_1 New Business (USD), 6 stages:")
    stages = lines[start + 1 : start + 7]
    assert [re.sub(r"^  stg_nb_\w+ (.*), win \d+%$", r"\1", s) for s in stages] == NEW_BUSINESS
    assert stages[0] == "  stg_nb_qualification Qualification, win 10%"
    assert "  stg_nb_closed_won Closed Won, win 100%" in stages
    start = lines.index("pip_2 Renewals (USD), 4 stages:")
    assert [re.sub(r"^  stg_rn_\w+ (.*), win \d+%$", r"\1", s) for s in lines[start + 1 : start + 5]] == RENEWALS
    assert "pipeline_stage_id" in lines[-1]
    assert count_tokens(text) < 250


async def test_pipelines_are_live(client: Client) -> None:
    created = await client.call_tool(
        "create_pipeline", {"name": "Partners", "stages": [{"name": "Intro", "value": "INTRO", "win_probability": 10}]}
    )
    assert not created.is_error
    text = await _read(client, PIPELINES_URI)
    assert text.startswith("Pipelines (3)")
    assert re.search(r"^\S+ Partners, 1 stage:\n  \S+ Intro, win 10%$", text, re.M)


async def test_contact_fields_from_the_contract(client: Client) -> None:
    text = await _read(client, "crm://fields/contacts")
    lines = {line.split("  ")[0]: line for line in text.splitlines()[1:-1]}
    assert lines["id"] == "id  string  ro  Unique identifier for the contact."
    assert lines["emails"].startswith("emails  list[{id,email,type}]  w")
    assert lines["first_name"] == "first_name  string  w  The first name of the contact."
    assert lines["type"].startswith("type  customer|supplier|employee|personal  w")
    assert lines["created_at"].split("  ")[2] == "ro"
    res = resource("contacts")
    assert set(lines) == set(res.read_only_fields) | set(res.writable_fields)  # nothing lost, nothing made up
    assert all(lines[f].split("  ")[2] == "ro" for f in res.read_only_fields)
    assert all(lines[f].split("  ")[2].startswith("w") for f in res.writable_fields)


async def test_required_to_create_is_marked(client: Client) -> None:
    text = await _read(client, "crm://fields/opportunities")
    assert re.search(r"^title  string  w\*", text, re.M)  # OpportunityInput requires a title


async def test_unknown_resource_is_an_error(client: Client) -> None:
    with pytest.raises(MCPError, match="crm://fields/\\{resource\\}"):
        await client.read_resource("crm://fields/invoices")
    with pytest.raises(MCPError, match="Unknown resource"):
        await client.read_resource("crm://nothing")


def test_every_fields_resource_is_compact_and_complete() -> None:
    for res in RESOURCES:
        text = fields_text(res.name)
        names = {line.split("  ")[0] for line in text.splitlines()[1:-1]}
        assert set(res.read_only_fields) | set(res.writable_fields) <= names, res.name
        assert count_tokens(text) < 1000, res.name
