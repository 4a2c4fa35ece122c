"""What this server asks of the authorization server, over HTTP (httpx2): its metadata (RFC 8414 /
OpenID discovery), its published signing keys (JWKS), and token introspection (RFC 7662).

Keys are cached. A token signed with a key id we have not seen makes us fetch the key set again
(the authorization server rotated its keys), at most once per `jwks_refetch_seconds`, so that a
stream of tokens with made-up key ids cannot turn this server into a flood of requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx2
import jwt

from crm_mcp.config import OAuthSettings

log = logging.getLogger("crm_mcp.auth")

TIMEOUT = httpx2.Timeout(10.0)


class AuthServerError(Exception):
    """The authorization server could not be reached or answered something unusable."""


class UnknownKey(Exception):
    """No published key has the token's key id."""


def metadata_urls(issuer: str) -> list[str]:
    """Where an issuer's metadata lives: RFC 8414 (path inserted after the host), then OpenID
    Connect discovery (path appended), as the MCP authorization spec has clients try them."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    rfc8414 = urlunsplit((parts.scheme, parts.netloc, "/.well-known/oauth-authorization-server" + path, "", ""))
    oidc = issuer.rstrip("/") + "/.well-known/openid-configuration"
    return [rfc8414, oidc]


class AuthorizationServer:
    """The configured authorization server, as seen by this resource server."""

    def __init__(self, oauth: OAuthSettings, *, clock: Callable[[], float] = time.monotonic):
        self.oauth = oauth
        self._clock = clock
        self._http = httpx2.AsyncClient(timeout=TIMEOUT, follow_redirects=False)
        self._metadata: dict[str, Any] | None = None
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._keys_fetched_at: float | None = None
        self._fetch_error: str | None = None  # why the last fetch of the keys failed
        self._lock = anyio.Lock()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request_json(self, method: str, url: str, *, what: str, **options: Any) -> Any:
        """The JSON body of the authorization server's 200 answer; `what` names the request in errors."""
        try:
            response = await self._http.request(method, url, headers={"accept": "application/json"}, **options)
        except httpx2.HTTPError as exc:
            raise AuthServerError(f"cannot reach {url}: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise AuthServerError(f"{what} answered HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise AuthServerError(f"{what} did not answer JSON") from None

    async def _get_json(self, url: str) -> dict[str, Any]:
        body = await self._request_json("GET", url, what=url)
        if not isinstance(body, dict):
            raise AuthServerError(f"{url} did not answer a JSON object")
        return body

    async def metadata(self) -> dict[str, Any]:
        """The authorization server's metadata, fetched once; its `issuer` must be the configured one."""
        if self._metadata is None:
            failures = []
            for url in metadata_urls(self.oauth.issuer):
                try:
                    found = await self._get_json(url)
                except AuthServerError as exc:
                    failures.append(str(exc))
                    continue
                if found.get("issuer") != self.oauth.issuer:
                    raise AuthServerError(
                        f"{url} names issuer {found.get('issuer')!r}, not the configured {self.oauth.issuer!r}"
                    )
                self._metadata = found
                break
            else:
                raise AuthServerError("no authorization server metadata: " + "; ".join(failures))
        return self._metadata

    async def signing_key(self, kid: str | None) -> jwt.PyJWK:
        """The published key with id `kid` (the only key, when the token names none). Raises
        UnknownKey, or AuthServerError while the last attempt to fetch the keys failed."""
        key = self._lookup(kid)
        if key is not None:
            return key
        async with self._lock:
            key = self._lookup(kid)
            now = self._clock()
            due = self._keys_fetched_at is None or now - self._keys_fetched_at >= self.oauth.jwks_refetch_seconds
            if key is None and due:
                await self._fetch_keys()
                key = self._lookup(kid)
        if key is None:
            if self._fetch_error is not None:
                raise AuthServerError(self._fetch_error)
            raise UnknownKey(kid)
        return key

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def _fetch_keys(self) -> None:
        self._keys_fetched_at = self._clock()  # failures count too: the rate limit holds while it is down
        try:
            uri = (await self.metadata()).get("jwks_uri")
            if not isinstance(uri, str):
                raise AuthServerError("the authorization server's metadata has no jwks_uri")
            body = await self._get_json(uri)
            try:
                key_set = jwt.PyJWKSet.from_dict(body)
            except jwt.PyJWTError as exc:
                raise AuthServerError(f"unusable key set at {uri}: {exc}") from None
        except AuthServerError as exc:
            self._fetch_error = str(exc)
            raise
        self._fetch_error = None
        self._keys = {key.key_id: key for key in key_set.keys if key.public_key_use in (None, "sig")}
        log.info("fetched %d signing keys from %s", len(self._keys), uri)

    async def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662: what the authorization server says about `token` (`active` false if it is no good)."""
        oauth = self.oauth
        assert oauth.introspection_client_id and oauth.introspection_client_secret
        endpoint = (await self.metadata()).get("introspection_endpoint")
        if not isinstance(endpoint, str):
            raise AuthServerError("the authorization server's metadata has no introspection_endpoint")
        body = await self._request_json(
            "POST",
            endpoint,
            what=f"introspection at {endpoint}",
            data={"token": token, "token_type_hint": "access_token"},
            auth=(oauth.introspection_client_id, oauth.introspection_client_secret),
        )
        return body if isinstance(body, dict) else {"active": False}
