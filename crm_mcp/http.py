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
from typing import Any

from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from crm_mcp.config import ConfigError, Settings
from crm_mcp.tenants import SERVER_AUTHENTICATED

log = logging.getLogger("crm_mcp.http")

MAX_BODY_BYTES = 1024 * 1024
TOKEN_ENV = "CRM_MCP_HTTP_TOKEN"


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


def security_settings(settings: Settings, host: str, port: int) -> TransportSecuritySettings:
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", *settings.allowed_hosts]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", *settings.allowed_origins]
    if not is_loopback(host) and host not in ("0.0.0.0", "::"):
        hosts.append(f"{host}:{port}")
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


def build_http_app(server: Any, settings: Settings, *, host: str, port: int, token: str | None) -> ASGIApp:
    """The ASGI app for `server`. Raises ConfigError for a non-loopback bind without a token."""
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"refusing to serve HTTP on {host}, which is not a loopback address, without a bearer token: "
            f"set {TOKEN_ENV} (clients then send 'Authorization: Bearer <token>'), or bind 127.0.0.1."
        )
    app: ASGIApp = server.streamable_http_app(
        stateless_http=True,
        json_response=True,
        max_request_body_size=MAX_BODY_BYTES,
        transport_security=security_settings(settings, host, port),
        host=host,
    )
    if token:
        app = BearerTokenGuard(app, token)
    return app


def run_http(server: Any, settings: Settings, *, host: str, port: int) -> int:
    import sys

    import uvicorn

    token = settings.http_token
    try:
        app = build_http_app(server, settings, host=host, port=port, token=token)
    except ConfigError as exc:
        print(f"crm-mcp: configuration error: {exc}", file=sys.stderr)
        return 2
    log.info("streamable HTTP at http://%s:%d/mcp%s", host, port, " (bearer token required)" if token else "")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    return 0
