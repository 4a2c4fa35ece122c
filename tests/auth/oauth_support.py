"""Our MCP server over HTTP with OAuth against the test authorization server, and ways to call it:
an MCP client session with a bearer token, or a raw JSON-RPC POST to see statuses and headers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from typing import Any

import http_clients
import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_support import sandbox_settings
from oidc_support import CLIENT_SECRET, serve

from crm_mcp.config import OAuthSettings
from crm_mcp.http import build_http_app
from crm_mcp.selection import Selection
from crm_mcp.server import build_server

CONSUMER_CLAIM = "crm_consumer"  # the claim authorization_server.mjs puts the Apideck consumer in


@contextmanager
def mcp_server(
    sandbox: Any, issuer: str, *, introspection: bool = False, jwks_refetch_seconds: float = 30.0,
    selection: Selection | None = None,
) -> Iterator[str]:
    """Our MCP server over HTTP (sandbox CRM behind it) with OAuth against `issuer`; yields its URL,
    which is also its resource URI."""

    def make_app(port: int) -> Any:
        oauth = OAuthSettings(
            issuer=issuer,
            resource=f"http://127.0.0.1:{port}/mcp",
            consumer_claim=CONSUMER_CLAIM,
            introspection_client_id="crm-mcp" if introspection else None,
            introspection_client_secret=CLIENT_SECRET if introspection else None,
            jwks_refetch_seconds=jwks_refetch_seconds,
        )
        settings = replace(sandbox_settings(sandbox), oauth=oauth)
        return build_http_app(build_server(settings, selection=selection), settings, host="127.0.0.1", port=port,
                              token=None)

    with serve(make_app) as port:
        yield f"http://127.0.0.1:{port}/mcp"


@asynccontextmanager
async def session(
    url: str, token: str, headers: dict[str, str] | None = None, *, mode: Any = "auto"
) -> AsyncIterator[Client]:
    """An MCP client session (the SDK's streamable HTTP client) sending `Authorization: Bearer <token>`;
    `mode="legacy"` speaks the 2025-11-25 revision (initialize handshake) instead of the current one."""
    async with (
        http_clients.async_client(headers={"Authorization": f"Bearer {token}", **(headers or {})}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client


def post(url: str, message: dict[str, Any], token: str | None = None) -> httpx2.Response:
    """One raw JSON-RPC POST to the MCP endpoint, to see the HTTP status and headers."""
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return http_clients.post(url, json=message, headers=headers, timeout=30)


def tools_call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
