"""Per-user CRM under OAuth: the token's `crm_consumer` claim selects the Apideck consumer, so two
users' calls, interleaved, never see each other's records; a token without the claim is refused
with a clear message; tenant headers and the per-call consumer_id argument are refused."""

from __future__ import annotations

import uuid

import anyio
import pytest
from mcp.client import Client
from mcp_support import text_of
from oauth_support import session
from oidc_support import AuthorizationServer

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_two_users_interleaved_never_see_each_others_records(
    mcp_url: str, authorization_server: AuthorizationServer
) -> None:
    marker = uuid.uuid4().hex[:8]
    names = {"a": f"Zephyr {marker} Alpha", "b": f"Zephyr {marker} Beta"}
    token_a = authorization_server.client_credentials("agent-a", resource=mcp_url)
    token_b = authorization_server.client_credentials("agent-b", resource=mcp_url)
    async with session(mcp_url, token_a) as a, session(mcp_url, token_b) as b:
        made = await a.call_tool("create_company", {"name": names["a"]})
        assert not made.is_error, text_of(made)
        # A's new record is absent for B, before B writes anything
        seen_by_b = await b.call_tool("list_companies", {"filter": {"name": f"Zephyr {marker}"}})
        assert not seen_by_b.is_error and names["a"] not in text_of(seen_by_b)
        made = await b.call_tool("create_company", {"name": names["b"]})
        assert not made.is_error, text_of(made)
        seen: dict[str, list[str]] = {"a": [], "b": []}

        async def calls(label: str, client: Client) -> None:
            for i in range(20):
                if i % 2:
                    result = await client.call_tool("list_companies", {"filter": {"name": f"Zephyr {marker}"}})
                else:
                    await client.call_tool("update_contact", {"id": "con_0002", "title": f"{names[label]} {i}"})
                    result = await client.call_tool("get_contact", {"id": "con_0002", "fields": ["title"]})
                assert not result.is_error, text_of(result)
                seen[label].append(text_of(result))

        async with anyio.create_task_group() as tg:
            tg.start_soon(calls, "a", a)
            tg.start_soon(calls, "b", b)
    for own, other in (("a", "b"), ("b", "a")):
        assert len(seen[own]) == 20
        assert all(names[own] in text and names[other] not in text for text in seen[own]), own


async def test_a_token_without_the_consumer_claim_is_refused_clearly(
    mcp_url: str, authorization_server: AuthorizationServer
) -> None:
    token = authorization_server.client_credentials("unmapped", resource=mcp_url)
    async with session(mcp_url, token) as client:
        assert (await client.list_tools()).tools  # authenticated: it may look
        result = await client.call_tool("get_company", {"id": "com_001"})
    assert result.is_error
    assert "carries no 'crm_consumer' claim" in text_of(result)
    assert "Acme" not in text_of(result)


async def test_tenant_headers_and_consumer_id_are_refused_under_oauth(
    mcp_url: str, authorization_server: AuthorizationServer
) -> None:
    token = authorization_server.client_credentials("agent-a", resource=mcp_url)
    headers = {"x-apideck-consumer-id": "someone-else", "x-apideck-app-id": "app", "x-apideck-api-key": "sk_other"}
    async with session(mcp_url, token, headers) as client:
        result = await client.call_tool("get_company", {"id": "com_001"})
    assert result.is_error
    assert "x-apideck-api-key, x-apideck-app-id, x-apideck-consumer-id cannot be sent" in text_of(result)
    async with session(mcp_url, token) as client:
        result = await client.call_tool("get_company", {"id": "com_001", "consumer_id": "someone-else"})
        assert result.is_error
        assert "consumer_id argument is not accepted" in text_of(result)
        ok = await client.call_tool("get_company", {"id": "com_001"})
    assert not ok.is_error and "Acme Corporation" in text_of(ok)
