"""Streamable HTTP transport: the SDK's app behind our own guards.

- binds 127.0.0.1 by default; a non-loopback bind needs a bearer token of 32 characters or more
  (CRM_MCP_HTTP_TOKEN), and then every request without it gets 401 (compared in constant time);
- Host and Origin are validated (DNS rebinding); on an all-addresses bind (0.0.0.0, ::) any IP
  address is accepted as Host (a rebinding attack always arrives with a DNS name), DNS names only
  when listed in CRM_MCP_ALLOWED_HOSTS;
- the MCP endpoint takes POST only (stateless: no event stream to hold open), and bodies are
  limited in size; slow and idle clients are bounded by `crm_mcp.http_limits`;
- `GET /health` answers 200 `{"status":"ok"}` before any other check, for load balancers;
- stateless: any replica behind an ordinary load balancer can answer any request.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import sys
from typing import Any

from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from crm_mcp.config import ALLOWED_HOSTS_ENV, HTTP_TOKEN_ENV, ConfigError, Settings
from crm_mcp.http_limits import AnswerWithin, ReadBodyWithin, drain_body, send_error, uvicorn_options
from crm_mcp.tenants import SERVER_AUTHENTICATED

log = logging.getLogger("crm_mcp.http")

MAX_BODY_BYTES = 1024 * 1024
MIN_PUBLIC_TOKEN_CHARS = 32
TOKEN_ENV = HTTP_TOKEN_ENV
HEALTH_PATH = "/health"
MCP_PATH = "/mcp"  # the SDK's streamable_http_path
_HEALTH_BODY = b'{"status":"ok"}'
_ALL_ADDRESSES = ("0.0.0.0", "::", "[::]", "")
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "127.0.0.1:*", "localhost:*", "[::1]:*")
_LOOPBACK_ORIGINS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class HealthCheck:
    """ASGI middleware: `GET /health` (or HEAD) -> 200 `{"status":"ok"}`, before the Host check and
    authentication (load balancers send an IP address as Host and no token); says nothing else."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == HEALTH_PATH and scope["method"] in ("GET", "HEAD"):
            headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else _HEALTH_BODY})
            return
        await self.app(scope, receive, send)


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


def _matches(value: str, patterns: tuple[str, ...]) -> bool:
    """`value` is one of `patterns`, where `name:*` stands for `name` with any port."""
    return any(value == p or (p.endswith(":*") and value.startswith(p[:-1])) for p in patterns)


def _is_ip_address(host_header: str) -> bool:
    """`1.2.3.4`, `1.2.3.4:8000`, `[fe80::1]:8000`: an IP address, with or without a port."""
    if host_header.startswith("["):
        address, _, rest = host_header[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        address, _, port = host_header.partition(":")
    if port and not port.isdigit():
        return False
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


class HostOriginGuard:
    """ASGI middleware against DNS rebinding: 421 for a Host, 403 for an Origin this server does
    not serve, each saying which variable accepts it."""

    def __init__(self, app: ASGIApp, *, hosts: tuple[str, ...], origins: tuple[str, ...], any_ip_host: bool):
        self.app = app
        self.hosts = hosts
        self.origins = origins
        self.any_ip_host = any_ip_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_host, raw_origin = b"", None  # the last of each, as a dict of the headers would keep
        for name, value in scope.get("headers", []):
            if name == b"host":
                raw_host = value
            elif name == b"origin":
                raw_origin = value
        host = raw_host.decode("latin-1")
        origin = None if raw_origin is None else raw_origin.decode("latin-1")
        if not (_matches(host, self.hosts) or (self.any_ip_host and _is_ip_address(host))):
            log.warning("refused a request for Host %r", host[:100])
            await drain_body(receive)
            await send_error(send, 421, f"this server does not serve the Host {host[:100]!r}; to serve it, "
                             f"add it to {ALLOWED_HOSTS_ENV} (e.g. name:port)")
            return
        if origin and not _matches(origin, self.origins):
            log.warning("refused a request from Origin %r", origin[:100])
            await drain_body(receive)
            await send_error(send, 403, f"this server does not accept requests from the Origin {origin[:100]!r}")
            return
        await self.app(scope, receive, send)


class PostOnly:
    """ASGI middleware: the stateless MCP endpoint takes POST only. The SDK would answer a GET
    with an event stream that never ends (nothing is ever sent on it without a session). Other
    paths (e.g. metadata an auth layer publishes) are left to the app."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = scope["type"] == "http" and scope["path"].rstrip("/") == MCP_PATH
        if endpoint and scope["method"] != "POST":
            await send_error(send, 405, f"{scope['method']} is not served here: send MCP requests with POST "
                             "(this server is stateless and opens no event stream)", headers=[(b"allow", b"POST")])
            return
        await self.app(scope, receive, send)


def check_bind(host: str, token: str | None, *, oauth: bool = False) -> None:
    """Raises ConfigError for a token no client could send, both a token and OAuth, or a public bind
    with neither OAuth nor a long token."""
    if token is not None and token != token.strip():
        raise ConfigError(
            f"{TOKEN_ENV} has leading or trailing whitespace, which no client can send in a header: remove it."
        )
    if token and oauth:  # both would claim the Authorization header
        raise ConfigError(f"set either {TOKEN_ENV} or OAuth (CRM_MCP_OAUTH_ISSUER), not both.")
    if is_loopback(host) or (oauth and not token):
        return
    if not token:
        raise ConfigError(
            f"refusing to serve HTTP on {host}, which is not a loopback address, without a bearer token: "
            f"set {TOKEN_ENV} (clients then send 'Authorization: Bearer <token>'), or OAuth "
            "(CRM_MCP_OAUTH_ISSUER and CRM_MCP_OAUTH_RESOURCE), or bind 127.0.0.1."
        )
    if len(token) < MIN_PUBLIC_TOKEN_CHARS:
        raise ConfigError(
            f"{TOKEN_ENV} must be at least {MIN_PUBLIC_TOKEN_CHARS} characters to serve on {host}, which is not "
            f"a loopback address (it has {len(token)}); "
            "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )


def host_guard(app: ASGIApp, settings: Settings, *, host: str, port: int) -> HostOriginGuard:
    hosts = (*_LOOPBACK_HOSTS, *settings.allowed_hosts)
    if not is_loopback(host) and host not in _ALL_ADDRESSES:
        hosts = (*hosts, f"{host}:{port}")
    origins = (*_LOOPBACK_ORIGINS, *settings.allowed_origins)
    return HostOriginGuard(app, hosts=hosts, origins=origins, any_ip_host=host in _ALL_ADDRESSES)


def build_http_app(server: Any, settings: Settings, *, host: str, port: int, token: str | None) -> ASGIApp:
    """The ASGI app for `server`, the layers listed outermost first in the order a request meets
    them. Raises ConfigError (see `check_bind`)."""
    check_bind(host, token, oauth=settings.oauth is not None)
    app: ASGIApp = server.streamable_http_app(
        stateless_http=True,
        json_response=True,
        max_request_body_size=MAX_BODY_BYTES,
        # Host and Origin are checked by HostOriginGuard, which knows all-addresses binds
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        host=host,
        streamable_http_path=MCP_PATH,
    )
    app = ReadBodyWithin(app, seconds=settings.body_timeout, max_bytes=MAX_BODY_BYTES)
    app = AnswerWithin(app, seconds=settings.request_timeout)
    app = PostOnly(app)
    app = host_guard(app, settings, host=host, port=port)
    if settings.oauth is not None:  # OAuth 2.1 resource server (crm_mcp.auth)
        from crm_mcp.auth.guard import OAuthGuard

        app = OAuthGuard(app, settings, max_body_bytes=MAX_BODY_BYTES)
    elif token:
        app = BearerTokenGuard(app, token)
    return HealthCheck(app)


def run_http(server: Any, settings: Settings, *, host: str, port: int, workers: int = 1) -> int:
    """Serve `server` over HTTP until SIGTERM/SIGINT; with `workers` > 1, in that many processes
    (`crm_mcp.workers`) sharing one listening socket."""
    import uvicorn

    token = settings.http_token
    try:
        app = build_http_app(server, settings, host=host, port=port, token=token)
    except ConfigError as exc:
        print(f"crm-mcp: configuration error: {exc}", file=sys.stderr)
        return 2
    guard = " (OAuth access token required)" if settings.oauth else " (bearer token required)" if token else ""
    processes = f" ({workers} worker processes)" if workers > 1 else ""
    log.info("streamable HTTP at http://%s:%d/mcp%s%s", host, port, guard, processes)
    if host in _ALL_ADDRESSES:
        log.info("clients may use any IP address of this machine as the host; to use a DNS name, "
                 "set %s=<name>:%d", ALLOWED_HOSTS_ENV, port)
    options = dict(log_level="warning", access_log=False, **uvicorn_options(settings))
    if workers > 1:
        from crm_mcp.workers import serve_forked

        return serve_forked(uvicorn.Config(app, host=host, port=port, **options), workers)
    uvicorn.run(app, host=host, port=port, **options)
    return 0
