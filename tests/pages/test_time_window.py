"""Time windows on activities (`after` / `before` on list_activities), through a real MCP client
session on the sandbox with its clock pinned: the server walks the pages newest-created first and
keeps the activities whose own date (`activity_datetime`) falls in the window; when it stops at its
bound it says how far back it looked."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import http_clients
import pytest
from mcp.client import Client
from mcp_support import ContractCheckingTransport, sandbox_settings, text_of

from crm_mcp import large_reads
from crm_mcp.config import Settings
from crm_mcp.sandbox.seed import BASE_TIME
from crm_mcp.server import build_server
from crm_mcp.tool_args import parse_moment
from crm_mcp.tools import by_name

pytestmark = pytest.mark.anyio

SINCE = BASE_TIME - timedelta(days=30)


@pytest.fixture
def settings(sandbox_server: Any) -> Settings:
    return sandbox_settings(sandbox_server)


@pytest.fixture
def transport() -> ContractCheckingTransport:
    return ContractCheckingTransport()


@pytest.fixture
async def client(settings: Settings, transport: ContractCheckingTransport) -> AsyncIterator[Client]:
    async with Client(build_server(settings, transport=transport), raise_exceptions=True) as c:
        yield c
    assert transport.violations == []  # every request the walk made is in the contract


def activities(settings: Settings, **query: str) -> list[dict[str, Any]]:
    """The consumer's activities as the sandbox holds them, read over its HTTP API (the truth)."""
    headers = {"Authorization": "Bearer k", "x-apideck-app-id": "a", "x-apideck-consumer-id": settings.consumer_id}
    params: dict[str, Any] = {"limit": 200, **query}
    out: list[dict[str, Any]] = []
    with http_clients.sync_client(base_url=settings.base_url, headers=headers) as http:
        while True:
            body = http.get("/crm/activities", params=params).json()
            out += body["data"]
            cursor = (body["meta"].get("cursors") or {}).get("next")
            if not cursor:
                return out
            params["cursor"] = cursor


def in_window(records: list[dict[str, Any]], after: datetime, before: datetime | None = None) -> list[str]:
    def inside(moment: datetime) -> bool:
        return after <= moment and (before is None or moment < before)

    dated = [a for a in records if a.get("activity_datetime")]
    return sorted(a["id"] for a in dated if inside(parse_moment(a["activity_datetime"])))


def listed(text: str) -> list[str]:
    return sorted(re.findall(r"^(act_\d+) \|", text, flags=re.M))


async def test_acme_in_the_last_30_days(client: Client, settings: Settings,
                                        transport: ContractCheckingTransport) -> None:
    result = await client.call_tool("list_activities", {
        "filter": {"company_id": "com_001"}, "after": SINCE.isoformat(), "before": BASE_TIME.isoformat(),
    })
    assert not result.is_error, text_of(result)
    expected = in_window(activities(settings, **{"filter[company_id]": "com_001"}), SINCE, BASE_TIME)
    assert listed(text_of(result)) == expected == ["act_0223", "act_0232", "act_0250", "act_0286"]
    assert result.structured_content["count"] == 4
    assert "4 in the window, of 18 activities looked at (newest-created first): all that match the filter." \
        in text_of(result)
    # narrowed by the company, walked newest-created first: a sort the contract defines
    query = transport.requests[-1].url.query.decode()
    assert query == "filter[company_id]=com_001&sort[by]=created_at&sort[direction]=desc&limit=200"


async def test_a_date_alone_and_an_open_end(client: Client, settings: Settings) -> None:
    result = await client.call_tool("list_activities", {"filter": {"company_id": "com_001"},
                                                        "after": SINCE.date().isoformat()})
    expected = in_window(activities(settings, **{"filter[company_id]": "com_001"}),
                         datetime.combine(SINCE.date(), datetime.min.time(), tzinfo=SINCE.tzinfo))
    assert listed(text_of(result)) == expected
    assert "act_0274" in expected  # a meeting planned after "now" is in a window without an end


async def test_the_bound_says_how_far_the_walk_looked(
    client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(large_reads, "WINDOW_SCAN", 250)
    result = await client.call_tool("list_activities", {"after": SINCE.isoformat()})
    text = text_of(result)
    every = activities(settings)
    newest = sorted(every, key=lambda a: (a["created_at"], a["id"]), reverse=True)[:250]
    assert listed(text) == in_window(newest, SINCE)
    assert len(every) > 250
    assert (f"of 250 activities looked at (newest-created first); stopped at 250, at created_at "
            f"{newest[-1]['created_at']}: activities created before it were not looked at, so the window may be "
            "incomplete. Narrow with filter company_id, contact_id or owner_id to look further.") in text


async def test_bad_windows_are_refused_clearly(client: Client) -> None:
    for args, says in (
        ({"after": "last month"}, "after: Value error, must be an ISO 8601 date or date-time"),
        ({"before": 20261001}, "before: Input should be a valid string"),
        ({"after": "2026-10-01", "sort": {"by": "created_at"}}, "sort cannot be combined with after/before"),
        ({"after": "2026-10-01", "cursor": "abc"}, "cursor cannot be combined with after/before"),
    ):
        result = await client.call_tool("list_activities", args)
        assert result.is_error and says in text_of(result), text_of(result)
    assert not (await client.call_tool("list_activities", {"limit": 1})).is_error  # still serving


def test_the_window_is_published_with_its_formats_and_no_new_sort() -> None:
    props = by_name()["list_activities"].input_schema["properties"]
    formats = {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]}
    assert props["after"] == {**formats, "description": "On or after this activity_datetime"}
    assert props["before"] == {**formats, "description": "Before this activity_datetime"}
    assert props["sort"]["properties"]["by"]["enum"] == ["created_at", "updated_at"]  # the contract's only
    others = [t.name for t in by_name().values() if "after" in t.input_schema.get("properties", {})]
    assert others == ["list_activities"]
