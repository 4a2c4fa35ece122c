"""HTTP mode with per-request tenants: Apideck credentials sent in each request's headers are
used for that request only; two tenants calling concurrently (hundreds of interleaved calls)
each see only their own consumer's data, and a tenant's key is never written anywhere."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import http_clients
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_support import sandbox_settings, serve_in_thread, text_of

from crm_mcp.http import build_http_app
from crm_mcp.server import build_server

pytestmark = pytest.mark.anyio



def serve(app: Any) -> Iterator[str]:
    with serve_in_thread(app) as port:
        yield f"http://127.0.0.1:{port}/mcp"


@pytest.fixture
def default_settings(sandbox_server: Any) -> Any:
    return sandbox_settings(sandbox_server, consumer=f"server-default-{uuid.uuid4().hex[:6]}")


@pytest.fixture
def mcp_url(default_settings: Any) -> Iterator[str]:
    app = build_http_app(build_server(default_settings), default_settings, host="127.0.0.1", port=0, token=None)
    yield from serve(app)


@pytest.fixture
def guarded_url(default_settings: Any) -> Iterator[str]:
    app = build_http_app(build_server(default_settings), default_settings, host="127.0.0.1", port=0, token="srv-tok")
    yield from serve(app)


@asynccontextmanager
async def session(url: str, headers: dict[str, str]) -> AsyncIterator[Client]:
    async with (
        http_clients.async_client(headers=headers, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


def tenant(consumer: str, key: str) -> dict[str, str]:
    return {"x-apideck-api-key": key, "x-apideck-app-id": "tenant-app", "x-apideck-consumer-id": consumer}


@pytest.mark.slow
async def test_two_tenants_interleaved_see_only_their_own_data(
    mcp_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    a_key, b_key = "sk_tenant_A_9f8e7d", "sk_tenant_B_1a2b3c"
    a_consumer, b_consumer = f"tenant-a-{uuid.uuid4().hex[:6]}", f"tenant-b-{uuid.uuid4().hex[:6]}"
    async with session(mcp_url, tenant(a_consumer, a_key)) as a, session(mcp_url, tenant(b_consumer, b_key)) as b:
        for client, name in ((a, "Zephyr Alpha Tenant"), (b, "Zephyr Beta Tenant")):
            made = await client.call_tool("create_company", {"name": name})
            assert not made.is_error, text_of(made)
        seen: dict[str, list[str]] = {"a": [], "b": []}

        async def calls(label: str, client: Client, title: str) -> None:
            for i in range(100):
                if i % 2:
                    result = await client.call_tool("list_companies", {"filter": {"name": "Zephyr"}})
                else:
                    await client.call_tool("update_contact", {"id": "con_0002", "title": f"{title} {i}"})
                    result = await client.call_tool("get_contact", {"id": "con_0002", "fields": ["title"]})
                assert not result.is_error, text_of(result)
                seen[label].append(text_of(result))

        async with anyio.create_task_group() as tg:
            tg.start_soon(calls, "a", a, "Alpha")
            tg.start_soon(calls, "b", b, "Beta")

    for own, other, label in (("Alpha", "Beta", "a"), ("Beta", "Alpha", "b")):
        texts = seen[label]
        assert len(texts) == 100
        assert all(own in text and other not in text for text in texts), label
    # the server's own consumer saw none of it
    async with session(mcp_url, {}) as default:
        result = await default.call_tool("list_companies", {"filter": {"name": "Zephyr"}})
        assert "Zephyr" not in text_of(result)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert a_key not in logged and b_key not in logged


async def test_incomplete_tenant_headers_are_refused(mcp_url: str) -> None:
    async with session(mcp_url, {"x-apideck-consumer-id": "someone"}) as client:
        result = await client.call_tool("list_users", {"limit": 1})
    assert result.is_error
    assert "x-apideck-api-key" in text_of(result) and "x-apideck-app-id" in text_of(result)


async def test_with_a_server_token_the_tenant_key_travels_in_its_own_header(guarded_url: str) -> None:
    consumer = f"tenant-c-{uuid.uuid4().hex[:6]}"
    headers = {"Authorization": "Bearer srv-tok", **tenant(consumer, "sk_tenant_C")}
    async with session(guarded_url, headers) as client:
        made = await client.call_tool("create_note", {"title": "Tenant C note", "content": "c"})
        assert not made.is_error, text_of(made)
        note_id = made.structured_content["id"]
    # the note is the tenant's, not the server's default consumer's
    async with session(guarded_url, {"Authorization": "Bearer srv-tok"}) as default:
        missing = await default.call_tool("get_note", {"id": note_id})
        assert missing.is_error
    async with session(guarded_url, headers) as client:
        found = await client.call_tool("get_note", {"id": note_id})
        assert not found.is_error and "Tenant C note" in text_of(found)
