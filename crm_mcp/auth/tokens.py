"""Access token validation: a JWT (RFC 9068) is checked here against the authorization server's
published keys; any other token is introspected (RFC 7662) when an introspection client is
configured. Either way the token must come from the configured issuer, be unexpired, and be
bound to this server's resource URI (its audience, RFC 8707). PyJWT does the cryptography.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import jwt
from mcp.server.auth.provider import AccessToken

from crm_mcp.auth.authorization_server import AuthorizationServer, UnknownKey
from crm_mcp.config import OAuthSettings

# Asymmetric algorithms only: a token signed with a shared secret (HS256) or unsigned is refused.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
LEEWAY_SECONDS = 5  # clock skew allowed between the authorization server and us


class InvalidToken(Exception):
    """The token is not one this server accepts; the message says why (never the token itself)."""


def _scopes(claims: Mapping[str, Any]) -> list[str]:
    """`scope` (a space-separated string, RFC 9068/7662) or `scp` (a string or a list, as Entra ID and Okta send)."""
    value = claims.get("scope", claims.get("scp", ""))
    if isinstance(value, str):
        return value.split()
    return [s for s in value if isinstance(s, str)] if isinstance(value, list) else []


def _audiences(claims: Mapping[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


class TokenValidator:
    """Turns a bearer token into the SDK's `AccessToken`, or raises InvalidToken."""

    def __init__(self, oauth: OAuthSettings, server: AuthorizationServer):
        self.oauth = oauth
        self.server = server

    async def validate(self, token: str) -> AccessToken:
        if token.count(".") == 2:
            claims = await self._decode_jwt(token)
        elif self.oauth.introspection_client_id:
            claims = await self._introspect(token)
        else:
            raise InvalidToken("the token is not a JWT, and this server has no introspection client configured")
        expires = claims.get("exp")
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id") or claims.get("azp") or ""),
            scopes=_scopes(claims),
            expires_at=int(expires) if isinstance(expires, int | float) else None,
            resource=self.oauth.resource,
            subject=str(claims["sub"]) if claims.get("sub") is not None else None,
            claims=dict(claims),
        )

    async def _decode_jwt(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("the token is not a well-formed JWT") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise InvalidToken(f"the token is signed with {alg!r}; accepted: {', '.join(ALGORITHMS)}")
        try:
            key = await self.server.signing_key(header.get("kid"))
        except UnknownKey:
            raise InvalidToken("the token is signed with a key the authorization server does not publish") from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.oauth.resource,
                issuer=self.oauth.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken(f"the token was not issued for this resource ({self.oauth.resource})") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken(f"the token was not issued by {self.oauth.issuer}") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"the token is not valid: {exc}") from None
        return claims

    async def _introspect(self, token: str) -> dict[str, Any]:
        claims = await self.server.introspect(token)
        if claims.get("active") is not True:
            raise InvalidToken("the authorization server says the token is not active")
        if claims.get("iss") not in (None, self.oauth.issuer):
            raise InvalidToken(f"the token was not issued by {self.oauth.issuer}")
        if self.oauth.resource not in _audiences(claims):
            raise InvalidToken(f"the token was not issued for this resource ({self.oauth.resource})")
        expires = claims.get("exp")
        if isinstance(expires, int | float) and expires + LEEWAY_SECONDS < time.time():
            raise InvalidToken("the token has expired")
        return claims
