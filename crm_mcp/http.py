"""Streamable HTTP transport: the SDK's app behind our own guards.

- binds 127.0.0.1 by default; a non-loopback bind needs a bearer token (CRM_MCP_HTTP_TOKEN),
  and then every request without it gets 401 (compared in constant time);
- Host and Origin are validated (DNS rebinding) by the SDK's transport security settings;
- request bodies are limited in size;
- stateless: any replica behind an ordinary load balancer can answer any request.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
from typing import Any

from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from crm_mcp.config import ConfigError, Settings
from crm_mcp.tenants import SERVER_AUTHENTICATED

log = logging.getLogger("crm_mcp.http")

MAX_BODY_BYTES = 1024 * 1024
TOKEN_ENV = "CRM_MCP_HTTP_TOKEN"
ALLOWED_HOSTS_ENV = "CRM_MCP_ALLOWED_HOSTS"  # comma-separated extra Host values, e.g. crm.example.com:443
ALLOWED_ORIGINS_ENV = "CRM_MCP_ALLOWED_ORIGINS"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class BearerTokenGuard:
    """ASGI middleware: 401 unless `Authorization: Bearer <token>` matches (constant-time)."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                given = value
                break
        if not hmac.compare_digest(given, self._expected):
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
                }
            )
            await send({"type": "http.response.body", "body": b'{"error":"missing or wrong bearer token"}'})
            return
        # Authorization was the server's own token: tenants then send their Apideck key in
        # x-apideck-api-key (see crm_mcp.tenants).
        await self.app({**scope, SERVER_AUTHENTICATED: True}, receive, send)


def _split(env_name: str) -> list[str]:
    return [v.strip() for v in os.environ.get(env_name, "").split(",") if v.strip()]


def security_settings(host: str, port: int) -> TransportSecuritySettings:
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", *_split(ALLOWED_HOSTS_ENV)]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", *_split(ALLOWED_ORIGINS_ENV)]
    if not is_loopback(host) and host not in ("0.0.0.0", "::"):
        hosts.append(f"{host}:{port}")
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


def build_http_app(server: Any, settings: Settings, *, host: str, port: int, token: str | None) -> ASGIApp:
    """The ASGI app for `server`. Raises ConfigError for a non-loopback bind without a token or OAuth."""
    if not is_loopback(host) and not token and settings.oauth is None:
        raise ConfigError(
            f"refusing to serve HTTP on {host}, which is not a loopback address, without a bearer token: "
            f"set {TOKEN_ENV} (clients then send 'Authorization: Bearer <token>'), or OAuth "
            "(CRM_MCP_OAUTH_ISSUER and CRM_MCP_OAUTH_RESOURCE), or bind 127.0.0.1."
        )
    if token and settings.oauth is not None:  # both would claim the Authorization header
        raise ConfigError(f"set either {TOKEN_ENV} or OAuth (CRM_MCP_OAUTH_ISSUER), not both.")
    app: ASGIApp = server.streamable_http_app(
        stateless_http=True,
        json_response=True,
        max_request_body_size=MAX_BODY_BYTES,
        transport_security=security_settings(host, port),
        host=host,
    )
    if settings.oauth is not None:  # OAuth 2.1 resource server (crm_mcp.auth)
        from crm_mcp.auth.guard import OAuthGuard

        app = OAuthGuard(app, settings, max_body_bytes=MAX_BODY_BYTES)
    elif token:
        app = BearerTokenGuard(app, token)
    return app


def run_http(server: Any, settings: Settings, *, host: str, port: int) -> int:
    import sys

    import uvicorn

    token = os.environ.get(TOKEN_ENV) or None
    try:
        app = build_http_app(server, settings, host=host, port=port, token=token)
    except ConfigError as exc:
        print(f"crm-mcp: configuration error: {exc}", file=sys.stderr)
        return 2
    guard = " (OAuth access token required)" if settings.oauth else " (bearer token required)" if token else ""
    log.info("streamable HTTP at http://%s:%d/mcp%s", host, port, guard)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    return 0
