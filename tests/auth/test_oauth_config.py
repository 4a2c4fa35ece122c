"""OAuth settings (CRM_MCP_OAUTH_*): what turns OAuth on, what is refused at start-up, that a
public bind is served with OAuth (no static token) but not with both, and that an unreachable
authorization server (or one that fails) lets no token through."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import http_clients
import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp_support import serve_in_thread

from crm_mcp.config import ConfigError, OAuthSettings, settings_from_env
from crm_mcp.http import build_http_app
from crm_mcp.server import build_server

ISSUER = "https://login.example.com/realms/crm"
RESOURCE = "https://crm.example.com/mcp"


def test_oauth_settings_from_the_environment() -> None:
    settings = settings_from_env({
        "CRM_MCP_OAUTH_ISSUER": ISSUER, "CRM_MCP_OAUTH_RESOURCE": RESOURCE,
        "CRM_MCP_OAUTH_CONSUMER_CLAIM": "apideck_consumer",
        "CRM_MCP_OAUTH_INTROSPECTION_CLIENT_ID": "crm-mcp", "CRM_MCP_OAUTH_INTROSPECTION_CLIENT_SECRET": "s3cret-rs",
    })
    assert settings.oauth == OAuthSettings(
        issuer=ISSUER, resource=RESOURCE, consumer_claim="apideck_consumer",
        introspection_client_id="crm-mcp", introspection_client_secret="s3cret-rs",
    )
    assert "s3cret-rs" in settings.secrets and "s3cret-rs" not in repr(settings)
    assert settings_from_env({}).oauth is None
    defaults = settings_from_env({"CRM_MCP_OAUTH_ISSUER": ISSUER, "CRM_MCP_OAUTH_RESOURCE": RESOURCE}).oauth
    assert defaults is not None and defaults.consumer_claim == "sub" and defaults.introspection_client_id is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CRM_MCP_OAUTH_ISSUER": ISSUER}, "CRM_MCP_OAUTH_RESOURCE is not"),
        ({"CRM_MCP_OAUTH_RESOURCE": RESOURCE}, "CRM_MCP_OAUTH_ISSUER is not"),
        ({"CRM_MCP_OAUTH_ISSUER": "http://login.example.com", "CRM_MCP_OAUTH_RESOURCE": RESOURCE},
         "CRM_MCP_OAUTH_ISSUER must be an https:// URL"),
        ({"CRM_MCP_OAUTH_ISSUER": ISSUER, "CRM_MCP_OAUTH_RESOURCE": "crm.example.com/mcp"},
         "CRM_MCP_OAUTH_RESOURCE must be an https:// URL"),
        ({"CRM_MCP_OAUTH_ISSUER": ISSUER, "CRM_MCP_OAUTH_RESOURCE": RESOURCE,
          "CRM_MCP_OAUTH_INTROSPECTION_CLIENT_ID": "crm-mcp"}, "set both or neither"),
    ],
    ids=["no-resource", "no-issuer", "plain-http-issuer", "relative-resource", "half-introspection-client"],
)
def test_bad_oauth_settings_are_refused_at_start_up(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_env(env)


def test_under_oauth_the_consumer_comes_from_tokens_not_the_environment() -> None:
    settings = settings_from_env({"APIDECK_API_KEY": "sk_live", "APIDECK_APP_ID": "app",
                                  "CRM_MCP_OAUTH_ISSUER": ISSUER, "CRM_MCP_OAUTH_RESOURCE": RESOURCE})
    assert settings.consumer_id == ""
    assert settings.describe() == (
        "Apideck at https://unify.apideck.com, each user's consumer from the token claim sub"
    )
    with pytest.raises(ConfigError, match="APIDECK_CONSUMER_ID"):
        settings_from_env({"APIDECK_API_KEY": "sk_live", "APIDECK_APP_ID": "app"})


def test_loopback_issuers_may_use_plain_http() -> None:
    settings = settings_from_env({"CRM_MCP_OAUTH_ISSUER": "http://127.0.0.1:9000",
                                  "CRM_MCP_OAUTH_RESOURCE": "http://localhost:8000/mcp"})
    assert settings.oauth is not None and settings.oauth.issuer == "http://127.0.0.1:9000"


@pytest.mark.anyio
async def test_a_public_bind_needs_oauth_or_the_static_token_not_both() -> None:
    plain = settings_from_env({})
    with_oauth = replace(plain, oauth=OAuthSettings(issuer=ISSUER, resource=RESOURCE))
    with pytest.raises(ConfigError, match="without a bearer token"):
        build_http_app(build_server(plain), plain, host="0.0.0.0", port=8000, token=None)
    with pytest.raises(ConfigError, match="not both"):
        build_http_app(build_server(with_oauth), with_oauth, host="0.0.0.0", port=8000, token="static")
    app = build_http_app(build_server(with_oauth), with_oauth, host="0.0.0.0", port=8000, token=None)
    transport = httpx2.ASGITransport(app)
    async with http_clients.async_client(transport=transport, base_url="http://crm.example.com") as http:
        metadata = await http.get("/.well-known/oauth-protected-resource/mcp")
        refused = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert metadata.json()["authorization_servers"] == [ISSUER]
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == (
        'Bearer scope="crm:read", '
        'resource_metadata="https://crm.example.com/.well-known/oauth-protected-resource/mcp"'
    )


class FailingAuthorizationServer:
    """An authorization server that answers every request HTTP 500, and counts them."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.requests.append(scope["path"])
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.mark.anyio
async def test_a_failing_authorization_server_is_503_never_a_pass(caplog: pytest.LogCaptureFixture) -> None:
    failing = FailingAuthorizationServer()
    with serve_in_thread(failing) as as_port:
        issuer = f"http://127.0.0.1:{as_port}"
        oauth = OAuthSettings(issuer=issuer, resource="http://127.0.0.1:8000/mcp")
        settings = replace(settings_from_env({}), oauth=oauth)
        app = build_http_app(build_server(settings), settings, host="127.0.0.1", port=8000, token=None)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        token = jwt.encode({"iss": issuer, "aud": oauth.resource, "exp": int(time.time()) + 60},
                           key, algorithm="RS256", headers={"kid": "k1"})
        transport = httpx2.ASGITransport(app)
        async with http_clients.async_client(transport=transport, base_url="http://127.0.0.1:8000") as http:
            for _ in range(2):
                response = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                                           headers={"Authorization": f"Bearer {token}"})
                assert response.status_code == 503
                assert response.json()["error"] == "temporarily_unavailable"
    # the metadata was asked for once (both well-known forms); the second token waited out the window
    assert failing.requests == ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]
    refusals = [r.getMessage() for r in caplog.records if r.name == "crm_mcp.auth"]
    assert len(refusals) == 2
    assert all(m.startswith("cannot validate bearer tokens: no authorization server metadata") for m in refusals)
    assert token not in caplog.text
