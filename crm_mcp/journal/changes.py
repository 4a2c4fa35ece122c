"""`crm_changes(since, resources?)`: what was created or changed in the CRM since a time, across
companies, contacts, leads, opportunities and activities.

Each resource is read newest change first (`sort[by]=updated_at`, descending) through its
`filter[updated_since]` when the contract has one; where it has not (leads and opportunities),
the sorted list is read until a record older than `since`. Bounded: at most `limit` records per
resource per call, with a cursor that continues every resource that has more.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crm_mcp.journal.records import CrmCaller, label, operation_for
from crm_mcp.operations import model
from crm_mcp.render.values import quote

DIGEST_RESOURCES = ("companies", "contacts", "leads", "opportunities", "activities")
DEFAULT_LIMIT = 10
MAX_LIMIT = 50


class ChangesArgumentError(ValueError):
    """A bad `since`, `resources` or `cursor`; the message names the argument and the fix."""


@dataclass(frozen=True, slots=True)
class ChangedRecord:
    id: str
    label: str
    created: bool  # created since `since` (else changed)
    updated_at: str


@dataclass(frozen=True, slots=True)
class ResourceChanges:
    resource: str
    records: tuple[ChangedRecord, ...]
    more: bool  # more changed records than shown (continue with the digest's cursor)
    how: str  # "updated_since filter" or "sorted by updated_at"


@dataclass(frozen=True, slots=True)
class ChangesDigest:
    since: str
    groups: tuple[ResourceChanges, ...]
    unchecked: tuple[tuple[str, str], ...]  # (resource, why)
    cursor: str | None

    @property
    def text(self) -> str:
        lines = [f"Created or changed since {self.since}:"]
        for group in self.groups:
            created = sum(r.created for r in group.records)
            count = f"{len(group.records)}{'+' if group.more else ''}"
            lines.append(f"{group.resource}: {count} ({created} created, {len(group.records) - created} changed)")
            lines += [
                f"  {r.id}" + (f" {quote(r.label, 60)}" if r.label else "")
                + f" ({'created' if r.created else 'changed'} {r.updated_at})"
                for r in group.records
            ]  # fmt: skip
        lines += [f"{name}: not checked ({why})" for name, why in self.unchecked]
        if self.cursor:
            lines.append(f"More changes: call crm_changes again with cursor {self.cursor!r}.")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "changes": {
                g.resource: {
                    "count": len(g.records),
                    "more": g.more,
                    "records": [
                        {"id": r.id, "name": r.label, "created": r.created, "updated_at": r.updated_at}
                        for r in g.records
                    ],
                }
                for g in self.groups
            },
            "not_checked": dict(self.unchecked),
            "cursor": self.cursor,
        }


def parse_since(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ChangesArgumentError(
                f"since must be an ISO 8601 date or time such as 2026-11-01 or 2026-11-01T09:00:00Z, got {value!r}"
            ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _encode_cursor(since: str, pending: Mapping[str, str]) -> str:
    raw = json.dumps({"since": since, "next": dict(pending)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, dict[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        since, pending = data["since"], data["next"]
        if not isinstance(since, str) or not isinstance(pending, dict):
            raise ValueError
        if not all(k in DIGEST_RESOURCES and isinstance(v, str) for k, v in pending.items()):
            raise ValueError
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ChangesArgumentError("cursor is not one crm_changes returned; leave it out to start over") from None
    return since, pending


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_since(value)
    except ChangesArgumentError:
        return None


def _sort_fields(sort_model: str | None) -> set[str]:
    """The values `sort[by]` takes, from the sort model's schema (an enum, maybe in an anyOf)."""
    if sort_model is None:
        return set()
    found: set[str] = set()

    def collect(node: Any) -> None:
        if isinstance(node, Mapping):
            found.update(v for v in node.get("enum", ()) if isinstance(v, str))
            for child in node.values():
                collect(child)
        elif isinstance(node, list):
            for child in node:
                collect(child)

    collect(model(sort_model).model_json_schema().get("properties", {}).get("by"))
    return found


async def crm_changes(
    client: CrmCaller,
    since: str | datetime | None = None,
    resources: Sequence[str] | None = None,
    *,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    call_options: Mapping[str, Any] | None = None,
) -> ChangesDigest:
    """The digest (see the module docstring); `cursor` continues a previous digest."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ChangesArgumentError(f"limit must be 1 to {MAX_LIMIT}, got {limit}")
    pending: dict[str, str | None]
    if cursor:
        since_text, continued = _decode_cursor(cursor)
        pending = dict(continued)
    else:
        if since is None:
            raise ChangesArgumentError("since is required (an ISO 8601 time such as 2026-11-01T09:00:00Z)")
        wanted = list(resources or DIGEST_RESOURCES)
        unknown = [r for r in wanted if r not in DIGEST_RESOURCES]
        if unknown:
            raise ChangesArgumentError(
                f"resources: unknown {', '.join(unknown)}; choose from {', '.join(DIGEST_RESOURCES)}"
            )
        since_text = _iso(parse_since(since))
        pending = dict.fromkeys(wanted)
    moment = parse_since(since_text)
    groups: list[ResourceChanges] = []
    unchecked: list[tuple[str, str]] = []
    next_pending: dict[str, str] = {}
    for name, upstream_cursor in pending.items():
        op = operation_for(name, "list")
        filters = set(model(op.filter_model).model_fields) if op.filter_model else set()
        if "updated_at" not in _sort_fields(op.sort_model):
            unchecked.append((name, f"{op.tool_name} cannot sort by updated_at"))
            continue
        query: dict[str, Any] = {"sort": {"by": "updated_at", "direction": "desc"}, "limit": limit}
        by_filter = "updated_since" in filters
        if by_filter:
            query["filter"] = {"updated_since": since_text}
        if upstream_cursor:
            query["cursor"] = upstream_cursor
        response = await client.call(op, query=query, **(call_options or {}))
        data = response.body.get("data")
        records: list[ChangedRecord] = []
        reached_older = False
        for record in data if isinstance(data, list) else []:
            updated = _timestamp(record.get("updated_at"))
            if updated is None or updated < moment:
                reached_older = True
                break
            created = _timestamp(record.get("created_at"))
            records.append(
                ChangedRecord(str(record.get("id")), label(record), created is not None and created >= moment,
                              _iso(updated))
            )  # fmt: skip
        meta = response.body.get("meta")
        cursors = meta.get("cursors") if isinstance(meta, Mapping) else None
        next_cursor = cursors.get("next") if isinstance(cursors, Mapping) else None
        more = bool(next_cursor) and not reached_older
        if more:
            next_pending[name] = str(next_cursor)
        how = "updated_since filter" if by_filter else "sorted by updated_at"
        groups.append(ResourceChanges(name, tuple(records), more, how))
    return ChangesDigest(
        since=since_text,
        groups=tuple(groups),
        unchecked=tuple(unchecked),
        cursor=_encode_cursor(since_text, next_pending) if next_pending else None,
    )
