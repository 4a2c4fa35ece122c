"""Scopes: crm:read (list, get, search, overview), crm:write (create, update, log_interaction),
crm:delete (delete). tools/list shows a token only the tools it allows; a tools/call that needs a
scope the token lacks gets HTTP 403 with the spec's insufficient_scope challenge naming that
scope, also when discovery mode's call_tool would run it."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx2
import pytest
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp_support import sandbox_settings, serve_in_thread, text_of
from oauth_support import mcp_server, post, session, tools_call
from oidc_support import AuthorizationServer
from starlette.authentication import AuthCredentials

from crm_mcp.credentials import Credentials
from crm_mcp.http import MAX_BODY_BYTES
from crm_mcp.selection import Selection
from crm_mcp.server import build_server
from crm_mcp.tenants import OAUTH_CALLER, OAuthCaller
from crm_mcp.tools import operation_tools, registry

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

READ_TOOLS = ({t.name for t in operation_tools() if t.kind in ("list", "get")}
              | {"search_crm", "get_account_overview", "list_changes", "crm_changes"})


def challenge(response: httpx2.Response) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', response.headers["www-authenticate"]))


def assert_insufficient_scope(response: httpx2.Response, scope: str, mcp_url: str) -> None:
    assert response.status_code == 403, response.text
    params = challenge(response)
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == scope  # only what this call needs (RFC 6750 §3.1, MCP 2026-07-28)
    assert params["resource_metadata"] == mcp_url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")


async def test_tools_list_shows_only_the_tools_the_token_allows(
    mcp_url: str, authorization_server: AuthorizationServer
) -> None:
    reader = authorization_server.client_credentials("agent-a", resource=mcp_url, scope="crm:read")
    async with session(mcp_url, reader) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert names == READ_TOOLS
    writer = authorization_server.client_credentials("agent-a", resource=mcp_url, scope="crm:read crm:write")
    async with session(mcp_url, writer) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    every = {t.name for t in registry()}
    assert names == every - {t.name for t in operation_tools() if t.kind == "delete"}


async def test_a_call_without_its_scope_gets_403_naming_the_scope(
    mcp_url: str, authorization_server: AuthorizationServer
) -> None:
    reader = authorization_server.client_credentials("agent-a", resource=mcp_url, scope="crm:read")
    name = f"Scope Test {uuid.uuid4().hex[:8]}"
    assert_insufficient_scope(post(mcp_url, tools_call("create_company", {"name": name}), reader), "crm:write", mcp_url)
    log_call = tools_call("log_interaction", {"type": "call", "contact": "con_0001", "title": "x"})
    assert_insufficient_scope(post(mcp_url, log_call, reader), "crm:write", mcp_url)
    writer = authorization_server.client_credentials("agent-a", resource=mcp_url, scope="crm:read crm:write")
    delete = tools_call("delete_note", {"id": "not_001"})
    assert_insufficient_scope(post(mcp_url, delete, writer), "crm:delete", mcp_url)
    pipelines = {"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": "crm://pipelines"}}
    write_only = authorization_server.client_credentials("agent-a", resource=mcp_url, scope="crm:write")
    assert_insufficient_scope(post(mcp_url, pipelines, write_only), "crm:read", mcp_url)
    # nothing was created or deleted, and the calls the tokens allow still work
    async with session(mcp_url, writer) as client:
        found = await client.call_tool("list_companies", {"filter": {"name": name}})
        assert not found.is_error and name not in text_of(found)
        note = await client.call_tool("get_note", {"id": "not_001"})
        assert not note.is_error, text_of(note)
        read = await client.read_resource("crm://pipelines")
        assert "pip_1" in read.contents[0].text


async def test_discovery_mode_call_tool_needs_the_scope_of_the_tool_it_runs(
    sandbox_server: Any, authorization_server: AuthorizationServer
) -> None:
    with mcp_server(sandbox_server, authorization_server.issuer, selection=Selection(tool_mode="discover")) as url:
        reader = authorization_server.client_credentials("agent-a", resource=url, scope="crm:read")
        delete = tools_call("call_tool", {"name": "delete_company", "arguments": {"id": "com_001"}})
        assert_insufficient_scope(post(url, delete, reader), "crm:delete", url)
        async with session(url, reader) as client:
            assert {t.name for t in (await client.list_tools()).tools} == {"find_tools", "describe_tool", "call_tool"}
            got = await client.call_tool("call_tool", {"name": "get_company", "arguments": {"id": "com_001"}})
        assert not got.is_error and "Acme Corporation" in text_of(got)


def indexed(index: str) -> set[str]:
    """The tool names of find_tools' index ("contacts: list_contacts, get_contact, ..." per line)."""
    return {name for line in index.splitlines()[1:] for name in line.split(": ", 1)[1].split(", ")}


async def test_discovery_mode_finds_and_describes_only_the_tools_the_token_allows(
    sandbox_server: Any, authorization_server: AuthorizationServer
) -> None:
    with mcp_server(sandbox_server, authorization_server.issuer, selection=Selection(tool_mode="discover")) as url:
        reader = authorization_server.client_credentials("agent-a", resource=url, scope="crm:read")
        everything = authorization_server.client_credentials("agent-a", resource=url,
                                                             scope="crm:read crm:write crm:delete")
        async with session(url, reader) as client:
            index = text_of(await client.call_tool("find_tools", {}))
            contacts = text_of(await client.call_tool("find_tools", {"resource": "contacts"}))
            removal = text_of(await client.call_tool("find_tools", {"query": "delete a contact"}))
            refused = await client.call_tool("describe_tool", {"name": "delete_contact"})
            described = await client.call_tool("describe_tool", {"name": "get_contact"})
        async with session(url, everything) as client:
            full_index = text_of(await client.call_tool("find_tools", {}))
            full_removal = text_of(await client.call_tool("find_tools", {"query": "delete a contact"}))
            all_contacts = text_of(await client.call_tool("find_tools", {"resource": "contacts"}))
            allowed = await client.call_tool("describe_tool", {"name": "delete_contact"})
    assert indexed(index) == READ_TOOLS  # every tool crm:read allows, and nothing else
    readable = {"list_contacts", "get_contact", "search_crm", "get_account_overview", "crm_changes"}
    assert set(re.findall(r"^(\w+):", contacts, re.M)) == readable
    assert "delete_" not in removal and "update_" not in removal and "create_" not in removal
    assert refused.is_error and text_of(refused) == (
        "delete_contact needs the OAuth scope crm:delete, which your access token does not carry. "
        "Authorize again with that scope.")
    assert not described.is_error and text_of(described).startswith("get_contact: ")
    assert indexed(full_index) == {t.name for t in registry()}
    assert full_removal.splitlines()[1].startswith("delete_contact: ")
    writes = {"create_contact", "update_contact", "delete_contact", "log_interaction"}
    assert set(re.findall(r"^(\w+):", all_contacts, re.M)) == readable | writes
    assert not allowed.is_error and text_of(allowed).startswith("delete_contact: ")


class ScopesInRequest:
    """Stands in for the OAuth guard after it validated a token with `scopes`: what the guard puts
    in the ASGI scope, without the guard's own 403, to show the server itself refuses a call."""

    def __init__(self, app: Any, scopes: list[str]):
        self.app = app
        self.access = AccessToken(token="t", client_id="agent-a", scopes=scopes)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            credentials = Credentials(api_key="k", app_id="test-app", consumer_id=f"scoped-{uuid.uuid4().hex[:6]}")
            scope = {**scope, "user": AuthenticatedUser(self.access), "auth": AuthCredentials(self.access.scopes),
                     OAUTH_CALLER: OAuthCaller(credentials)}
        await self.app(scope, receive, send)


async def test_the_server_itself_checks_the_scope_of_the_tool_call_tool_runs(sandbox_server: Any) -> None:
    settings = sandbox_settings(sandbox_server)
    server = build_server(settings, selection=Selection(tool_mode="discover"))
    app = ScopesInRequest(server.streamable_http_app(stateless_http=True, json_response=True), ["crm:read"])
    with serve_in_thread(app) as port:
        async with session(f"http://127.0.0.1:{port}/mcp", "unused") as client:
            refused = await client.call_tool("call_tool", {"name": "delete_company", "arguments": {"id": "com_001"}})
            allowed = await client.call_tool("call_tool", {"name": "get_company", "arguments": {"id": "com_001"}})
    assert refused.is_error
    assert text_of(refused) == ("delete_company needs the OAuth scope crm:delete, which your access token does not "
                                "carry. Authorize again with that scope.")
    assert not allowed.is_error and "Acme Corporation" in text_of(allowed)


async def test_a_body_too_large_to_check_is_refused_not_passed(
    mcp_url: str, authorization_server: AuthorizationServer
) -> None:
    reader = authorization_server.client_credentials("agent-a", resource=mcp_url, scope="crm:read")
    huge = tools_call("create_note", {"title": "x", "content": "y" * (MAX_BODY_BYTES + 1)})
    response = post(mcp_url, huge, reader)
    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"
