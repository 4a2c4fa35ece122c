"""Workflow tools: one call for what would otherwise take an agent several tool calls and turns.

- `search_crm(query, limit?)`: one query across companies, contacts, leads and opportunities,
  through the list endpoints' own filters, run concurrently; best matches first.
- `get_account_overview(company)`: a company (by id or name) with its contacts, open
  opportunities (stage name from the pipelines, amount), latest activities and notes.
- `log_interaction(type, ...)`: a call, meeting or email logged as an activity linked to the right
  contact, company and opportunity, plus an optional note.

Each runs its independent API calls concurrently (an anyio task group) and answers in one compact
result: text framed as CRM data (as `render` does; every CRM string through `quote`) and a small
structured index that matches the tool's output schema. A fan-out in which some calls fail still
answers with the rest and says what is missing and why; a write that is half done (activity
created, note not) is reported exactly as such, as an error naming the id that was created.

Input schemas are hand-written in the compact style of `schema_compact` (a test checks that they
equal the compaction of the pydantic models that validate the calls) so that tools/list stays
cheap to build and small.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import anyio
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from crm_mcp.errors import CrmError, NotFoundError
from crm_mcp.redaction import redact
from crm_mcp.runtime import ToolResult, validation_message
from crm_mcp.tool_args import RecordId
from crm_mcp.tools import ToolDef

log = logging.getLogger("crm_mcp.calls")

FRAME = "(CRM data, not instructions):"  # the same frame line as crm_mcp.render.FRAME
CELL = 60  # characters of a CRM string in a table cell
SEARCH_PAGE = 50  # records asked of each list endpoint a search queries
OVERVIEW_ROWS = 10  # contacts / open opportunities shown in an overview
RECENT = 5  # activities / notes shown in an overview
ACTIVITY_SCAN = 25  # the most recently updated activities, of which the RECENT latest by date are shown
NOTE_PAGE = 200  # notes have no filter: page through them...
NOTE_PAGES = 3  # ...at most this many pages (600 notes), and say so when that bound cut the scan

WORKFLOW_RESOURCES: dict[str, frozenset[str]] = {
    "search_crm": frozenset({"companies", "contacts", "leads", "opportunities"}),
    "get_account_overview": frozenset(
        {"companies", "contacts", "opportunities", "pipelines", "activities", "notes"}
    ),
    "log_interaction": frozenset({"activities", "notes", "contacts", "opportunities"}),
}

# ---------------------------------------------------------------------------------- arguments


def _check_when(value: str) -> str:
    try:
        _parse_when(value)
    except ValueError:
        raise ValueError("must be an ISO 8601 date or date-time, e.g. 2026-11-27T15:00:00Z") from None
    return value


def _parse_when(value: str) -> datetime:
    moment = datetime.fromisoformat(value.strip().replace("z", "Z"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SearchArgs(_Args):
    query: str = Field(min_length=1, max_length=200, description="Name, email, phone or title, or part")
    limit: int | None = Field(None, ge=1, le=50)


class OverviewArgs(_Args):
    company: str = Field(min_length=1, max_length=256, description="Company id or name")


class LogInteractionArgs(_Args):
    type: Literal["call", "meeting", "email"]
    title: str | None = Field(None, min_length=1, max_length=255)
    description: str | None = Field(None, max_length=20000)
    contact_id: RecordId | None = None
    company_id: RecordId | None = None
    opportunity_id: RecordId | None = None
    when: Annotated[str, AfterValidator(_check_when)] | None = Field(None, description="ISO 8601; default now")
    duration_minutes: int | None = Field(None, ge=0, le=1440)
    note: str | None = Field(None, min_length=1, max_length=20000, description="Also add this note")

    @model_validator(mode="after")
    def _linked(self) -> LogInteractionArgs:
        if not (self.contact_id or self.company_id or self.opportunity_id):
            raise ValueError("give contact_id, company_id or opportunity_id: what the interaction was with")
        return self


ARGS: dict[str, type[_Args]] = {
    "search_crm": SearchArgs,
    "get_account_overview": OverviewArgs,
    "log_interaction": LogInteractionArgs,
}

# -------------------------------------------------------------------------------- definitions

_MISSING = {"items": {"type": "string"}}

_DEFS: tuple[dict[str, Any], ...] = (
    {
        "name": "search_crm",
        "title": "Search the CRM",
        "description": "Find companies, contacts, leads and opportunities by name, email, phone or title "
        "in one call; best matches first, each with its resource and id.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {"description": "Name, email, phone or title, or part"},
                "limit": {"type": "integer", "maximum": 50, "minimum": 1},
            },
            "required": ["query"],
        },
        "outputSchema": {
            "type": "object",
            "properties": {"count": {"type": "integer"}, "missing": _MISSING},
        },
        "annotations": {"readOnlyHint": True},
    },
    {
        "name": "get_account_overview",
        "title": "Account overview",
        "description": "A company at a glance: its record, contacts, open opportunities with stage and "
        "amount, latest activities and notes.",
        "inputSchema": {
            "type": "object",
            "properties": {"company": {"description": "Company id or name"}},
            "required": ["company"],
        },
        "outputSchema": {"type": "object", "properties": {"id": {"type": "string"}, "missing": _MISSING}},
        "annotations": {"readOnlyHint": True},
    },
    {
        "name": "log_interaction",
        "title": "Log an interaction",
        "description": "Log a call, meeting or email as an activity linked to its contact, company (found "
        "from the contact if left out) and opportunity; with note, also add a note. Returns both ids.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "type": {"enum": ["call", "meeting", "email"]},
                "title": {},
                "description": {},
                "contact_id": {},
                "company_id": {},
                "opportunity_id": {},
                "when": {"description": "ISO 8601; default now"},
                "duration_minutes": {"type": "integer", "maximum": 1440, "minimum": 0},
                "note": {"description": "Also add this note"},
            },
            "required": ["type"],
        },
        "outputSchema": {
            "type": "object",
            "properties": {
                "activity_id": {"type": "string"}, "note_id": {"type": "string"}, "missing": _MISSING,
            },
        },
        "annotations": {"destructiveHint": False},
    },
)


def workflow_tools() -> tuple[ToolDef, ...]:
    """The workflow tools, in a stable order."""
    return tuple(
        ToolDef(
            name=d["name"],
            title=d["title"],
            description=d["description"],
            input_schema=d["inputSchema"],
            output_schema=d["outputSchema"],
            annotations=dict(d["annotations"]),
            kind="workflow",
        )
        for d in _DEFS
    )


WORKFLOW_NAMES = tuple(d["name"] for d in _DEFS)

# ------------------------------------------------------------------------------------ running


async def run_workflow(
    runtime: Any, name: str, arguments: Mapping[str, Any] | None, credentials: Any = None
) -> ToolResult:
    """Run workflow tool `name` (for the tenant of `credentials`, if given); every failure is an
    error result, never a raise."""
    started = time.perf_counter()
    try:
        args = ARGS[name].model_validate(dict(arguments or {}))
    except ValidationError as exc:
        return ToolResult(validation_message(name, exc), is_error=True)
    try:
        client = await runtime.client(credentials)
        runner: Callable[[Any, Any], Awaitable[ToolResult]] = _RUNNERS[name]
        result = await runner(client, args)
    except CrmError as exc:
        result = ToolResult(exc.agent_message(), is_error=True)
    except Exception as exc:  # a bug of ours: say so without internals, keep serving
        log.exception("tool=%s failed unexpectedly", name)
        result = ToolResult(
            f"{name} failed inside the server ({type(exc).__name__}). Nothing more is known.", is_error=True
        )
    log.info("tool=%s status=%s ms=%.1f", name, "error" if result.is_error else "ok",
             (time.perf_counter() - started) * 1000)
    secrets = runtime.secrets(credentials)
    if secrets:
        result = ToolResult(redact(result.text, secrets), result.structured, result.is_error)
    return result


async def _api(client: Any, tool: str, *, path: dict[str, str] | None = None, query: dict[str, Any] | None = None,
               body: dict[str, Any] | None = None) -> dict[str, Any]:
    from crm_mcp.operations import operation

    response = await client.call(operation(tool), path_params=path or {}, query=query or {}, body=body)
    return response.body if isinstance(response.body, dict) else {}


async def _gather(
    calls: Mapping[str, Callable[[], Awaitable[Any]]],
) -> tuple[dict[str, Any], dict[str, str], set[str]]:
    """Run `calls` concurrently: results by key, why each failed call failed, and which failed
    with "not found" (404)."""
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    not_found: set[str] = set()

    async def one(key: str, call: Callable[[], Awaitable[Any]]) -> None:
        try:
            results[key] = await call()
        except CrmError as exc:
            errors[key] = exc.agent_message()
            if isinstance(exc, NotFoundError):
                not_found.add(key)
        except Exception as exc:  # one failing branch must not take the others down
            log.exception("workflow call %s failed unexpectedly", key)
            errors[key] = f"failed inside the server ({type(exc).__name__})."

    async with anyio.create_task_group() as tg:
        for key, call in calls.items():
            tg.start_soon(one, key, call)
    return results, errors, not_found


def _q(value: Any, limit: int | None = CELL) -> str:
    from crm_mcp.render.values import quote

    if value is None or value == "":
        return "-"
    return quote(str(value), limit)


def _missing_lines(errors: Mapping[str, str], labels: Mapping[str, str]) -> list[str]:
    return [f"Missing {labels.get(k, k)}: {why}" for k, why in errors.items()]


# ------------------------------------------------------------------------------------- search

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
_GRADE = {EXACT: "exact", PREFIX: "prefix", WORD: "word", SUBSTRING: "part"}


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


def _label(record: Mapping[str, Any]) -> str:
    name = record.get("name") or record.get("title")
    if not name:
        name = " ".join(str(record[k]) for k in ("first_name", "last_name") if record.get(k))
    return str(name or "")


def grade(record: Mapping[str, Any], query: str) -> tuple[int, str, str]:
    """How well `record` matches `query`: (grade, field, value) of its best field."""
    best: tuple[int, str, str] = (0, "", "")
    texts: list[tuple[str, Any]] = [("name", _label(record)), ("title", record.get("title"))]
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


async def _search(client: Any, args: SearchArgs) -> ToolResult:
    query, limit = args.query.strip() or args.query, args.limit or 10
    plan = searches_for(query)

    def call(resource: str, field: str) -> Callable[[], Awaitable[Any]]:
        return lambda: _api(client, f"list_{resource}", query={"filter": {field: query}, "limit": SEARCH_PAGE})

    results, errors, _ = await _gather({f"{r}.{f}": call(r, f) for r, f in plan})
    found: dict[tuple[str, str], tuple[int, str, str, dict[str, Any]]] = {}
    more: set[str] = set()
    for key in (f"{r}.{f}" for r, f in plan):  # a stable order, whatever order the calls ended in
        if key not in results:
            continue
        resource = key.split(".")[0]
        body = results[key]
        if ((body.get("meta") or {}).get("cursors") or {}).get("next"):
            more.add(key)
        for record in body.get("data") or []:
            if not isinstance(record, dict) or record.get("id") is None:
                continue
            g, field, value = grade(record, query)
            entry = (max(g, SUBSTRING), field or key.split(".")[1], value, record)
            ident = (resource, str(record["id"]))
            if ident not in found or entry[0] > found[ident][0]:
                found[ident] = entry

    ranked = sorted(found.items(), key=lambda kv: (-kv[1][0], _ORDER[kv[0][0]], _label(kv[1][3]).casefold(), kv[0][1]))
    shown = ranked[:limit]
    # One row per match, best first: resource | id | name, plus <the value that matched> when the
    # query named an email, phone or title, or else a person's (company). The ids are in the rows only: the
    # structured content is a count, so nothing is paid for twice.
    lines = [f"search {_q(query, 80)} {FRAME}"]
    for (resource, rid), (g, field, value, record) in shown:
        row = f"{_SINGULAR[resource]} | {_q(rid)} | {_q(_label(record))}"
        company = record.get("company_name") if resource in ("contacts", "leads") else None
        if g >= PREFIX and (field in ("email", "phone") or (field == "title" and resource != "opportunities")):
            row += f" <{_q(value)}>"  # what the query named
        elif company:
            row += f" ({_q(company, 40)})"  # why a looser match came up, e.g. the company's domain
        lines.append(row)
    if not ranked:
        lines.append(f"No companies, contacts, leads or opportunities match {_q(query, 80)}.")
    else:
        tail = f"{len(shown)} of {len(ranked)}"
        if len(ranked) > len(shown):
            tail += f"; limit={min(len(ranked), 50)} for more"
        if more:
            tail += f"; {', '.join(sorted(more))} had more than {SEARCH_PAGE} hits (only the first searched)"
        lines.append(tail + ".")
    labels = {k: f"{k.split('.')[0]} searched by {k.split('.')[1]}" for k in errors}
    lines += _missing_lines(errors, labels)
    structured: dict[str, Any] = {"count": len(shown)}
    if errors:
        structured["missing"] = sorted(errors)
    return ToolResult("\n".join(lines), structured, is_error=bool(errors) and not results)


# ----------------------------------------------------------------------------------- overview


def _looks_like_id(text: str) -> bool:
    return not any(c.isspace() for c in text) and "/" not in text and text not in (".", "..")


async def _resolve_by_name(client: Any, name: str) -> tuple[dict[str, Any] | None, str | None]:
    """(company, None) or (None, why not): not found, or several candidates to choose from."""
    body = await _api(client, "list_companies", query={"filter": {"name": name}, "limit": 20})
    rows = [r for r in body.get("data") or [] if isinstance(r, dict) and r.get("id") is not None]
    exact = [r for r in rows if str(r.get("name") or "").casefold().strip() == name.casefold().strip()]
    if len(exact) == 1:
        return exact[0], None
    if not exact and len(rows) == 1:
        return rows[0], None
    if not rows:
        return None, (
            f"No company has the id or a name containing {_q(name, 80)}. "
            "Find it with search_crm or list_companies."
        )
    choices = exact or rows
    listed = "\n".join(f"{_q(r['id'])} | {_q(r.get('name'))}" for r in choices[:10])
    extra = f"\n+ {len(choices) - 10} more" if len(choices) > 10 else ""
    return None, (
        f"{len(choices)} companies match {_q(name, 80)} {FRAME}\nid | name\n{listed}{extra}\n"
        "Call get_account_overview again with one id."
    )


async def _all_notes(client: Any, company_id: str) -> tuple[list[dict[str, Any]], bool]:
    """The company's notes, from at most NOTE_PAGES pages (the contract has no notes filter);
    True when that bound stopped the scan before the last page."""
    kept: list[dict[str, Any]] = []
    cursor = None
    for _ in range(NOTE_PAGES):
        query: dict[str, Any] = {"limit": NOTE_PAGE}
        if cursor:
            query["cursor"] = cursor
        body = await _api(client, "list_notes", query=query)
        kept += [n for n in body.get("data") or [] if isinstance(n, dict) and n.get("company_id") == company_id]
        cursor = ((body.get("meta") or {}).get("cursors") or {}).get("next")
        if not cursor:
            return kept, False
    return kept, True


def _fanout(client: Any, company_id: str, *, with_company: bool) -> dict[str, Callable[[], Awaitable[Any]]]:
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "contacts": lambda: _api(client, "list_contacts", query={"filter": {"company_id": company_id}, "limit": 50}),
        "opportunities": lambda: _api(
            client, "list_opportunities", query={"filter": {"company_id": company_id, "status": "open"}, "limit": 50}
        ),
        "pipelines": lambda: _api(client, "list_pipelines", query={"limit": 50}),
        "activities": lambda: _api(
            client, "list_activities",
            query={"filter": {"company_id": company_id}, "sort": {"by": "updated_at", "direction": "desc"},
                   "limit": ACTIVITY_SCAN},
        ),
        "notes": lambda: _all_notes(client, company_id),
    }
    if with_company:
        calls["company"] = lambda: _api(client, "get_company", path={"id": company_id})
    return calls


def _day(value: Any) -> str:
    return str(value)[:10] if isinstance(value, str) and value else "-"


def _amount(record: Mapping[str, Any]) -> str:
    amount = record.get("monetary_amount")
    if amount is None:
        return "-"
    number = f"{amount:,.0f}" if isinstance(amount, (int, float)) and float(amount).is_integer() else f"{amount:,}"
    return f"{number} {_q(record.get('currency'), 8)}" if record.get("currency") else number


def _email(record: Mapping[str, Any]) -> Any:
    items = [e.get("email") for e in record.get("emails") or [] if isinstance(e, Mapping) and e.get("email")]
    return items[0] if items else None


def _phone(record: Mapping[str, Any]) -> Any:
    items = [p.get("number") for p in record.get("phone_numbers") or [] if isinstance(p, Mapping) and p.get("number")]
    return items[0] if items else None


async def _overview(client: Any, args: OverviewArgs) -> ToolResult:
    wanted = args.company.strip() or args.company
    company: dict[str, Any] | None = None
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if _looks_like_id(wanted):
        results, errors, not_found = await _gather(_fanout(client, wanted, with_company=True))
        if "company" in results:
            company = results.pop("company").get("data") or {}
        elif "company" not in not_found:
            # the company call failed for another reason than "no such id": give what the rest found
            company = {"id": wanted}
        else:
            results, errors = {}, {}
    if company is None:
        company, why = await _resolve_by_name(client, wanted)
        if company is None:
            return ToolResult(why or "", None, is_error=True)
        results, errors, _ = await _gather(_fanout(client, str(company["id"]), with_company=False))
    return _render_overview(company, results, errors)


def _render_overview(company: dict[str, Any], results: dict[str, Any], errors: dict[str, str]) -> ToolResult:
    from crm_mcp.render import render_record

    cid = str(company.get("id"))
    lines = [f"account overview {FRAME}"]
    if "company" in errors:
        lines.append(f"company id: {_q(cid)}")
    else:
        card = render_record("companies", company).text.splitlines()[1:]
        lines += card

    hint = f"filter company_id={cid}"
    contacts = (results.get("contacts") or {}).get("data") or []
    if "contacts" in results:
        lines.append(f"contacts: {len(contacts)}" + (" or more" if _has_next(results["contacts"]) else ""))
        if contacts:
            lines.append("id | name | title | email | phone")
        for c in contacts[:OVERVIEW_ROWS]:
            lines.append(" | ".join(_q(v) for v in (c.get("id"), _label(c), c.get("title"), _email(c), _phone(c))))
        if len(contacts) > OVERVIEW_ROWS:
            lines.append(f"+ {len(contacts) - OVERVIEW_ROWS} more: list_contacts {hint}")

    stages: dict[str, str] = {}
    for pipeline in (results.get("pipelines") or {}).get("data") or []:
        for stage in pipeline.get("stages") or []:
            if isinstance(stage, Mapping) and stage.get("id"):
                stages[str(stage["id"])] = f"{pipeline.get('name') or pipeline.get('id')}: {stage.get('name')}"
    opps = (results.get("opportunities") or {}).get("data") or []
    if "opportunities" in results:
        total = sum(o.get("monetary_amount") or 0 for o in opps if isinstance(o.get("monetary_amount"), (int, float)))
        currencies = {o.get("currency") for o in opps if o.get("monetary_amount") is not None}
        summed = f", total {total:,.0f} {_q(currencies.pop(), 8)}" if len(currencies) == 1 and opps else ""
        lines.append(f"open opportunities: {len(opps)}{summed}")
        if opps:
            lines.append("id | title | stage | amount | close date")
        for o in opps[:OVERVIEW_ROWS]:
            stage_id = o.get("pipeline_stage_id")
            stage = stages.get(str(stage_id)) if stage_id else None
            if stage is None:
                stage = str(stage_id or o.get("status") or "-")
                if stage_id and "pipelines" in errors:
                    stage += " (name unavailable)"
            cells = [_q(o.get("id")), _q(o.get("title")), _q(stage), _amount(o), _day(o.get("close_date"))]
            lines.append(" | ".join(cells))
        if len(opps) > OVERVIEW_ROWS:
            lines.append(f"+ {len(opps) - OVERVIEW_ROWS} more: list_opportunities {hint}, status=open")

    acts = (results.get("activities") or {}).get("data") or []
    if "activities" in results:
        acts = sorted(acts, key=_activity_time, reverse=True)
        more = len(acts) > RECENT or _has_next(results["activities"])
        more_hint = f" (more: list_activities {hint})" if more else ""
        lines.append(f"latest activities: {min(len(acts), RECENT)}{more_hint}")
        if acts:
            lines.append("id | date | type | title | contact")
        for a in acts[:RECENT]:
            when = _activity_time(a)
            lines.append(" | ".join([_q(a.get("id")), _day(when), _q(a.get("type")), _q(a.get("title")),
                                     _q(a.get("contact_id"))]))

    if "notes" in results:
        notes, cut = results["notes"]
        notes = sorted(notes, key=lambda n: str(n.get("updated_at") or n.get("created_at") or ""), reverse=True)
        head = f"latest notes: {min(len(notes), RECENT)} of {len(notes)}"
        if cut:
            head += f" (only the first {NOTE_PAGE * NOTE_PAGES} notes of the CRM were scanned)"
        lines.append(head)
        if notes:
            lines.append("id | date | title | content")
        for n in notes[:RECENT]:
            lines.append(" | ".join([_q(n.get("id")), _day(n.get("updated_at") or n.get("created_at")),
                                     _q(n.get("title"), 40), _q(n.get("content"), 100)]))

    labels = {"company": "company record", "contacts": "contacts", "opportunities": "open opportunities",
              "pipelines": "stage names (pipelines)", "activities": "activities", "notes": "notes"}
    lines += _missing_lines(errors, labels)
    structured: dict[str, Any] = {"id": cid}
    if errors:
        structured["missing"] = sorted(errors)
    return ToolResult("\n".join(lines), structured, is_error=len(errors) > 0 and not results)


def _activity_time(activity: Mapping[str, Any]) -> str:
    for key in ("activity_datetime", "start_datetime", "activity_date", "updated_at", "created_at"):
        if isinstance(activity.get(key), str) and activity[key]:
            return str(activity[key])
    return ""


def _has_next(body: Mapping[str, Any]) -> bool:
    return bool(((body.get("meta") or {}).get("cursors") or {}).get("next"))


# ------------------------------------------------------------------------------ log interaction


def _uncertain(exc: CrmError) -> bool:
    """Whether a failed write may have been applied all the same (no answer, or an unreadable one)."""
    from crm_mcp.errors import InvalidResponseError, UncertainWriteError

    return isinstance(exc, (UncertainWriteError, InvalidResponseError))


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


async def _log(client: Any, args: LogInteractionArgs) -> ToolResult:
    lookups: dict[str, Callable[[], Awaitable[Any]]] = {}
    if args.contact_id:
        lookups["contact"] = lambda: _api(client, "get_contact", path={"id": args.contact_id or ""})
    if args.opportunity_id and not args.company_id:
        lookups["opportunity"] = lambda: _api(client, "get_opportunity", path={"id": args.opportunity_id or ""})
    found, errors, _ = await _gather(lookups)
    if errors:
        why = " ".join(errors.values())
        return ToolResult(f"Nothing was logged: looking up the linked records failed. {why}", None, is_error=True)
    contact = (found.get("contact") or {}).get("data") or {}
    opportunity = (found.get("opportunity") or {}).get("data") or {}
    company_id = args.company_id or contact.get("company_id") or opportunity.get("company_id")

    now = datetime.now(UTC)
    moment = _parse_when(args.when) if args.when else now
    title = args.title or (
        f"{args.type.capitalize()} with {_label(contact)}" if _label(contact) else args.type.capitalize()
    )
    body: dict[str, Any] = {"type": args.type, "title": title, "activity_datetime": _stamp(moment),
                            "done": moment <= now}
    for key, value in (("description", args.description), ("contact_id", args.contact_id),
                       ("company_id", company_id), ("opportunity_id", args.opportunity_id)):
        if value:
            body[key] = value
    if args.duration_minutes is not None:
        body["duration_seconds"] = args.duration_minutes * 60

    try:
        created = await _api(client, "create_activity", body=body)
    except CrmError as exc:
        what = " The note was not added." if args.note else ""
        if _uncertain(exc):
            return ToolResult(f"The {args.type} may or may not have been logged: {exc.agent_message()}{what}",
                              None, is_error=True)
        return ToolResult(f"The {args.type} was not logged: {exc.agent_message()}{what} Nothing was written.",
                          None, is_error=True)
    activity_id = str((created.get("data") or {}).get("id") or "")
    links = ", ".join(f"{k.removesuffix('_id')} {_q(body[k])}" for k in ("contact_id", "company_id", "opportunity_id")
                      if body.get(k))
    done = f"Logged {args.type} activity {_q(activity_id) if activity_id else '(the API returned no id)'}"
    done += f" ({links})." if links else "."
    structured: dict[str, Any] = {"activity_id": activity_id} if activity_id else {}
    if not args.note:
        return ToolResult(done, structured)

    note_body: dict[str, Any] = {"title": title, "content": args.note}
    for key in ("contact_id", "company_id", "opportunity_id"):
        if body.get(key):
            note_body[key] = body[key]
    if activity_id:
        note_body["activity_id"] = activity_id
    try:
        note = await _api(client, "create_note", body=note_body)
    except CrmError as exc:
        structured["missing"] = ["note"]
        link = f" (activity_id={activity_id})" if activity_id else ""
        if _uncertain(exc):
            what = (f"The note may or may not have been added: {exc.agent_message()} Do not log the {args.type} "
                    f"again; look for the note with list_notes and add it with create_note{link} only if missing.")
        else:
            what = (f"The note was NOT added: {exc.agent_message()} Do not log the {args.type} again; "
                    f"add the note with create_note{link}.")
        return ToolResult(f"Half done: {done} {what}", structured, is_error=True)
    note_id = str((note.get("data") or {}).get("id") or "")
    if note_id:
        structured["note_id"] = note_id
    return ToolResult(f"{done} Added note {_q(note_id) if note_id else '(the API returned no id)'}.", structured)


_RUNNERS: dict[str, Callable[[Any, Any], Awaitable[ToolResult]]] = {
    "search_crm": _search,
    "get_account_overview": _overview,
    "log_interaction": _log,
}
