"""Which fields a list row and a record card show, in what order: the contract's weights
(`x-apideck-weights`: critical, high, medium, low, edge-case) plus a short hand-kept order per
resource of the columns an agent reads first."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from crm_mcp.operations import RESOURCES
from crm_mcp.render.values import CELL_CHARS, is_empty, quote, scalar, value

_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3, "edge-case": 4}
_BY_NAME = {r.name: r for r in RESOURCES}
SKIP = frozenset({"pass_through", "custom_mappings", "_raw"})  # request-only or provider noise

# List columns in the order they are tried (after the id) until a row's budget is spent: the
# contract's critical and high fields, linked ids where an agent follows them, then some medium.
# A record card shows the same first. Synthetic columns: `name` (first + last name when the
# resource has no name field), `amount` (monetary_amount + currency).
LIST_COLUMNS: dict[str, tuple[str, ...]] = {
    "companies": ("name", "status", "emails", "phone_numbers", "owner_id", "addresses", "updated_at", "industry"),
    "contacts": ("name", "title", "company_id", "emails", "phone_numbers", "company_name", "addresses", "updated_at"),
    "leads": ("name", "company_name", "status", "emails", "phone_numbers", "title", "owner_id", "company_id"),
    "opportunities": (
        "title", "primary_contact_id", "amount", "status", "company_id", "win_probability", "owner_id",
        "close_date", "pipeline_stage_id",
    ),
    "notes": ("title", "content", "contact_id", "company_id", "opportunity_id", "lead_id", "owner_id", "updated_at"),
    "activities": (
        "type", "title", "activity_datetime", "done", "contact_id", "company_id", "opportunity_id", "lead_id",
        "owner_id",
    ),
    "users": ("name", "emails", "title", "status", "phone_numbers"),
    "pipelines": ("name", "stages"),
    "custom_object_schemas": ("name", "fields"),
    "custom_objects": ("name", "fields", "owner_id"),
}
# Shown whatever they cost: what a list or a card of these is for.
ALWAYS: dict[str, frozenset[str]] = {
    "pipelines": frozenset({"name", "stages"}),
    "custom_object_schemas": frozenset({"name", "fields"}),
    "custom_objects": frozenset({"fields"}),
    "notes": frozenset({"content"}),
}
_PARTS = {"name": ("name", "first_name", "last_name"), "amount": ("monetary_amount", "currency")}


def label(record: Mapping[str, Any]) -> str:
    """What a record is called: its name or title, else its first and last name, else its
    company name or email ("" when it has none of them)."""
    for key in ("name", "title", "full_name", "display_name"):
        if isinstance(record.get(key), str) and record[key].strip():
            return str(record[key]).strip()
    full = " ".join(str(record[k]).strip() for k in ("first_name", "last_name") if isinstance(record.get(k), str)
                    and record[k].strip())
    if full:
        return full
    for key in ("company_name", "email"):
        if isinstance(record.get(key), str) and record[key].strip():
            return str(record[key]).strip()
    return ""


def singular(resource_name: str) -> str:
    res = _BY_NAME.get(resource_name)
    return res.singular if res else resource_name.removesuffix("s")


def _weights(resource_name: str) -> dict[str, str]:
    res = _BY_NAME.get(resource_name)
    return res.weights if res else {"id": "critical", "name": "critical"}


def by_weight(resource_name: str, keys: Iterable[str]) -> list[str]:
    """`keys` from critical to edge-case (the contract's order within a weight), unweighted last."""
    weights = _weights(resource_name)
    pos = {k: i for i, k in enumerate(weights)}
    return sorted(keys, key=lambda k: (_RANK.get(weights.get(k, ""), 5), pos.get(k, len(pos))))


def list_candidates(resource_name: str) -> list[str]:
    """Columns a list tries, best first: the hand-kept order, then critical, high and medium fields."""
    weights = _weights(resource_name)
    weighted = [k for k in by_weight(resource_name, weights) if _RANK[weights[k]] <= 2]
    tried = [*LIST_COLUMNS.get(resource_name, ()), *weighted]
    return list(dict.fromkeys(k for k in tried if k not in ("id", "first_name", "last_name", "currency")))


def card_order(resource_name: str, keys: list[str]) -> list[str]:
    """A record's fields in the order a card shows them: the list's columns first, then by weight."""
    first = [part for k in LIST_COLUMNS.get(resource_name, ()) for part in _PARTS.get(k, (k,)) if part in keys]
    return list(dict.fromkeys([*first, *by_weight(resource_name, keys)]))


def cell(record: Mapping[str, Any], column: str) -> str:
    """One list cell, "" when the record has nothing there."""
    if column == "name" and is_empty(record.get("name")):
        names = [str(record[k]) for k in ("first_name", "last_name") if record.get(k)]
        return quote(" ".join(names), CELL_CHARS) if names else ""
    if column == "amount":
        amount, currency = record.get("monetary_amount"), record.get("currency")
        if is_empty(amount):
            return ""
        return scalar(amount) + (f" {quote(str(currency))}" if currency else "")
    raw = record.get(column)
    if is_empty(raw):
        return ""
    return value(column, raw, short=True) + ("%" if column == "win_probability" else "")


def redundant(record: Mapping[str, Any], key: str) -> bool:
    """first_name and last_name add nothing when `name` is exactly the two."""
    if key not in ("first_name", "last_name") or record.get("middle_name"):
        return False
    return record.get("name") == f"{record.get('first_name') or ''} {record.get('last_name') or ''}".strip()
