"""Settings from the environment (and flags): which CRM to talk to, with which credentials.

The variable names are those of Apideck's own MCP server, so users can switch. With no
`APIDECK_API_KEY` at all the server runs on the embedded sandbox CRM; a half-configured setup
is a startup error rather than a silent fall-back to the sandbox.

Plain `os.environ` reads rather than pydantic-settings: five variables do not need a settings
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
    # Per-call `consumer_id` / `service_id` arguments (CRM_MCP_PER_CALL_CONSUMER=1): off by default,
    # as with the server's own credentials they reach any consumer of the operator's application;
    # when on, optionally limited to these consumers (CRM_MCP_ALLOWED_CONSUMERS=a,b).
    per_call_consumer: bool = False
    allowed_consumers: frozenset[str] | None = None

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


def settings_from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Read the APIDECK_* variables. Raises ConfigError for a half-configured setup."""
    env = os.environ if env is None else env

    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    api_key = get("APIDECK_API_KEY")
    app_id = get("APIDECK_APP_ID")
    consumer_id = get("APIDECK_CONSUMER_ID")
    service_id = get("APIDECK_SERVICE_ID")
    base_url = get("APIDECK_BASE_URL")
    switching = _consumer_switching(get("CRM_MCP_PER_CALL_CONSUMER"), get("CRM_MCP_ALLOWED_CONSUMERS"))
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
            **switching,
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
        **switching,
    )


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
