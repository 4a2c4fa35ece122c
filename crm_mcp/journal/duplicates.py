"""Likely duplicates before a create: contacts by email and phone, companies by name and website
domain, leads by email and name, looked up through the list filters the contract offers.

Filters differ by resource (the contract has no website filter on companies) and by connector (a
connector may refuse one), so the answer says which criteria were checked and which could not be.
A list filter may match loosely (a substring), so every candidate is compared exactly here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from crm_mcp.errors import CrmError
from crm_mcp.journal.records import CrmCaller, label, operation_for
from crm_mcp.operations import model, resource

_MAX_VALUES = 3  # values looked up per criterion (a contact with five emails makes three lookups)
_PAGE = 20


def _emails(record: Mapping[str, Any]) -> list[str]:
    found = [e.get("email") for e in record.get("emails") or [] if isinstance(e, Mapping)]
    return [e.strip() for e in found if isinstance(e, str) and e.strip()]


def _phones(record: Mapping[str, Any]) -> list[str]:
    found = [p.get("number") for p in record.get("phone_numbers") or [] if isinstance(p, Mapping)]
    return [p.strip() for p in found if isinstance(p, str) and len(_digits(p)) >= 6]


def _names(record: Mapping[str, Any]) -> list[str]:
    name = label({k: record.get(k) for k in ("name", "first_name", "last_name")})
    return [name] if name else []


def _domains(record: Mapping[str, Any]) -> list[str]:
    found = [w.get("url") for w in record.get("websites") or [] if isinstance(w, Mapping)]
    hosts = [re.sub(r"^(https?://)?(www\.)?", "", u.strip().lower()).split("/")[0] for u in found if isinstance(u, str)]
    return [h for h in hosts if h]


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _same_phone(a: str, b: str) -> bool:
    da, db = _digits(a), _digits(b)
    shorter, longer = sorted((da, db), key=len)
    return len(shorter) >= 6 and longer.endswith(shorter)  # "+1 415 555 0101" is "(415) 555-0101"


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.casefold().split()) == " ".join(b.casefold().split())


@dataclass(frozen=True, slots=True)
class Criterion:
    name: str  # as the answer says it: "email", "phone", "name", "website domain"
    filter: str | None  # the list filter that finds candidates (None: the contract has none)
    values: Callable[[Mapping[str, Any]], list[str]]
    same: Callable[[str, str], bool]


CRITERIA: dict[str, tuple[Criterion, ...]] = {
    "contacts": (
        Criterion("email", "email", _emails, _same_text),
        Criterion("phone", "phone_number", _phones, _same_phone),
    ),
    "companies": (
        Criterion("name", "name", _names, _same_text),
        Criterion("website domain", None, _domains, _same_text),
    ),
    "leads": (
        Criterion("email", "email", _emails, _same_text),
        Criterion("name", "name", _names, _same_text),
    ),
}


@dataclass(frozen=True, slots=True)
class Match:
    record_id: str
    label: str  # "Jane Doe, jane.doe@acme.example"
    criterion: str
    value: str


@dataclass(frozen=True, slots=True)
class DuplicateCheck:
    resource: str
    matches: tuple[Match, ...]
    checked: tuple[str, ...]
    unchecked: tuple[tuple[str, str], ...]  # (criterion, why it could not be checked)

    @property
    def text(self) -> str:
        singular = resource(self.resource).singular
        if self.matches:
            first, *others = self.matches
            lines = [f"Possible duplicate of {first.record_id} {first.label} (same {first.criterion})."]
            lines += [f"Also: {m.record_id} {m.label} (same {m.criterion})." for m in others]
            lines.append(
                f"Nothing was created. If this is a different {singular}, call create_{singular} again "
                "with allow_duplicate: true."
            )
        else:
            lines = [f"No likely duplicate {singular} found."]
        lines.append(self.coverage)
        return "\n".join(lines)

    @property
    def coverage(self) -> str:
        parts = [f"Checked: {', '.join(self.checked) or 'nothing'}."]
        if self.unchecked:
            parts.append("Not checked: " + "; ".join(f"{name} ({why})" for name, why in self.unchecked) + ".")
        return " ".join(parts)


def supports_duplicate_check(resource_name: str) -> bool:
    return resource_name in CRITERIA


def _describe(record: Mapping[str, Any]) -> str:
    parts = [label(record), *_emails(record)[:1]]
    return ", ".join(p for p in parts if p)


async def find_duplicates(
    client: CrmCaller,
    resource_name: str,
    body: Mapping[str, Any],
    *,
    call_options: Mapping[str, Any] | None = None,
) -> DuplicateCheck:
    """Look up records that the create of `body` would likely duplicate (one list call per value)."""
    op = operation_for(resource_name, "list")
    filters = set(model(op.filter_model).model_fields) if op.filter_model else set()
    matches: dict[str, Match] = {}
    checked: list[str] = []
    unchecked: list[tuple[str, str]] = []
    for criterion in CRITERIA.get(resource_name, ()):
        values = [" ".join(v.split()) for v in criterion.values(body)][:_MAX_VALUES]  # as a filter finds them
        if not values:
            continue
        if criterion.filter is None or criterion.filter not in filters:
            unchecked.append((criterion.name, f"{op.tool_name} has no filter for it"))
            continue
        try:
            for value in values:
                for record in await _candidates(client, op, criterion.filter, value, call_options or {}):
                    if _matches(criterion, value, record) and str(record.get("id")) not in matches:
                        record_id = str(record.get("id"))
                        matches[record_id] = Match(record_id, _describe(record), criterion.name, value)
        except CrmError as exc:
            unchecked.append((criterion.name, f"the CRM refused filter[{criterion.filter}]: {exc.kind}"))
            continue
        checked.append(criterion.name)
    return DuplicateCheck(resource_name, tuple(matches.values()), tuple(checked), tuple(unchecked))


async def _candidates(
    client: CrmCaller, op: Any, filter_name: str, value: str, call_options: Mapping[str, Any]
) -> Iterable[Mapping[str, Any]]:
    response = await client.call(op, query={"filter": {filter_name: value}, "limit": _PAGE}, **call_options)
    data = response.body.get("data")
    return [r for r in data if isinstance(r, Mapping) and r.get("id") is not None] if isinstance(data, list) else []


def _matches(criterion: Criterion, value: str, record: Mapping[str, Any]) -> bool:
    return any(criterion.same(value, theirs) for theirs in criterion.values(record))
