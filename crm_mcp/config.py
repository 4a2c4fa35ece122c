"""Settings: every environment variable and flag of ours, read once at the entry point.

`settings_from_env(env, flags)` builds the one frozen `Settings` that the rest of the server is
given; no other module of ours reads the environment. To add a setting: a field on `Settings`
(with a default) and one line in `settings_from_env`.

The APIDECK_* names are those of Apideck's own MCP server, so users can switch. With no
`APIDECK_API_KEY` at all the server runs on the embedded sandbox CRM; a half-configured setup
is a start-up error (`ConfigError`) rather than a silent fall-back to the sandbox.

Plain environment reads rather than pydantic-settings: a dozen variables do not need a settings
framework, and start-up time is paid by every desktop client launch.

HTTP mode's variables (CRM_MCP_HTTP_*, CRM_MCP_REQUEST_TIMEOUT, CRM_MCP_UPSTREAM_TIMEOUT) are read
here too; the rules that depend on the bind address (a public bind needs a long token) are
checked by `crm_mcp.http` when it knows the address.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

DEFAULT_BASE_URL = "https://unify.apideck.com"
SANDBOX_API_KEY = "sandbox-key"  # the embedded sandbox accepts any key; this one is not a secret
SANDBOX_APP_ID = "sandbox-app"
SANDBOX_CONSUMER_ID = "demo"
DEFAULT_JOURNAL_RETENTION_DAYS = 7.0  # the journal holds copies of customer records: keep them briefly

HTTP_TOKEN_ENV = "CRM_MCP_HTTP_TOKEN"
ALLOWED_HOSTS_ENV = "CRM_MCP_ALLOWED_HOSTS"  # comma-separated extra Host values, e.g. crm.example.com:443
ALLOWED_ORIGINS_ENV = "CRM_MCP_ALLOWED_ORIGINS"
# name -> (default, lowest, highest); seconds unless named otherwise
HTTP_LIMITS: dict[str, tuple[float, float, float]] = {
    "CRM_MCP_HTTP_HEADER_TIMEOUT": (10.0, 0.1, 300.0),
    "CRM_MCP_HTTP_BODY_TIMEOUT": (30.0, 0.1, 600.0),
    "CRM_MCP_HTTP_IDLE_TIMEOUT": (5.0, 1.0, 600.0),
    "CRM_MCP_HTTP_MAX_CONNECTIONS": (1000, 1, 100_000),  # a count
    "CRM_MCP_REQUEST_TIMEOUT": (120.0, 1.0, 3600.0),
    "CRM_MCP_UPSTREAM_TIMEOUT": (30.0, 0.1, 600.0),
}
STATE_KEY_MIN = 32  # characters of CRM_MCP_REQUEST_STATE_KEY


class ConfigError(ValueError):
    """A setting is missing or contradicts another; the message says which and how to fix it."""


@dataclass(frozen=True)
class OAuthSettings:
    """HTTP mode as an OAuth 2.1 resource server (`crm_mcp.auth`): which authorization server
    issues the tokens, this server's resource URI (the audience tokens must be bound to), and the
    claim that names each user's Apideck consumer."""

    issuer: str  # CRM_MCP_OAUTH_ISSUER, exactly as the authorization server's metadata spells it
    resource: str  # CRM_MCP_OAUTH_RESOURCE, the public URL of the MCP endpoint, e.g. https://crm.example.com/mcp
    consumer_claim: str = "sub"  # CRM_MCP_OAUTH_CONSUMER_CLAIM
    # RFC 7662 introspection of opaque tokens: this server's client at the authorization server
    introspection_client_id: str | None = None  # CRM_MCP_OAUTH_INTROSPECTION_CLIENT_ID
    introspection_client_secret: str | None = field(default=None, repr=False)  # ..._CLIENT_SECRET
    jwks_refetch_seconds: float = 30.0  # an unknown key id refetches the key set at most this often


@dataclass(frozen=True)
class Settings:
    api_key: str = field(repr=False)
    app_id: str
    consumer_id: str
    service_id: str | None = None
    base_url: str = DEFAULT_BASE_URL
    sandbox: bool = False  # True: start the embedded sandbox and talk to it
    # HTTP mode (see README "HTTP mode"): the bearer token as given (never stripped: a token with
    # surrounding whitespace is a configuration error, see crm_mcp.http), extra Host/Origin values
    http_token: str | None = field(default=None, repr=False)
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    # slow and idle clients: a connection must send a complete request head within
    # header_timeout of opening (or of its previous answer), and the body within body_timeout;
    # an idle kept-alive connection is closed after idle_timeout; at most max_connections at once
    header_timeout: float = HTTP_LIMITS["CRM_MCP_HTTP_HEADER_TIMEOUT"][0]
    body_timeout: float = HTTP_LIMITS["CRM_MCP_HTTP_BODY_TIMEOUT"][0]
    idle_timeout: float = HTTP_LIMITS["CRM_MCP_HTTP_IDLE_TIMEOUT"][0]
    max_connections: int = int(HTTP_LIMITS["CRM_MCP_HTTP_MAX_CONNECTIONS"][0])
    request_timeout: float = HTTP_LIMITS["CRM_MCP_REQUEST_TIMEOUT"][0]  # one MCP request over HTTP
    upstream_timeout: float = HTTP_LIMITS["CRM_MCP_UPSTREAM_TIMEOUT"][0]  # waiting for one upstream answer
    # Per-call `consumer_id` / `service_id` arguments (CRM_MCP_PER_CALL_CONSUMER=1): off by default,
    # as with the server's own credentials they reach any consumer of the operator's application;
    # when on, optionally limited to these consumers (CRM_MCP_ALLOWED_CONSUMERS=a,b).
    per_call_consumer: bool = False
    allowed_consumers: frozenset[str] | None = None
    oauth: OAuthSettings | None = None  # HTTP mode: callers authenticate with OAuth access tokens
    # The write journal (crm_mcp.journal): PostgreSQL when a URL is set (replicas share it), else
    # SQLite at `journal_path` (None: journal.db in the user data directory).
    journal_database_url: str | None = field(default=None, repr=False)  # may hold a password
    journal_path: str | None = None
    journal_retention_days: float = DEFAULT_JOURNAL_RETENTION_DAYS
    sandbox_db: str | None = None  # CRM_MCP_SANDBOX_DB: the embedded sandbox's database (None: user data dir)
    request_state_key: str | None = field(default=None, repr=False)  # CRM_MCP_REQUEST_STATE_KEY, shared by replicas
    sdk_stdio: bool = False  # CRM_MCP_SDK_STDIO: the SDK's own stdio transport instead of ours
    log_level: str = "info"  # --log-level
    # Passed to ApideckClient as is: `retry` (a RetryPolicy; default in crm_mcp.client), timeouts.
    client_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never be written anywhere (logs, errors, results)."""
        found = [self.api_key] if self.api_key and not self.sandbox else []
        if self.oauth and self.oauth.introspection_client_secret:
            found.append(self.oauth.introspection_client_secret)
        if self.journal_database_url:
            password = urlsplit(self.journal_database_url).password
            found += [password] if password else []
        return tuple(found)

    def describe(self) -> str:
        """One line for the startup log and the server's instructions; no secrets."""
        if self.sandbox:
            return "embedded sandbox CRM (demo data; set APIDECK_API_KEY to use a real CRM)"
        service = f", service {self.service_id}" if self.service_id else ""
        if self.oauth is not None:
            return f"Apideck at {self.base_url}, each user's consumer from the token claim {self.oauth.consumer_claim}"
        return f"Apideck at {self.base_url}, consumer {self.consumer_id}{service}"


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (text or "").split(",") if v.strip())


def settings_from_env(env: Mapping[str, str] | None = None, flags: Mapping[str, Any] | None = None) -> Settings:
    """The settings from `env` (default: the process environment) and the command's `flags`
    (e.g. {"log_level": "debug"}). Raises ConfigError for a setting that cannot be served."""
    env = os.environ if env is None else env

    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    http = _http_settings(env)
    oauth = oauth_settings_from_env(get)
    state_key = env.get("CRM_MCP_REQUEST_STATE_KEY") or None
    if state_key is not None and len(state_key) < STATE_KEY_MIN:
        raise ConfigError(
            f"CRM_MCP_REQUEST_STATE_KEY must be at least {STATE_KEY_MIN} characters (it seals delete "
            f"confirmations); it has {len(state_key)}. Use a long random value, or unset it."
        )
    common: dict[str, Any] = {
        "sandbox_db": get("CRM_MCP_SANDBOX_DB"),
        "request_state_key": state_key,
        "sdk_stdio": bool(env.get("CRM_MCP_SDK_STDIO")),
        **{k: v for k, v in (flags or {}).items() if v is not None},
    }

    api_key = get("APIDECK_API_KEY")
    app_id = get("APIDECK_APP_ID")
    consumer_id = get("APIDECK_CONSUMER_ID")
    service_id = get("APIDECK_SERVICE_ID")
    base_url = get("APIDECK_BASE_URL")
    switching = _consumer_switching(get("CRM_MCP_PER_CALL_CONSUMER"), get("CRM_MCP_ALLOWED_CONSUMERS"))
    journal = _journal_settings(get)
    if api_key is None:
        stray = [n for n, v in (("APIDECK_APP_ID", app_id), ("APIDECK_BASE_URL", base_url)) if v]
        if stray:
            raise ConfigError(
                f"{' and '.join(stray)} {'is' if len(stray) == 1 else 'are'} set but APIDECK_API_KEY is not. "
                "Set APIDECK_API_KEY too (any value works for a local `crm-mcp sandbox`), "
                "or unset them to use the embedded sandbox."
            )
        return Settings(
            api_key=SANDBOX_API_KEY,
            app_id=SANDBOX_APP_ID,
            consumer_id=consumer_id or SANDBOX_CONSUMER_ID,
            service_id=service_id,
            base_url="",  # filled in when the embedded sandbox starts
            sandbox=True,
            **http,
            **switching,
            oauth=oauth,
            **journal,
            **common,
        )
    # under OAuth each user's consumer comes from their token: APIDECK_CONSUMER_ID is optional
    needed = (("APIDECK_APP_ID", app_id), ("APIDECK_CONSUMER_ID", consumer_id or (oauth and "from tokens")))
    missing = [n for n, v in needed if not v]
    if missing:
        raise ConfigError(
            f"APIDECK_API_KEY is set but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not. "
            "Apideck needs all three: the API key, the application id and the consumer id "
            "(see https://app.apideck.com/unify/api-keys). Unset APIDECK_API_KEY to use the embedded sandbox."
        )
    if base_url and not base_url.startswith(("https://", "http://")):
        raise ConfigError(f"APIDECK_BASE_URL must start with https:// or http://, got {base_url!r}")
    assert app_id is not None
    return Settings(
        api_key=api_key,
        app_id=app_id,
        consumer_id=consumer_id or "",
        service_id=service_id,
        base_url=(base_url or DEFAULT_BASE_URL).rstrip("/"),
        **http,
        **switching,
        oauth=oauth,
        **journal,
        **common,
    )


def _is_loopback_url(url: str) -> bool:
    return (urlsplit(url).hostname or "") in ("localhost", "127.0.0.1", "::1")


def _check_url(name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" and not (parts.scheme == "http" and _is_loopback_url(url)):
        raise ConfigError(f"{name} must be an https:// URL (http:// only on localhost), got {url!r}")
    if not parts.hostname or parts.fragment:
        raise ConfigError(f"{name} must be an absolute URL with a host and no #fragment, got {url!r}")


def oauth_settings_from_env(get: Callable[[str], str | None]) -> OAuthSettings | None:
    """The CRM_MCP_OAUTH_* variables (None when CRM_MCP_OAUTH_ISSUER is unset). Raises ConfigError."""
    issuer = get("CRM_MCP_OAUTH_ISSUER")
    resource = get("CRM_MCP_OAUTH_RESOURCE")
    claim = get("CRM_MCP_OAUTH_CONSUMER_CLAIM")
    client_id = get("CRM_MCP_OAUTH_INTROSPECTION_CLIENT_ID")
    client_secret = get("CRM_MCP_OAUTH_INTROSPECTION_CLIENT_SECRET")
    if issuer is None:
        stray = [n for n, v in (("CRM_MCP_OAUTH_RESOURCE", resource), ("CRM_MCP_OAUTH_CONSUMER_CLAIM", claim),
                                ("CRM_MCP_OAUTH_INTROSPECTION_CLIENT_ID", client_id)) if v]
        if stray:
            raise ConfigError(f"{', '.join(stray)} set but CRM_MCP_OAUTH_ISSUER is not: set the authorization "
                              "server's issuer URL to turn OAuth on, or unset them.")
        return None
    if resource is None:
        raise ConfigError("CRM_MCP_OAUTH_ISSUER is set but CRM_MCP_OAUTH_RESOURCE is not: set it to this server's "
                          "public MCP URL (e.g. https://crm.example.com/mcp), the audience its tokens must carry.")
    _check_url("CRM_MCP_OAUTH_ISSUER", issuer)
    _check_url("CRM_MCP_OAUTH_RESOURCE", resource)
    if bool(client_id) != bool(client_secret):
        raise ConfigError("CRM_MCP_OAUTH_INTROSPECTION_CLIENT_ID and CRM_MCP_OAUTH_INTROSPECTION_CLIENT_SECRET "
                          "go together (this server's client at the authorization server, for RFC 7662 "
                          "introspection of opaque tokens): set both or neither.")
    return OAuthSettings(
        issuer=issuer,
        resource=resource,
        consumer_claim=claim or "sub",
        introspection_client_id=client_id,
        introspection_client_secret=client_secret,
    )


def _http_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """The HTTP-mode fields of Settings. Raises ConfigError for a limit that is not a number in range."""

    def names(variable: str) -> tuple[str, ...]:
        return tuple(v.strip() for v in env.get(variable, "").split(",") if v.strip())

    limits: dict[str, float] = {}
    for variable, (default, lowest, highest) in HTTP_LIMITS.items():
        raw = env.get(variable, "").strip()
        try:
            value = float(raw) if raw else default
        except ValueError:
            value = math.nan
        if not lowest <= value <= highest:  # also refuses nan
            raise ConfigError(f"{variable} must be a number from {lowest:g} to {highest:g}, got {raw!r}")
        limits[variable] = value
    return {
        "http_token": env.get(HTTP_TOKEN_ENV) or None,
        "allowed_hosts": names(ALLOWED_HOSTS_ENV),
        "allowed_origins": names(ALLOWED_ORIGINS_ENV),
        "header_timeout": limits["CRM_MCP_HTTP_HEADER_TIMEOUT"],
        "body_timeout": limits["CRM_MCP_HTTP_BODY_TIMEOUT"],
        "idle_timeout": limits["CRM_MCP_HTTP_IDLE_TIMEOUT"],
        "max_connections": int(limits["CRM_MCP_HTTP_MAX_CONNECTIONS"]),
        "request_timeout": limits["CRM_MCP_REQUEST_TIMEOUT"],
        "upstream_timeout": limits["CRM_MCP_UPSTREAM_TIMEOUT"],
    }


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _consumer_switching(enabled: str | None, allowed: str | None) -> dict[str, Any]:
    """`per_call_consumer` and `allowed_consumers` from CRM_MCP_PER_CALL_CONSUMER and
    CRM_MCP_ALLOWED_CONSUMERS. Raises ConfigError for a value that is not a switch, or a list
    of consumers while switching is off (it would limit nothing)."""
    if enabled is not None and enabled.lower() not in (*_TRUE, *_FALSE):
        raise ConfigError(f"CRM_MCP_PER_CALL_CONSUMER must be 1 or 0 (true/false), got {enabled!r}")
    on = enabled is not None and enabled.lower() in _TRUE
    names = frozenset(n.strip() for n in (allowed or "").split(",") if n.strip())
    if allowed is not None and not names:
        raise ConfigError("CRM_MCP_ALLOWED_CONSUMERS names no consumer; give consumer ids separated by commas")
    if names and not on:
        raise ConfigError(
            "CRM_MCP_ALLOWED_CONSUMERS is set but per-call consumer switching is off; "
            "set CRM_MCP_PER_CALL_CONSUMER=1 too, or unset CRM_MCP_ALLOWED_CONSUMERS."
        )
    return {"per_call_consumer": on, "allowed_consumers": names or None}


def _journal_settings(get: Callable[[str], str | None]) -> dict[str, Any]:
    """CRM_MCP_JOURNAL_DATABASE_URL, CRM_MCP_JOURNAL_PATH, CRM_MCP_JOURNAL_RETENTION_DAYS."""
    url = get("CRM_MCP_JOURNAL_DATABASE_URL")
    if url and not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            "CRM_MCP_JOURNAL_DATABASE_URL must be a PostgreSQL URL (postgresql://user:password@host:5432/db); "
            "unset it to keep the journal in a local SQLite file."
        )
    raw_days = get("CRM_MCP_JOURNAL_RETENTION_DAYS")
    days = DEFAULT_JOURNAL_RETENTION_DAYS
    if raw_days is not None:
        try:
            days = float(raw_days)
        except ValueError:
            days = -1.0
        if not 0 < days <= 3650:
            raise ConfigError(
                f"CRM_MCP_JOURNAL_RETENTION_DAYS must be a number of days above 0 (e.g. 7), got {raw_days!r}"
            )
    return {"journal_database_url": url, "journal_path": get("CRM_MCP_JOURNAL_PATH"), "journal_retention_days": days}
