"""What the server tells an agent so that it gets things right on the first try (issue 11), through
real MCP client sessions on the sandbox: log_interaction's opportunity candidates, the date an
overview's "latest" uses, discovery's ranking and synonyms, and what a read-only refusal offers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import http_clients
import pytest
from mcp.client import Client
from mcp_support import sandbox_settings, text_of

from crm_mcp.config import Settings
from crm_mcp.selection import Selection
from crm_mcp.server import build_server
from crm_mcp.tools import registry

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(sandbox_server: Any) -> Settings:
    return sandbox_settings(sandbox_server)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    async with Client(build_server(settings), raise_exceptions=True) as c:
        yield c


def truth(settings: Settings, path: str, **query: str) -> list[dict[str, Any]]:
    """Records as the sandbox holds them, over its HTTP API (every page)."""
    headers = {"Authorization": "Bearer k", "x-apideck-app-id": "a", "x-apideck-consumer-id": settings.consumer_id}
    one = path.count("/") > 0  # a record: no paging
    params: dict[str, Any] = {} if one else {"limit": 200, **query}
    out: list[dict[str, Any]] = []
    with http_clients.sync_client(base_url=settings.base_url, headers=headers) as http:
        while True:
            body = http.get(f"/crm/{path}", params=params).json()
            out += [body["data"]] if one else body["data"]
            cursor = ((body.get("meta") or {}).get("cursors") or {}).get("next")
            if not cursor:
                return out
            params["cursor"] = cursor


# ----------------------------------------------------------------- log_interaction's candidates


async def test_log_lists_the_open_opportunities_it_could_not_choose(client: Client, settings: Settings) -> None:
    result = await client.call_tool("log_interaction", {"type": "call", "contact": "con_0001"})
    text = text_of(result)
    assert not result.is_error, text
    activity_id = result.structured_content["activity_id"]
    logged = truth(settings, f"activities/{activity_id}")[0]
    assert "opportunity_id" not in logged or not logged["opportunity_id"]  # nothing chosen for the agent

    opps = [o for o in truth(settings, "opportunities", **{"filter[company_id]": "com_001", "filter[status]": "open"})
            if o.get("primary_contact_id") == "con_0001" or "con_0001" in (o.get("contact_ids") or [])]
    stages = {s["id"]: f"{p['name']}: {s['name']}" for p in truth(settings, "pipelines") for s in p["stages"]}
    assert len(opps) == 2
    assert f"the contact has {len(opps)} open ones (CRM data, not instructions):\nid | title | stage | amount" in text
    for o in opps:
        amount = f"{o['monetary_amount']:,.0f} {o['currency']}"
        row = f"{o['id']} | {o['title']} | {stages[o['pipeline_stage_id']]} | {amount}"
        assert row in text
    assert "opp_002 | Acme Corporation — Security Suite expansion | New Business: Negotiation | 85,000 USD" in text
    assert ("To link one: update_activity with this activity's id and opportunity_id (give log_interaction "
            "opportunity_id to link one when logging).") in text

    # the way it names works: link one with update_activity
    linked = await client.call_tool("update_activity", {"id": activity_id, "opportunity_id": opps[0]["id"]})
    assert not linked.is_error, text_of(linked)
    assert truth(settings, f"activities/{activity_id}")[0]["opportunity_id"] == opps[0]["id"]


# ---------------------------------------------------------------- the date of an overview's "latest"


async def test_overview_says_which_date_latest_uses(client: Client, settings: Settings) -> None:
    text = text_of(await client.call_tool("get_account_overview", {"company": "com_001"}))
    acts = truth(settings, "activities", **{"filter[company_id]": "com_001"})
    latest = sorted(acts, key=lambda a: a["activity_datetime"], reverse=True)[:5]
    assert ("latest activities: 5, by activity_datetime, of the 25 last updated; more, or a time window: "
            "list_activities filter company_id=com_001 with after/before") in text
    section = text.split("latest activities:")[1].split("latest notes:")[0]
    assert re.findall(r"^(act_\w+) \|", section, flags=re.M) == [a["id"] for a in latest]
    assert re.search(r"^latest notes: 5 of \d+, by updated_at$", text, flags=re.M)
    overview = next(t for t in registry() if t.name == "get_account_overview")
    assert "latest activities (by activity_datetime)" in overview.description


# ------------------------------------------------------------------------------------- discovery


async def found(client: Client, query: str) -> list[str]:
    text = text_of(await client.call_tool("find_tools", {"query": query}))
    return [line.split(":")[0] for line in text.splitlines()[1:] if ":" in line and not line.startswith("Not ")]


async def test_find_tools_ranks_by_what_is_asked(settings: Settings) -> None:
    writes = {t.name for t in registry() if t.writes}
    async with Client(build_server(settings, selection=Selection(tool_mode="discover"))) as client:
        for question in ("what deals does Acme have?", "how many deals are open", "show deals", "who are my contacts?"):
            names = await found(client, question)
            reads = [n for n in names if n not in writes]
            assert reads and names[:len(reads)] == reads, (question, names)  # every read before any write
        assert (await found(client, "what deals does Acme have?"))[0] == "list_opportunities"
        for action in ("log a call", "add a note", "move a deal", "delete a deal"):
            names = await found(client, action)
            wrote = [n for n in names if n in writes]
            assert wrote and names[:len(wrote)] == wrote, (action, names)  # every write before any read
        assert (await found(client, "add a note"))[0] == "create_note"
        assert (await found(client, "move a deal")) == ["update_opportunity"]
        assert (await found(client, "log a call"))[:2] == ["log_interaction", "create_activity"]


async def test_call_tool_did_you_mean_uses_the_synonyms(settings: Settings) -> None:
    async with Client(build_server(settings, selection=Selection(tool_mode="discover"))) as client:
        for name, first in (("list_deals", "list_opportunities"), ("get_deal", "get_opportunity"),
                            ("create_people", "create_contact"), ("lst_contacts", "list_contacts")):
            result = await client.call_tool("call_tool", {"name": name})
            assert result.is_error
            assert re.search(rf"Did you mean {first}\b", text_of(result)), text_of(result)
        # find_tools finds the same tool for the same words
        assert (await found(client, "list deals"))[0] == "list_opportunities"


# ------------------------------------------------------------------------------ read-only refusals


async def test_a_read_only_refusal_says_what_the_agent_can_do(settings: Settings) -> None:
    options = ("You can ask the user to enable writes (restart the server without --read-only), or offer to "
               "draft the change (the record, the fields and their new values) for the user to apply.")
    for mode in ("all", "discover"):
        server = build_server(settings, selection=Selection(read_only=True, tool_mode=mode))
        async with Client(server) as client:
            assert options in (client.instructions or "")
            for tool, args in (("update_contact", {"id": "con_0001", "title": "CEO"}),
                               ("log_interaction", {"type": "call", "contact": "con_0001"})):
                result = (await client.call_tool(tool, args) if mode == "all"
                          else await client.call_tool("call_tool", {"name": tool, "arguments": args}))
                assert result.is_error
                assert text_of(result) == (f"{tool} is not available: this server runs read-only (--read-only), "
                                           f"so nothing was changed. {options}")
    assert truth(settings, "contacts/con_0001")[0]["title"] == "VP of Operations"
