"""The issue's 'done when' walk, as an agent would do it through a client session on the sandbox:
find a contact by email, page through all contacts, create a company, log a call against it,
add a note, move an opportunity to another stage and delete a lead. Each step's effect is read
back from the sandbox over its own HTTP API, not taken from the tool's word."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import http_clients
import httpx2
import pytest
from mcp.client import Client
from mcp_support import sandbox_settings, text_of

from crm_mcp.server import build_server

pytestmark = pytest.mark.anyio



@pytest.fixture
def settings(sandbox_server: Any) -> Any:
    return sandbox_settings(sandbox_server)


@pytest.fixture
async def client(settings: Any) -> AsyncIterator[Client]:
    async with Client(build_server(settings)) as c:
        yield c


def api_get(settings: Any, path: str, **params: Any) -> httpx2.Response:
    headers = {
        "Authorization": f"Bearer {settings.api_key}",
        "x-apideck-app-id": settings.app_id,
        "x-apideck-consumer-id": settings.consumer_id,
    }
    return http_clients.get(settings.base_url + path, headers=headers, params=params)


async def ok(client: Client, tool: str, args: dict[str, Any]) -> Any:
    result = await client.call_tool(tool, args)
    assert not result.is_error, f"{tool}: {text_of(result)}"
    return result


async def test_an_agents_day_on_the_sandbox(client: Client, settings: Any) -> None:
    # find a contact by email
    found = await ok(client, "list_contacts", {"filter": {"email": "jane.doe@acme.example"}})
    assert "con_0001" in text_of(found) and "Jane" in text_of(found)
    assert found.structured_content["count"] == 1

    # page through all contacts: every id exactly once
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        args: dict[str, Any] = {"limit": 50, "fields": ["id"]}
        if cursor:
            args["cursor"] = cursor
        page = await ok(client, "list_contacts", args)
        pages += 1
        seen += [line.split()[0] for line in text_of(page).splitlines() if line.startswith("con_")]
        cursor = page.structured_content.get("next_cursor")
        if not cursor:
            break
    assert pages == 4
    assert len(seen) == 200 == len(set(seen))

    # create a company
    created = await ok(client, "create_company", {"name": "Initech", "industry": "Software"})
    company_id = created.structured_content["id"]
    assert company_id in text_of(created)
    assert api_get(settings, f"/crm/companies/{company_id}").json()["data"]["name"] == "Initech"

    # log a call against it
    call = await ok(client, "create_activity", {
        "type": "call", "title": "Discovery call", "company_id": company_id, "duration_seconds": 900,
    })
    activity_id = call.structured_content["id"]
    stored = api_get(settings, f"/crm/activities/{activity_id}").json()["data"]
    assert stored["type"] == "call" and stored["company_id"] == company_id

    # add a note
    note = await ok(client, "create_note", {"title": "Next step", "content": "Send the proposal by Friday.",
                                            "company_id": company_id})
    stored = api_get(settings, f"/crm/notes/{note.structured_content['id']}").json()["data"]
    assert stored["content"] == "Send the proposal by Friday." and stored["company_id"] == company_id

    # move an opportunity to another stage (the contract requires a title on update: the server
    # fills it from the current record, so the agent sends only what changes)
    before = api_get(settings, "/crm/opportunities/opp_001").json()["data"]
    assert before["pipeline_stage_id"] != "stg_nb_negotiation"
    await ok(client, "update_opportunity", {"id": "opp_001", "pipeline_stage_id": "stg_nb_negotiation"})
    after = api_get(settings, "/crm/opportunities/opp_001").json()["data"]
    assert after["pipeline_stage_id"] == "stg_nb_negotiation"
    assert after["title"] == before["title"]

    # delete a lead
    deleted = await ok(client, "delete_lead", {"id": "lea_001"})
    assert "lea_001" in text_of(deleted)
    assert api_get(settings, "/crm/leads/lea_001").status_code == 404
    gone = await client.call_tool("get_lead", {"id": "lea_001"})
    assert gone.is_error and "lea_001" in text_of(gone)
