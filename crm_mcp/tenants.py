"""Per-request tenants in HTTP mode: Apideck credentials that come with the MCP request.

One HTTP server can serve many tenants, as Apideck's hosted server does: a request may carry
its own Apideck credentials in headers, used for that request only, never stored or logged.

- `x-apideck-api-key` (or `Authorization: Bearer <key>` when the server has no bearer token of
  its own, as Apideck's hosted server takes it), `x-apideck-app-id`, `x-apideck-consumer-id`,
  and optionally `x-apideck-service-id`.

Without such headers, the server's own configured credentials are used.

Under OAuth (`crm_mcp.auth`) the consumer comes only from the caller's access token: the guard
puts an `OAuthCaller` in the ASGI scope, tenant headers and a per-call `consumer_id` argument are
refused, and `Authorization` carries only the access token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crm_mcp.credentials import Credentials

if TYPE_CHECKING:  # the API client loads with the first call, not at start-up
    from crm_mcp.client import ApiResponse
    from crm_mcp.operations import Operation

SERVER_AUTHENTICATED = "crm_mcp.server_token_checked"  # ASGI scope key set by the bearer guard
OAUTH_CALLER = "crm_mcp.oauth_caller"  # ASGI scope key set by the OAuth guard: an OAuthCaller

KEY_HEADER = "x-apideck-api-key"
APP_HEADER = "x-apideck-app-id"
CONSUMER_HEADER = "x-apideck-consumer-id"
SERVICE_HEADER = "x-apideck-service-id"


class TenantHeaderError(ValueError):
    """The request's tenant cannot be used (incomplete tenant headers, or headers under OAuth); says why."""


@dataclass(frozen=True)
class OAuthCaller:
    """The CRM an OAuth-authenticated caller reaches: the server's Apideck key and app with the
    consumer its token's claim names, or, when the token names none, why it is refused."""

    credentials: Credentials | None
    refusal: str = ""


def oauth_credentials(
    caller: OAuthCaller, headers: Mapping[str, str], arguments: Mapping[str, Any] | None
) -> Credentials:
    """The credentials of an OAuth caller's request; raises TenantHeaderError for what OAuth forbids."""
    sent = [h for h in (KEY_HEADER, APP_HEADER, CONSUMER_HEADER, SERVICE_HEADER) if headers.get(h)]
    if sent:
        raise TenantHeaderError(
            f"This server uses OAuth: your CRM comes from your access token, so {', '.join(sent)} "
            "cannot be sent. Remove them."
        )
    if arguments and arguments.get("consumer_id") is not None:
        raise TenantHeaderError(
            "This server uses OAuth: your CRM comes from your access token, so the consumer_id argument "
            "is not accepted. Call again without it."
        )
    if caller.credentials is None:
        raise TenantHeaderError(caller.refusal)
    return caller.credentials


def credentials_from_headers(headers: Mapping[str, str], *, authorization_is_ours: bool) -> Credentials | None:
    """The tenant credentials a request carries, or None when it carries none.

    `authorization_is_ours`: the `Authorization` header is the server's own bearer token (then
    the Apideck key can only come in `x-apideck-api-key`)."""
    key = headers.get(KEY_HEADER, "").strip()
    if not key and not authorization_is_ours:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            key = value.strip()
    app_id = headers.get(APP_HEADER, "").strip()
    consumer_id = headers.get(CONSUMER_HEADER, "").strip()
    service_id = headers.get(SERVICE_HEADER, "").strip() or None
    if not (key or app_id or consumer_id):
        return None
    missing = [name for name, value in ((KEY_HEADER, key), (APP_HEADER, app_id), (CONSUMER_HEADER, consumer_id))
               if not value]
    if missing:
        raise TenantHeaderError(
            "This request carries Apideck tenant headers but not all of them: missing "
            + ", ".join(missing)
            + ". Send the API key, the app id and the consumer id together (or none, to use the server's own)."
        )
    return Credentials(api_key=key, app_id=app_id, consumer_id=consumer_id, service_id=service_id)


def request_credentials(request: Any, arguments: Mapping[str, Any] | None = None) -> Credentials | None:
    """The tenant credentials of an MCP request's HTTP request (None over stdio or without headers);
    `arguments` are the tool call's (under OAuth, a `consumer_id` among them is refused)."""
    headers = getattr(request, "headers", None)
    if headers is None:
        return None
    scope = getattr(request, "scope", {}) or {}
    caller = scope.get(OAUTH_CALLER)
    if caller is not None:
        return oauth_credentials(caller, headers, arguments)
    return credentials_from_headers(headers, authorization_is_ours=bool(scope.get(SERVER_AUTHENTICATED)))


class TenantClient:
    """The shared API client, bound to one request's tenant credentials."""

    def __init__(self, client: Any, credentials: Credentials):
        self._client = client
        self.credentials = credentials

    async def call(self, op: Operation, **kwargs: Any) -> ApiResponse:
        kwargs.setdefault("credentials", self.credentials)
        response: ApiResponse = await self._client.call(op, **kwargs)
        return response

    def __repr__(self) -> str:  # never the key
        return f"TenantClient(consumer_id={self.credentials.consumer_id!r})"
