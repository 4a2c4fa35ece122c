"""Which fields a list row and a record card show, in what order: the contract's weights
(`x-apideck-weights`: critical, high, medium, low, edge-case) plus a short hand-kept order per
resource of the columns an agent reads first."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Mapping
from typing import Any

from crm_mcp.names import NO_NAMES, Names
from crm_mcp.operations import RESOURCES
from crm_mcp.render.values import CELL_CHARS, is_empty, quote, scalar, value

_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3, "edge-case": 4}
_BY_NAME = {r.name: r for r in RESOURCES}
SKIP = frozenset({"pass_through", "custom_mappings", "_raw"})  # request-only or provider noise

# List columns in the order they are tried (after the id) until a row's budget is spent: the
# contract's critical and high fields, linked ids where an agent follows them, then some medium.
# A record card shows the same first. Headers are the fields' own names, those `fields` takes;
# two cells write more than their field: `name` (first + last name when the record has no name)
# and `monetary_amount` (with its currency).
LIST_COLUMNS: dict[str, tuple[str, ...]] = {
    "companies": ("name", "status", "emails", "phone_numbers", "owner_id", "addresses", "updated_at", "industry"),
    "contacts": ("name", "title", "company_id", "emails", "phone_numbers", "company_name", "addresses", "updated_at"),
    "leads": ("name", "company_name", "status", "emails", "phone_numbers", "title", "owner_id", "company_id"),
    "opportunities": (
        "title", "pipeline_stage_id", "monetary_amount", "close_date", "status", "company_id", "primary_contact_id",
        "win_probability", "owner_id",
    ),
    "notes": ("title", "content", "contact_id", "company_id", "opportunity_id", "lead_id", "owner_id", "updated_at"),
    "activities": (
        "type", "title", "activity_datetime", "done", "contact_id", "company_id", "opportunity_id", "lead_id",
        "owner_id",
    ),
    "users": ("first_name", "last_name", "emails", "title", "status", "phone_numbers"),
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
# What defines a record: a list row and a card never drop these to fit (a long title in a row is
# shortened first, and a kept one is shortened when the row is over its budget).
KEEP: dict[str, frozenset[str]] = {
    "activities": frozenset({"type", "activity_datetime"}),
    "opportunities": frozenset({"title", "pipeline_stage_id", "monetary_amount", "close_date"}),
    "leads": frozenset({"status"}),
}
# A card shows these whatever they cost: the records an activity or a note is about, and where
# an opportunity stands.
CARD_LINKS: dict[str, frozenset[str]] = {
    "activities": frozenset({"contact_id", "company_id", "opportunity_id", "lead_id"}),
    "notes": frozenset({"contact_id", "company_id", "opportunity_id", "lead_id"}),
    "opportunities": frozenset({"pipeline_id", "pipeline_stage_id"}),
}
SHORTENABLE = frozenset({"title", "name", "content", "description", "company_name"})
SHORTER = (48, 40, 32, 24)  # lengths a shortenable column tries when it does not fit at CELL_CHARS
KEPT_CHARS = 48  # a kept one (an opportunity's title) stops there: the row goes over its budget instead
_PARTS = {"name": ("name", "first_name", "last_name"), "monetary_amount": ("monetary_amount", "currency")}
# A name the record carries for one of its ids (the other names come from `crm_mcp.names`).
_OWN_NAME = {"company_id": "company_name", "owner_id": "owner_name"}


def valid_fields(resource_name: str) -> list[str]:
    """The fields of a resource's records: what `fields` takes."""
    res = _BY_NAME.get(resource_name)
    if res is None:
        return []
    return sorted(k for k in {*res.read_only_fields, *res.writable_fields} if k != "pass_through")


def unknown_fields(resource_name: str, asked: Iterable[str]) -> str | None:
    """Why `asked` (the `fields` argument) names a field the records do not have, with the valid
    fields and the closest match; None when every field is known (a dot path by its first part)."""
    valid = valid_fields(resource_name)
    if not valid:
        return None
    wrong = [f for f in asked if f != "*" and f.split(".")[0] not in valid]
    if not wrong:
        return None
    hints = []
    for f in wrong:
        name = f.split(".")[0]
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6) or sorted(
            (v for v in valid if name in v), key=len)[:1]  # `amount`: monetary_amount
        hints.append(f"{f!r} (did you mean {close[0]!r}?)" if close else repr(f))
    return f"unknown field {', '.join(hints)}. Valid fields: {', '.join(valid)}"


def name_of(record: Mapping[str, Any], column: str, names: Names) -> str | None:
    """The name of what the id in `column` points to: the record's own (company_name, owner_name)
    or a cached one (users, pipelines, stages)."""
    own = _OWN_NAME.get(column)
    if own and isinstance(record.get(own), str) and record[own].strip():
        return str(record[own]).strip()
    return names.of(column, record.get(column))


def with_name(id_text: str, name: str | None) -> str:
    return f"{id_text} ({quote(name)})" if name else id_text


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


@functools.cache  # a card sorts its fields by it
def _order(resource_name: str) -> dict[str, tuple[int, int]]:
    """Each weighted field's place: its weight's rank, then its position in the contract."""
    return {k: (_RANK.get(w, 5), i) for i, (k, w) in enumerate(_weights(resource_name).items())}


def by_weight(resource_name: str, keys: Iterable[str]) -> list[str]:
    """`keys` from critical to edge-case (the contract's order within a weight), unweighted last."""
    order = _order(resource_name)
    last = (5, len(order))
    return sorted(keys, key=lambda k: order.get(k, last))


@functools.cache  # the same for every page of a resource
def list_candidates(resource_name: str) -> tuple[str, ...]:
    """Columns a list tries, best first: the hand-kept order, then critical, high and medium fields."""
    weights = _weights(resource_name)
    weighted = [k for k in by_weight(resource_name, weights) if _RANK[weights[k]] <= 2]
    own = LIST_COLUMNS.get(resource_name, ())
    parts = {"first_name", "last_name"} - set(own)  # shown in `name` unless the record has none
    return tuple(dict.fromkeys(k for k in [*own, *weighted] if k not in ("id", "currency", *parts)))


def card_order(resource_name: str, keys: list[str]) -> list[str]:
    """A record's fields in the order a card shows them: the list's columns first, then by weight."""
    first = [part for k in LIST_COLUMNS.get(resource_name, ()) for part in _PARTS.get(k, (k,)) if part in keys]
    return list(dict.fromkeys([*first, *by_weight(resource_name, keys)]))


def cell(record: Mapping[str, Any], column: str, *, names: Names = NO_NAMES, limit: int = CELL_CHARS,
         named: bool = True) -> str:
    """One list cell, "" when the record has nothing there. `named`: an id followed by the name of
    what it points to, when known; `limit`: the length of a shortenable string."""
    raw = record.get(column)
    if is_empty(raw):
        if column != "name":
            return ""
        names_ = [str(record[k]) for k in ("first_name", "last_name") if record.get(k)]
        return quote(" ".join(names_), limit) if names_ else ""
    if column == "monetary_amount":
        currency = record.get("currency")
        return scalar(raw) + (f" {quote(str(currency))}" if currency else "")
    if column in SHORTENABLE and isinstance(raw, str):
        return quote(raw, limit)
    text = value(column, raw, short=True) + ("%" if column == "win_probability" else "")
    return with_name(text, name_of(record, column, names)) if named and isinstance(raw, str) else text


def redundant(record: Mapping[str, Any], key: str) -> bool:
    """first_name and last_name add nothing when `name` is exactly the two; a company or owner name
    nothing beside the id that a card writes it with."""
    if key in ("company_name", "owner_name"):
        return bool(record.get(key.replace("_name", "_id")))
    if key not in ("first_name", "last_name") or record.get("middle_name"):
        return False
    return record.get("name") == f"{record.get('first_name') or ''} {record.get('last_name') or ''}".strip()
