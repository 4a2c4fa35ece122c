"""`get_account_overview`: a company (by id or name) with its contacts, open opportunities (stage
name from the pipelines, amount), latest activities and notes, fetched concurrently."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from crm_mcp.pages import Page, read_page, read_pages, read_record
from crm_mcp.render import table
from crm_mcp.runtime import ToolResult
from crm_mcp.workflows.args import OverviewArgs
from crm_mcp.workflows.common import (
    FRAME,
    amount_text,
    email_of,
    gather,
    label,
    looks_like_id,
    partial_answer,
    phone_of,
    q,
    stage_names,
    workflow_tool,
)

OVERVIEW_ROWS = 10  # contacts / open opportunities shown in an overview
RECENT = 5  # activities / notes shown in an overview
ACTIVITY_SCAN = 25  # the most recently updated activities, of which the RECENT latest by date are shown
NOTE_PAGE = 200  # notes have no filter: page through them...
NOTE_PAGES = 3  # ...at most this many pages (600 notes), and say so when that bound cut the scan



async def _resolve_by_name(client: Any, name: str) -> tuple[dict[str, Any] | None, str | None]:
    """(company, None) or (None, why not): not found, or several candidates to choose from."""
    page = await read_page(client, "list_companies", {"filter": {"name": name}, "limit": 20})
    rows = [r for r in page.records if r.get("id") is not None]
    exact = [r for r in rows if str(r.get("name") or "").casefold().strip() == name.casefold().strip()]
    if len(exact) == 1:
        return exact[0], None
    if not exact and len(rows) == 1:
        return rows[0], None
    if not rows:
        return None, (
            f"No company has the id or a name containing {q(name, 80)}. "
            "Find it with search_crm or list_companies."
        )
    choices = exact or rows
    listed = "\n".join(table(("id", "name"), [[q(r["id"]), q(r.get("name"))] for r in choices[:10]]))
    extra = f"\n+ {len(choices) - 10} more" if len(choices) > 10 else ""
    return None, (
        f"{len(choices)} companies match {q(name, 80)} {FRAME}\n{listed}{extra}\n"
        "Call get_account_overview again with one id."
    )


async def _all_notes(client: Any, company_id: str) -> tuple[list[dict[str, Any]], bool]:
    """The company's notes, from at most NOTE_PAGES pages (the contract has no notes filter);
    True when that bound stopped the scan before the last page."""
    notes, cursor = await read_pages(client, "list_notes", {}, limit=NOTE_PAGE, max_pages=NOTE_PAGES)
    return [n for n in notes if n.get("company_id") == company_id], cursor is not None


def _fanout(client: Any, company_id: str, *, with_company: bool) -> dict[str, Callable[[], Awaitable[Any]]]:
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "contacts": lambda: read_page(client, "list_contacts", {"filter": {"company_id": company_id}, "limit": 50}),
        "opportunities": lambda: read_page(
            client, "list_opportunities", {"filter": {"company_id": company_id, "status": "open"}, "limit": 50}
        ),
        "pipelines": lambda: read_page(client, "list_pipelines", {"limit": 50}),
        "activities": lambda: read_page(
            client, "list_activities",
            {"filter": {"company_id": company_id}, "sort": {"by": "updated_at", "direction": "desc"},
             "limit": ACTIVITY_SCAN},
        ),
        "notes": lambda: _all_notes(client, company_id),
    }
    if with_company:
        calls["company"] = lambda: read_record(client, "get_company", path={"id": company_id})
    return calls


def _records(results: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    page: Page | None = results.get(key)
    return page.records if page is not None else []


def _day(value: Any) -> str:
    return str(value)[:10] if isinstance(value, str) and value else "-"






@workflow_tool(
    title="Account overview", args=OverviewArgs, scope="crm:read",
    output={"id": {"type": "string"}},
    resources={"companies", "contacts", "opportunities", "pipelines", "activities", "notes"},
)
async def get_account_overview(client: Any, args: OverviewArgs) -> ToolResult:
    """A company at a glance: its record, contacts, open opportunities with stage and amount, latest
    activities (by activity_datetime) and notes."""
    wanted = args.company.strip() or args.company
    company: dict[str, Any] | None = None
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if looks_like_id(wanted):
        results, errors, not_found = await gather(_fanout(client, wanted, with_company=True))
        if "company" in results:
            company = results.pop("company")
        elif "company" not in not_found:
            # the company call failed for another reason than "no such id": give what the rest found
            company = {"id": wanted}
        else:
            results, errors = {}, {}
    if company is None:
        company, why = await _resolve_by_name(client, wanted)
        if company is None:
            return ToolResult(why or "", None, is_error=True)
        results, errors, _ = await gather(_fanout(client, str(company["id"]), with_company=False))
    return _render_overview(company, results, errors)


def _render_overview(company: dict[str, Any], results: dict[str, Any], errors: dict[str, str]) -> ToolResult:
    from crm_mcp.render import render_record

    cid = str(company.get("id"))
    lines = [f"account overview {FRAME}"]
    if "company" in errors:
        lines.append(f"company id: {q(cid)}")
    else:
        card = render_record("companies", company).text.splitlines()[1:]
        # the card's "fields=[...]" is an argument of get_company, not of this tool
        lines += [line.replace('(fields=["*"]', '(get_company fields=["*"]') for line in card]

    hint = f"filter company_id={cid}"
    contacts = _records(results, "contacts")
    if "contacts" in results:
        lines.append(f"contacts: {len(contacts)}" + (" or more" if results["contacts"].next_cursor else ""))
        lines += table(("id", "name", "title", "email", "phone"), [
            [q(v) for v in (c.get("id"), label(c), c.get("title"), email_of(c), phone_of(c))]
            for c in contacts[:OVERVIEW_ROWS]
        ])
        if len(contacts) > OVERVIEW_ROWS:
            lines.append(f"+ {len(contacts) - OVERVIEW_ROWS} more: list_contacts {hint}")

    stages = stage_names(_records(results, "pipelines"))
    opps = _records(results, "opportunities")
    if "opportunities" in results:
        total = sum(o.get("monetary_amount") or 0 for o in opps if isinstance(o.get("monetary_amount"), (int, float)))
        currencies = {o.get("currency") for o in opps if o.get("monetary_amount") is not None}
        summed = f", total {total:,.0f} {q(currencies.pop(), 8)}" if len(currencies) == 1 and opps else ""
        lines.append(f"open opportunities: {len(opps)}{summed}")
        rows = []
        for o in opps[:OVERVIEW_ROWS]:
            stage_id = o.get("pipeline_stage_id")
            stage = stages.get(str(stage_id)) if stage_id else None
            if stage is None:
                stage = str(stage_id or o.get("status") or "-")
                if stage_id and "pipelines" in errors:
                    stage += " (name unavailable)"
            rows.append([q(o.get("id")), q(o.get("title")), q(stage), amount_text(o), _day(o.get("close_date"))])
        lines += table(("id", "title", "stage", "amount", "close date"), rows)
        if len(opps) > OVERVIEW_ROWS:
            lines.append(f"+ {len(opps) - OVERVIEW_ROWS} more: list_opportunities {hint}, status=open")

    acts = _records(results, "activities")
    if "activities" in results:
        acts = sorted(acts, key=activity_time, reverse=True)
        more = len(acts) > RECENT or results["activities"].next_cursor is not None
        more_hint = f"; more, or a time window: list_activities {hint} with after/before" if more else ""
        lines.append(f"latest activities: {min(len(acts), RECENT)}, by activity_datetime, of the "
                     f"{ACTIVITY_SCAN} last updated{more_hint}")
        lines += table(("id", "date", "type", "title", "contact"), [
            [q(a.get("id")), _day(activity_time(a)), q(a.get("type")), q(a.get("title")), q(a.get("contact_id"))]
            for a in acts[:RECENT]
        ])

    if "notes" in results:
        notes, cut = results["notes"]
        notes = sorted(notes, key=lambda n: str(n.get("updated_at") or n.get("created_at") or ""), reverse=True)
        head = f"latest notes: {min(len(notes), RECENT)} of {len(notes)}, by updated_at"
        if cut:
            head += f" (only the first {NOTE_PAGE * NOTE_PAGES} notes of the CRM were scanned)"
        lines.append(head)
        lines += table(("id", "date", "title", "content"), [
            [q(n.get("id")), _day(n.get("updated_at") or n.get("created_at")), q(n.get("title"), 40),
             q(n.get("content"), 100)]
            for n in notes[:RECENT]
        ])

    labels = {"company": "company record", "contacts": "contacts", "opportunities": "open opportunities",
              "pipelines": "stage names (pipelines)", "activities": "activities", "notes": "notes"}
    return partial_answer(lines, {"id": cid}, errors, labels, answered=bool(results))


def activity_time(activity: Mapping[str, Any]) -> str:
    for key in ("activity_datetime", "start_datetime", "activity_date", "updated_at", "created_at"):
        if isinstance(activity.get(key), str) and activity[key]:
            return str(activity[key])
    return ""
