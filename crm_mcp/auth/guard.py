"""The HTTP face of OAuth: an ASGI middleware in front of the MCP endpoint.

- serves the protected resource metadata (RFC 9728) at `/.well-known/oauth-protected-resource`
  and at its path-suffixed form for the resource (e.g. `.../oauth-protected-resource/mcp`);
- answers a request without a bearer token 401 with `WWW-Authenticate: Bearer resource_metadata=...,
  scope=...`, and one with a bad token 401 with `error="invalid_token"` and the reason;
- reads the JSON-RPC body of a POST and answers a tools/call (or a read of `crm://pipelines`) the
  token lacks the scope for 403 with
  `error="insufficient_scope", scope="<the scope that call needs>"` (the MCP spec's scope challenge;
  only the scope of this operation, as RFC 6750 §3.1 and the 2026-07-28 revision say);
- hands the rest on with the token in the ASGI scope (`user`/`auth`, as Starlette's authentication
  middleware and the SDK put them) and the caller's CRM (`crm_mcp.tenants.OAuthCaller`).

The SDK's `RequireAuthMiddleware` is not used: its 401 names no scope and it checks one fixed scope
set per endpoint, where each tools/call here needs its own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from mcp.server.auth.handlers.metadata import ProtectedResourceMetadataHandler
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.routes import build_resource_metadata_url, cors_middleware
from mcp.shared.auth import ProtectedResourceMetadata
from pydantic import AnyHttpUrl
from starlette.authentication import AuthCredentials
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_mcp.auth.authorization_server import AuthorizationServer, AuthServerError
from crm_mcp.auth.scopes import BASELINE, SCOPES, scope_for_request
from crm_mcp.auth.tokens import InvalidToken, TokenValidator
from crm_mcp.config import OAuthSettings, Settings
from crm_mcp.credentials import Credentials
from crm_mcp.tenants import OAUTH_CALLER, OAuthCaller

log = logging.getLogger("crm_mcp.auth")

ROOT_METADATA_PATH = "/.well-known/oauth-protected-resource"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def caller_for(token: AccessToken, settings: Settings, oauth: OAuthSettings) -> OAuthCaller:
    """The CRM the token's holder reaches: the consumer its `consumer_claim` names."""
    consumer = (token.claims or {}).get(oauth.consumer_claim)
    if isinstance(consumer, int) and not isinstance(consumer, bool):
        consumer = str(consumer)
    if not isinstance(consumer, str) or not consumer.strip():
        who = f" (subject {token.subject})" if token.subject else ""
        return OAuthCaller(None, (
            f"Your access token{who} carries no {oauth.consumer_claim!r} claim, so this server cannot tell "
            "which CRM connection is yours. Ask your administrator to map your account to an Apideck consumer "
            f"in the authorization server (the {oauth.consumer_claim!r} claim of access tokens)."
        ))
    credentials = Credentials(
        api_key=settings.api_key, app_id=settings.app_id, consumer_id=consumer.strip(), service_id=settings.service_id
    )
    return OAuthCaller(credentials)


class OAuthGuard:
    """ASGI middleware: OAuth 2.1 resource server in front of `app` (see the module docstring)."""

    def __init__(self, app: ASGIApp, settings: Settings, *, max_body_bytes: int, mcp_path: str = "/mcp"):
        assert settings.oauth is not None
        self.app = app
        self.settings = settings
        self.oauth = settings.oauth
        self.max_body_bytes = max_body_bytes
        self.authorization_server = AuthorizationServer(self.oauth)
        self.validator = TokenValidator(self.oauth, self.authorization_server)
        self.metadata_url = str(build_resource_metadata_url(AnyHttpUrl(self.oauth.resource)))
        # validated from strings, so that the issuer keeps its exact spelling (no added "/")
        metadata = ProtectedResourceMetadata.model_validate({
            "resource": self.oauth.resource,
            "authorization_servers": [self.oauth.issuer],
            "scopes_supported": list(SCOPES),
            "resource_name": "CRM (Apideck unified API)",
        })
        endpoint = cors_middleware(ProtectedResourceMetadataHandler(metadata).handle, ["GET", "OPTIONS"])
        # the resource's own path form, the root form, and the form for our local path (when a
        # proxy in front strips a prefix of the public path)
        paths = {urlsplit(self.metadata_url).path, ROOT_METADATA_PATH, ROOT_METADATA_PATH + mcp_path}
        self.metadata_routes = {p: Route(p, endpoint=endpoint, methods=["GET", "OPTIONS"]) for p in paths}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            try:
                await self.app(scope, receive, send)
            finally:
                await self.authorization_server.aclose()
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self.metadata_routes.get(scope["path"])
        if route is not None:
            await route.handle(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":  # CORS preflight: carries no token and runs nothing
            await self.app(scope, receive, send)
            return
        await self._guarded(scope, receive, send)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _bearer(scope)
        if token is None:
            await self._challenge(send, 401)
            return
        try:
            access = await self.validator.validate(token)
        except InvalidToken as exc:
            log.info("refused a bearer token: %s", exc)
            await self._challenge(send, 401, "invalid_token", str(exc))
            return
        except AuthServerError as exc:
            log.warning("cannot validate bearer tokens: %s", exc)
            await _json(send, 503, {"error": "temporarily_unavailable",
                                    "error_description": "the authorization server cannot be reached; retry later"})
            return
        if scope["method"] == "POST":
            body = await _read_body(receive, self.max_body_bytes)
            if body is None:  # too large to check what it asks (or the client left): fail closed
                limit = f"request bodies are limited to {self.max_body_bytes} bytes"
                await _json(send, 413, {"error": "request_too_large", "error_description": limit})
                return
            receive = _replay(body, receive)
            needed = _missing_scopes(body, set(access.scopes))
            if needed:
                log.info("client=%s sub=%s lacks scope %s", access.client_id, access.subject, " ".join(needed))
                await self._challenge(send, 403, "insufficient_scope", f"this call needs {' '.join(needed)}", needed)
                return
        scope = {
            **scope,
            "user": AuthenticatedUser(access),
            "auth": AuthCredentials(access.scopes),
            OAUTH_CALLER: caller_for(access, self.settings, self.oauth),
        }
        await self.app(scope, receive, send)

    async def _challenge(
        self, send: Send, status: int, error: str | None = None, description: str | None = None,
        scopes: list[str] | None = None,
    ) -> None:
        """A 401/403 with the `WWW-Authenticate: Bearer ...` challenge the MCP spec asks for."""
        params = []
        if error:
            params.append(f"error={_quote(error)}")
        if description:
            params.append(f"error_description={_quote(description)}")
        params.append(f"scope={_quote(' '.join(scopes or [BASELINE]))}")
        params.append(f"resource_metadata={_quote(self.metadata_url)}")
        body = {"error": error or "unauthorized",
                "error_description": description or "this server needs an OAuth access token (Authorization: Bearer)"}
        await _json(send, status, body, [(b"www-authenticate", ("Bearer " + ", ".join(params)).encode())])


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer":
                return None
            return token.strip() or None
    return None


def _missing_scopes(body: bytes, granted: set[str]) -> list[str]:
    """The scopes the JSON-RPC requests in `body` need that `granted` lacks."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return []  # not JSON: the transport answers it
    missing: list[str] = []
    for message in parsed if isinstance(parsed, list) else [parsed]:
        if not isinstance(message, dict) or not isinstance(message.get("method"), str):
            continue
        params = message.get("params")
        needed = scope_for_request(message["method"], params if isinstance(params, dict) else {})
        if needed is not None and needed not in granted and needed not in missing:
            missing.append(needed)
    return missing


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None when it is larger than `limit` bytes or the client went away."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    """A `receive` that gives the app the body already read, then whatever comes next (a disconnect)."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


async def _json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    data = json.dumps(body).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                    *(headers or [])],
    })
    await send({"type": "http.response.body", "body": data})
