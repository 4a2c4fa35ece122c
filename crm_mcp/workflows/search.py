"""`search_crm`: one query across companies, contacts, leads and opportunities, through the list
endpoints' own filters, run concurrently; best matches first."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from crm_mcp.pages import Page, read_page
from crm_mcp.runtime import ToolResult
from crm_mcp.workflows.args import SearchArgs
from crm_mcp.workflows.common import FRAME, gather, label, partial_answer, q, workflow_tool

SEARCH_PAGE = 50  # records asked of each list endpoint a search queries

_PHONE = re.compile(r"[\d\s+().\-/]+")
_SEARCHES: tuple[tuple[str, str], ...] = (
    ("companies", "name"),
    ("contacts", "name"),
    ("contacts", "email"),
    ("contacts", "phone_number"),
    ("leads", "name"),
    ("leads", "email"),
    ("leads", "phone_number"),
    ("opportunities", "title"),
)
_ORDER = {"contacts": 0, "companies": 1, "opportunities": 2, "leads": 3}
_SINGULAR = {"companies": "company", "contacts": "contact", "leads": "lead", "opportunities": "opportunity"}
EXACT, PREFIX, WORD, SUBSTRING = 4, 3, 2, 1


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def searches_for(query: str) -> list[tuple[str, str]]:
    """The (resource, filter) pairs worth asking for `query`: a phone number only by phone, an
    email address not by name or title."""
    phone_like = len(_digits(query)) >= 3 and _PHONE.fullmatch(query.strip()) is not None
    if phone_like:
        return [s for s in _SEARCHES if s[1] == "phone_number"]
    return [s for s in _SEARCHES if s[1] != "phone_number" and not ("@" in query and s[1] in ("name", "title"))]


def _grade_text(value: str, query: str) -> int:
    v, q = value.casefold().strip(), query.casefold().strip()
    if not q or q not in v:
        return 0
    if v == q:
        return EXACT
    if v.startswith(q):
        return PREFIX
    if re.search(r"(?:^|[\s@._\-—(])" + re.escape(q), v):
        return WORD
    return SUBSTRING


def _grade_phone(number: str, query: str) -> int:
    d, q = _digits(number), _digits(query)
    if len(q) < 3 or q not in d:
        return 0
    if d == q or (len(q) >= 7 and d.endswith(q)):
        return EXACT
    return PREFIX if d.startswith(q) else SUBSTRING



def grade(record: Mapping[str, Any], query: str) -> tuple[int, str, str]:
    """How well `record` matches `query`: (grade, field, value) of its best field."""
    best: tuple[int, str, str] = (0, "", "")
    texts: list[tuple[str, Any]] = [("name", label(record)), ("title", record.get("title"))]
    first_last = " ".join(str(record[k]) for k in ("first_name", "last_name") if record.get(k))
    texts.append(("name", first_last))
    for item in record.get("emails") or []:
        if isinstance(item, Mapping):
            texts.append(("email", item.get("email")))
    for field, value in texts:
        if isinstance(value, str) and value:
            g = _grade_text(value, query)
            if g > best[0]:
                best = (g, field, value)
    for item in record.get("phone_numbers") or []:
        if isinstance(item, Mapping) and isinstance(item.get("number"), str):
            g = _grade_phone(item["number"], query)
            if g > best[0]:
                best = (g, "phone", item["number"])
    return best


@workflow_tool(
    title="Search the CRM", args=SearchArgs, scope="crm:read",
    output={"count": {"type": "integer"}},
    resources={"companies", "contacts", "leads", "opportunities"},
)
async def search_crm(client: Any, args: SearchArgs) -> ToolResult:
    """Find companies, contacts, leads and opportunities by name, email, phone or title in one call; best
    matches first, each with its resource and id."""
    query, limit = args.query.strip() or args.query, args.limit or 10
    plan = searches_for(query)

    def call(resource: str, field: str) -> Callable[[], Awaitable[Any]]:
        return lambda: read_page(client, f"list_{resource}", {"filter": {field: query}, "limit": SEARCH_PAGE})

    results, errors, _ = await gather({f"{r}.{f}": call(r, f) for r, f in plan})
    found: dict[tuple[str, str], tuple[int, str, str, dict[str, Any]]] = {}
    more: set[str] = set()
    for key in (f"{r}.{f}" for r, f in plan):  # a stable order, whatever order the calls ended in
        if key not in results:
            continue
        resource = key.split(".")[0]
        page: Page = results[key]
        if page.next_cursor:
            more.add(key)
        for record in page.records:
            if record.get("id") is None:
                continue
            g, field, value = grade(record, query)
            entry = (max(g, SUBSTRING), field or key.split(".")[1], value, record)
            ident = (resource, str(record["id"]))
            if ident not in found or entry[0] > found[ident][0]:
                found[ident] = entry

    ranked = sorted(found.items(), key=lambda kv: (-kv[1][0], _ORDER[kv[0][0]], label(kv[1][3]).casefold(), kv[0][1]))
    shown = ranked[:limit]
    # One row per match, best first: resource | id | name, plus <the value that matched> when the
    # query named an email, phone or title, or else a person's (company). The ids are in the rows only: the
    # structured content is a count, so nothing is paid for twice.
    lines = [f"search {q(query, 80)} {FRAME}"]
    for (resource, rid), (g, field, value, record) in shown:
        row = f"{_SINGULAR[resource]} | {q(rid)} | {q(label(record))}"
        company = record.get("company_name") if resource in ("contacts", "leads") else None
        if g >= PREFIX and (field in ("email", "phone") or (field == "title" and resource != "opportunities")):
            row += f" <{q(value)}>"  # what the query named
        elif company:
            row += f" ({q(company, 40)})"  # why a looser match came up, e.g. the company's domain
        lines.append(row)
    if not ranked:
        lines.append(f"No companies, contacts, leads or opportunities match {q(query, 80)}.")
    else:
        tail = f"{len(shown)} of {len(ranked)}"
        if len(ranked) > len(shown):
            tail += f"; limit={min(len(ranked), 50)} for more"
        if more:
            tail += f"; {', '.join(sorted(more))} had more than {SEARCH_PAGE} hits (only the first searched)"
        lines.append(tail + ".")
    labels = {k: f"{k.split('.')[0]} searched by {k.split('.')[1]}" for k in errors}
    return partial_answer(lines, {"count": len(shown)}, errors, labels, answered=bool(results))
