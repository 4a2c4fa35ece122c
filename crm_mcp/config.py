"""Settings: every environment variable and flag of ours, read once at the entry point.

`settings_from_env(env, flags)` builds the one frozen `Settings` that the rest of the server is
given; no other module of ours reads the environment. To add a setting: a field on `Settings`
(with a default) and one line in `settings_from_env`.

The APIDECK_* names are those of Apideck's own MCP server, so users can switch. With no
`APIDECK_API_KEY` at all the server runs on the embedded sandbox CRM; a half-configured setup
is a start-up error (`ConfigError`) rather than a silent fall-back to the sandbox.

Plain environment reads rather than pydantic-settings: a dozen variables do not need a settings
framework, and start-up time is paid by every desktop client launch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_BASE_URL = "https://unify.apideck.com"
SANDBOX_API_KEY = "sandbox-key"  # the embedded sandbox accepts any key; this one is not a secret
SANDBOX_APP_ID = "sandbox-app"
SANDBOX_CONSUMER_ID = "demo"
STATE_KEY_MIN = 32  # characters of CRM_MCP_REQUEST_STATE_KEY


class ConfigError(ValueError):
    """A setting is missing or contradicts another; the message says which and how to fix it."""


@dataclass(frozen=True)
class Settings:
    api_key: str = field(repr=False)
    app_id: str
    consumer_id: str
    service_id: str | None = None
    base_url: str = DEFAULT_BASE_URL
    sandbox: bool = False  # True: start the embedded sandbox and talk to it
    sandbox_db: str | None = None  # CRM_MCP_SANDBOX_DB: the embedded sandbox's database (None: user data dir)
    request_state_key: str | None = field(default=None, repr=False)  # CRM_MCP_REQUEST_STATE_KEY, shared by replicas
    http_token: str | None = field(default=None, repr=False)  # CRM_MCP_HTTP_TOKEN: bearer token of HTTP mode
    allowed_hosts: tuple[str, ...] = ()  # CRM_MCP_ALLOWED_HOSTS: extra Host values HTTP mode accepts
    allowed_origins: tuple[str, ...] = ()  # CRM_MCP_ALLOWED_ORIGINS
    sdk_stdio: bool = False  # CRM_MCP_SDK_STDIO: the SDK's own stdio transport instead of ours
    log_level: str = "info"  # --log-level
    # Passed to ApideckClient as is: `retry` (a RetryPolicy; default in crm_mcp.client), timeouts.
    client_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never be written anywhere (logs, errors, results)."""
        return (self.api_key,) if self.api_key and not self.sandbox else ()

    def describe(self) -> str:
        """One line for the startup log and the server's instructions; no secrets."""
        if self.sandbox:
            return "embedded sandbox CRM (demo data; set APIDECK_API_KEY to use a real CRM)"
        service = f", service {self.service_id}" if self.service_id else ""
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

    state_key = env.get("CRM_MCP_REQUEST_STATE_KEY") or None
    if state_key is not None and len(state_key) < STATE_KEY_MIN:
        raise ConfigError(
            f"CRM_MCP_REQUEST_STATE_KEY must be at least {STATE_KEY_MIN} characters (it seals delete "
            f"confirmations); it has {len(state_key)}. Use a long random value, or unset it."
        )
    common: dict[str, Any] = {
        "sandbox_db": get("CRM_MCP_SANDBOX_DB"),
        "request_state_key": state_key,
        "http_token": env.get("CRM_MCP_HTTP_TOKEN") or None,
        "allowed_hosts": _names(env.get("CRM_MCP_ALLOWED_HOSTS")),
        "allowed_origins": _names(env.get("CRM_MCP_ALLOWED_ORIGINS")),
        "sdk_stdio": bool(env.get("CRM_MCP_SDK_STDIO")),
        **{k: v for k, v in (flags or {}).items() if v is not None},
    }

    api_key = get("APIDECK_API_KEY")
    app_id = get("APIDECK_APP_ID")
    consumer_id = get("APIDECK_CONSUMER_ID")
    service_id = get("APIDECK_SERVICE_ID")
    base_url = get("APIDECK_BASE_URL")
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
            **common,
        )
    missing = [n for n, v in (("APIDECK_APP_ID", app_id), ("APIDECK_CONSUMER_ID", consumer_id)) if not v]
    if missing:
        raise ConfigError(
            f"APIDECK_API_KEY is set but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not. "
            "Apideck needs all three: the API key, the application id and the consumer id "
            "(see https://app.apideck.com/unify/api-keys). Unset APIDECK_API_KEY to use the embedded sandbox."
        )
    if base_url and not base_url.startswith(("https://", "http://")):
        raise ConfigError(f"APIDECK_BASE_URL must start with https:// or http://, got {base_url!r}")
    assert app_id is not None and consumer_id is not None
    return Settings(
        api_key=api_key,
        app_id=app_id,
        consumer_id=consumer_id,
        service_id=service_id,
        base_url=(base_url or DEFAULT_BASE_URL).rstrip("/"),
        **common,
    )
