"""Names for ids that records carry without them: users (owner_id) and pipelines and their stages
(pipeline_id, pipeline_stage_id). Small, stable lists, read once per tenant and kept a few
minutes, so that a list or a card names its owner and stage without an upstream call per row.

The cache is keyed by the tenant's credentials and consumer (hashed; the key is never stored as
is): one tenant's or consumer's names are never shown to another. It holds at most `MAX_TENANTS`
tenants, each for `TTL_SECONDS`.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

TTL_SECONDS = 300.0
MAX_TENANTS = 256
LIST_SIZE = 200  # one page of the contract's largest size: users and pipelines are small lists
_BY_FIELD = {"owner_id": "users", "user_id": "users", "pipeline_id": "pipelines", "pipeline_stage_id": "stages"}


@dataclass(frozen=True)
class Names:
    """Display names by id: users, pipelines, stages (empty when unknown)."""

    users: Mapping[str, str] = field(default_factory=dict)
    pipelines: Mapping[str, str] = field(default_factory=dict)
    stages: Mapping[str, str] = field(default_factory=dict)

    def of(self, field_name: str, record_id: Any) -> str | None:
        """The name of the record `record_id` that the field `field_name` points to, if known."""
        table = _BY_FIELD.get(field_name)
        return getattr(self, table).get(str(record_id)) if table and record_id is not None else None


NO_NAMES = Names()


def _lists_naming(has: Callable[[str], Any]) -> set[str]:
    """The lists that name what a record points to, given what it has: its owner's name unless it
    carries it (users), its pipeline and stage (pipelines)."""
    lists = set()
    if has("owner_id") and not has("owner_name"):
        lists.add("users")
    if has("pipeline_id") or has("pipeline_stage_id"):
        lists.add("pipelines")
    return lists


def lists_needed(resource: str, records: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """Which lists ("users", "pipelines") name something in `records` that they do not name themselves."""
    if resource in ("users", "pipelines"):
        return frozenset()
    need: set[str] = set()
    for record in records:
        need |= _lists_naming(record.get)
    return frozenset(need)


def lists_for(resource: str, fields: Collection[str] | None = None) -> frozenset[str]:
    """The lists that records of `resource` can point to (only through `fields`, when a call picks
    them), by the contract's fields: what `lists_needed` can ask for once the records are in."""
    return _lists_for(resource, None if fields is None else frozenset(fields))


@lru_cache(maxsize=256)  # bounded: `fields` comes from callers
def _lists_for(resource: str, fields: frozenset[str] | None) -> frozenset[str]:
    if resource in ("users", "pipelines"):
        return frozenset()
    from crm_mcp.operations import resource as resource_info

    info = resource_info(resource)
    known = {*info.weights, *info.read_only_fields, *info.writable_fields}
    if fields is not None:
        known &= fields
    return frozenset(_lists_naming(known.__contains__))


def tenant_key(api_key: str, app_id: str, consumer_id: str | None, service_id: str | None, base_url: str) -> str:
    """The cache key of one tenant and consumer: a hash, so the cache holds no credential."""
    parts = "\0".join(x or "" for x in (base_url, api_key, app_id, consumer_id, service_id))
    return hashlib.sha256(parts.encode()).hexdigest()


def _user_name(user: Mapping[str, Any]) -> str:
    full = " ".join(str(user[k]).strip() for k in ("first_name", "last_name") if user.get(k))
    return full or str(user.get("username") or "")


async def _read(client: Any, tool: str, overrides: Mapping[str, Any]) -> list[dict[str, Any]]:
    from crm_mcp.errors import CrmError
    from crm_mcp.pages import read_page

    try:
        return (await read_page(client, tool, {"limit": LIST_SIZE}, **overrides)).records
    except CrmError:  # no names is not an error: the ids stay as they are
        return []


class NameCache:
    """Names per tenant key, loaded on first need, kept `ttl` seconds, at most `max_tenants` keys."""

    def __init__(self, ttl: float = TTL_SECONDS, max_tenants: int = MAX_TENANTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl, self._max, self._clock = ttl, max_tenants, clock
        self._entries: OrderedDict[str, tuple[float, dict[str, dict[str, str]]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def missing(self, key: str, lists: Iterable[str]) -> frozenset[str]:
        """Which of `lists` the tenant `key` has no fresh names for."""
        expires, tables = self._entries.get(key, (0.0, {}))
        fresh = tables if expires > self._clock() else {}
        return frozenset(kind for kind in lists if kind not in fresh)

    def forget(self, key: str) -> None:
        """Drop a tenant's names (after a write to its users or pipelines)."""
        self._entries.pop(key, None)

    async def names(self, key: str, client: Any, need: Iterable[str],
                    overrides: Mapping[str, Any] | None = None) -> Names:
        """The names of the lists in `need`, reading those not cached (one list call each)."""
        now = self._clock()
        expires, tables = self._entries.get(key, (0.0, {}))
        if expires <= now:
            expires, tables = now + self._ttl, {}
        for kind in need:
            if kind == "users" and "users" not in tables:
                users = await _read(client, "list_users", overrides or {})
                tables["users"] = {str(u["id"]): _user_name(u) for u in users if u.get("id") and _user_name(u)}
            elif kind == "pipelines" and "pipelines" not in tables:
                pipelines = await _read(client, "list_pipelines", overrides or {})
                tables["pipelines"] = {str(p["id"]): str(p["name"]) for p in pipelines if p.get("id") and p.get("name")}
                tables["stages"] = {str(s["id"]): str(s["name"]) for p in pipelines for s in p.get("stages") or []
                                    if isinstance(s, Mapping) and s.get("id") and s.get("name")}
        self._entries[key] = (expires, tables)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return Names(**{k: tables.get(k, {}) for k in ("users", "pipelines", "stages")})


CACHE = NameCache()
