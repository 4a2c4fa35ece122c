"""HTTP mode as an OAuth 2.1 resource server, against a real authorization server (oidc-provider):
tokens by client credentials and by authorization code with PKCE reach the tools; missing,
expired, wrong-audience, wrong-issuer tokens get the 401 the MCP spec asks for; rotated keys are
picked up without a restart; opaque tokens are introspected."""

from __future__ import annotations

import re
import time
from typing import Any

import anyio
import http_clients
import httpx2
import jwt
import pytest
from mcp.client import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from mcp_support import text_of
from oauth_support import mcp_server, post, session
from oidc_support import REDIRECT_URI, AuthorizationServer, sign_in

from crm_mcp.auth.tokens import LEEWAY_SECONDS

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}}


def challenge(response: httpx2.Response) -> dict[str, str]:
    """The parameters of a `WWW-Authenticate: Bearer k="v", ...` header."""
    header = response.headers["www-authenticate"]
    assert header.startswith("Bearer ")
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def claims_for(authorization_server: AuthorizationServer, url: str) -> dict[str, Any]:
    """Claims that would be accepted, for tokens forged here with another algorithm."""
    return {"iss": authorization_server.issuer, "aud": url, "exp": int(time.time()) + 300, "scope": "crm:read",
            "crm_consumer": "consumer-agent-a"}


def metadata_url(mcp_url: str) -> str:
    return mcp_url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")


async def test_protected_resource_metadata_names_the_authorization_server(
    mcp_url: str, authorization_server: AuthorizationServer
) -> None:
    root = mcp_url.replace("/mcp", "/.well-known/oauth-protected-resource")
    for url in (metadata_url(mcp_url), root):
        response = http_clients.get(url)
        assert response.status_code == 200, url
        body = response.json()
        assert body["resource"] == mcp_url
        assert body["authorization_servers"] == [authorization_server.issuer]
        assert body["scopes_supported"] == ["crm:read", "crm:write", "crm:delete"]


async def test_a_request_without_a_token_gets_401_naming_the_metadata_and_scope(mcp_url: str) -> None:
    response = post(mcp_url, INITIALIZE)
    assert response.status_code == 401
    params = challenge(response)
    assert params == {"scope": "crm:read", "resource_metadata": metadata_url(mcp_url)}  # no error code: no token
    assert http_clients.get(params["resource_metadata"]).status_code == 200


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_client_credentials_token_reaches_the_tools(
    mcp_url: str, authorization_server: AuthorizationServer, mode: str
) -> None:
    token = authorization_server.client_credentials("agent-a", resource=mcp_url)
    async with session(mcp_url, token, mode=mode) as client:
        listed = await client.list_tools()
        names = {t.name for t in listed.tools}
        assert {"list_companies", "create_company", "delete_company", "log_interaction"} <= names
        result = await client.call_tool("get_company", {"id": "com_001"})
    assert not result.is_error, text_of(result)
    assert "Acme Corporation" in text_of(result)


async def test_authorization_code_with_pkce_token_reaches_the_users_own_crm(
    mcp_url: str, authorization_server: AuthorizationServer
) -> None:
    token = authorization_server.authorization_code("alice", resource=mcp_url)
    async with session(mcp_url, token) as client:
        made = await client.call_tool("create_note", {"title": "Alice's note", "content": "from the desktop"})
        assert not made.is_error, text_of(made)
        note_id = made.structured_content["id"]
        found = await client.call_tool("get_note", {"id": note_id})
    assert not found.is_error and "Alice's note" in text_of(found)
    # the note went to alice's consumer (`consumer-alice`), not to a machine client's
    other = authorization_server.client_credentials("agent-b", resource=mcp_url)
    async with session(mcp_url, other) as client:
        missing = await client.call_tool("get_note", {"id": note_id})
    assert missing.is_error


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda a, url: a.client_credentials("agent-a", resource="http://127.0.0.1:9/other-mcp"),
         "was not issued for this resource"),
        (lambda a, url: a.client_credentials("agent-a", resource=url, issuer=a.impostor),
         "was not issued by"),
        (lambda a, url: "not-a-jwt-and-no-introspection", "not a JWT"),
        (lambda a, url: jwt.encode(claims_for(a, url), "a-shared-secret-of-32-bytes-or-more", algorithm="HS256"),
         "signed with 'HS256'"),
        (lambda a, url: jwt.encode(claims_for(a, url), None, algorithm="none"), "signed with 'none'"),
        (lambda a, url: a.client_credentials("agent-a", resource=url)[:-6] + "AAAAAA", "not valid"),
    ],
    ids=["wrong-audience", "wrong-issuer", "opaque-without-introspection", "shared-secret", "unsigned",
         "bad-signature"],
)
async def test_a_bad_token_gets_401_invalid_token(
    mcp_url: str, authorization_server: AuthorizationServer, make_token: Any, reason: str
) -> None:
    response = post(mcp_url, INITIALIZE, make_token(authorization_server, mcp_url))
    assert response.status_code == 401
    params = challenge(response)
    assert params["error"] == "invalid_token"
    assert reason in params["error_description"]
    assert params["resource_metadata"] == metadata_url(mcp_url)


async def test_an_expired_token_gets_401(mcp_url: str, authorization_server: AuthorizationServer) -> None:
    token = authorization_server.client_credentials("short-lived", resource=mcp_url)  # lives 1 s
    assert post(mcp_url, INITIALIZE, token).status_code == 200
    time.sleep(1 + LEEWAY_SECONDS + 0.5)
    response = post(mcp_url, INITIALIZE, token)
    assert response.status_code == 401
    assert challenge(response)["error"] == "invalid_token"
    assert "expired" in challenge(response)["error_description"]


async def test_rotated_keys_are_picked_up_without_a_restart(
    sandbox_server: Any, authorization_server: AuthorizationServer
) -> None:
    window = 3.0  # an unknown key id refetches the key set at most this often
    with mcp_server(sandbox_server, authorization_server.issuer, jwks_refetch_seconds=window) as url:
        old = authorization_server.client_credentials("agent-a", resource=url)
        fetched = time.monotonic()
        assert post(url, INITIALIZE, old).status_code == 200  # fetches the key set
        authorization_server.rotate_keys()
        new = authorization_server.client_credentials("agent-a", resource=url)
        # within the window the new key is not fetched (the rate limit) ...
        refused = post(url, INITIALIZE, new)
        assert time.monotonic() - fetched < window, "too slow to observe the rate limit"
        assert refused.status_code == 401
        assert "key the authorization server does not publish" in challenge(refused)["error_description"]
        # ... after it, the same token is accepted: the server fetched the rotated key set
        time.sleep(max(0.0, fetched + window + 0.2 - time.monotonic()))
        assert post(url, INITIALIZE, new).status_code == 200
        assert post(url, INITIALIZE, old).status_code == 200  # the old key is still published


async def test_opaque_tokens_are_introspected(sandbox_server: Any, authorization_server: AuthorizationServer) -> None:
    with mcp_server(sandbox_server, authorization_server.issuer, introspection=True) as url:
        token = authorization_server.client_credentials("opaque-agent", resource=url)
        assert token.count(".") != 2  # opaque, not a JWT
        async with session(url, token) as client:
            result = await client.call_tool("get_company", {"id": "com_001"})
        assert not result.is_error and "Acme Corporation" in text_of(result)
        unknown = post(url, INITIALIZE, "an-opaque-token-the-server-never-issued")
        assert unknown.status_code == 401
        assert "not active" in challenge(unknown)["error_description"]
        elsewhere = authorization_server.client_credentials("opaque-agent", resource="http://127.0.0.1:9/other-mcp")
        refused = post(url, INITIALIZE, elsewhere)
        assert refused.status_code == 401
        assert "was not issued for this resource" in challenge(refused)["error_description"]


class MemoryTokenStorage:
    """The SDK client's token storage: the pre-registered public client `desktop`, tokens in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull:
        return OAuthClientInformationFull(client_id="desktop", redirect_uris=[REDIRECT_URI],
                                          token_endpoint_auth_method="none", grant_types=["authorization_code"])

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        raise AssertionError("the client is pre-registered")


async def test_the_sdk_oauth_client_discovers_signs_in_and_steps_up_scope(
    mcp_url: str, authorization_server: AuthorizationServer
) -> None:
    """The MCP SDK's own OAuth client, knowing only our URL: 401 -> protected resource metadata ->
    the authorization server -> sign-in with PKCE for the scope the 401 names (crm:read); a write
    then gets 403 insufficient_scope, and the client signs in again for crm:write and retries."""
    signed_in: list[dict[str, str]] = []

    async def redirect_handler(authorization_url: str) -> None:
        signed_in.append(await anyio.to_thread.run_sync(sign_in, authorization_url, "carol"))

    async def callback_handler() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(**signed_in[-1])

    storage = MemoryTokenStorage()
    auth = OAuthClientProvider(
        mcp_url, OAuthClientMetadata(redirect_uris=[REDIRECT_URI], token_endpoint_auth_method="none"),
        storage, redirect_handler=redirect_handler, callback_handler=callback_handler,
    )
    async with (
        http_clients.async_client(auth=auth, timeout=30) as http,
        Client(streamable_http_client(mcp_url, http_client=http)) as client,
    ):
        names = {t.name for t in (await client.list_tools()).tools}
        assert storage.tokens is not None and storage.tokens.scope == "crm:read"
        assert "get_company" in names and "create_company" not in names
        made = await client.call_tool("create_company", {"name": "Carol's Company"})
        assert not made.is_error, text_of(made)
        assert set(storage.tokens.scope.split()) == {"crm:read", "crm:write"}
        found = await client.call_tool("get_company", {"id": made.structured_content["id"]})
    assert "Carol's Company" in text_of(found)
    assert len(signed_in) == 2 and all(s["iss"] == authorization_server.issuer for s in signed_in)
