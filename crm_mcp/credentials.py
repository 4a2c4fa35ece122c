"""One tenant's Apideck credentials: a value of its own, so that the modules that pass it around
(tenants, the runtime) need not import the API client itself, which only a call needs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Credentials:
    """Apideck credentials for one tenant. The key and app id never appear in `repr`."""

    api_key: str = field(repr=False)
    app_id: str = field(repr=False)
    consumer_id: str | None = None
    service_id: str | None = None
