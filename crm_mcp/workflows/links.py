"""Which records an interaction is linked to, found before anything is written.

- The contact, given by id, name or email: an id is read with get_contact; a name or email (or an
  id that does not exist) is looked up with list_contacts. One match, or exactly one exact match,
  is taken; none or several stop the log with the candidates to choose from.
- The company: given, else the contact's or the opportunity's company.
- The opportunity: given, else the contact's open opportunity when there is exactly one (CRMs
  commonly associate a call logged on a contact with its open deal). With several, or when
  looking them up fails, the interaction is logged without one and the answer says why and which.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from crm_mcp.errors import CrmError, NotFoundError
from crm_mcp.pages import read_page, read_record
from crm_mcp.render import table
from crm_mcp.workflows.args import LogInteractionArgs
from crm_mcp.workflows.common import FRAME, amount_text, email_of, gather, label, looks_like_id, q, stage_names

CANDIDATES = 10  # contacts listed when a name matches several
OPEN_SCAN = 200  # open opportunities of the company read to find the contact's


class NotLinked(Exception):
    """The linked records could not be settled: nothing may be written. `str()` says why."""


@dataclass
class Links:
    contact: dict[str, Any]
    company_id: str | None
    opportunity_id: str | None
    why_no_opportunity: str | None = None  # a sentence for the answer, when one was looked for and not linked
    opportunity_found: bool = False  # the opportunity was found from the contact, not given


async def resolve_links(client: Any, args: LogInteractionArgs) -> Links:
    """The records to link; raises NotLinked (nothing written yet) when they cannot be settled."""
    lookups: dict[str, Callable[[], Awaitable[Any]]] = {}
    if args.contact:
        lookups["contact"] = lambda: _contact_or_why(client, args.contact or "")
    if args.opportunity_id and not args.company_id:
        lookups["opportunity"] = lambda: read_record(client, "get_opportunity", path={"id": args.opportunity_id or ""})
    found, errors, _ = await gather(lookups)
    if isinstance(found.get("contact"), NotLinked):
        raise found["contact"]
    if errors:
        raise NotLinked("looking up the linked records failed. " + " ".join(errors.values()))
    contact: dict[str, Any] = found.get("contact") or {}
    opportunity = found.get("opportunity") or {}
    company_id = args.company_id or contact.get("company_id") or opportunity.get("company_id")
    links = Links(contact, str(company_id) if company_id else None, args.opportunity_id)
    if not args.opportunity_id and contact.get("id"):
        await _open_opportunity(client, links)
    return links


async def _contact_or_why(client: Any, wanted: str) -> dict[str, Any] | NotLinked:
    try:
        return await find_contact(client, wanted)
    except NotLinked as why:  # returned, not raised: gather would report it as a failed call
        return why


async def find_contact(client: Any, wanted: str) -> dict[str, Any]:
    """The one contact `wanted` (an id, a name or an email) names; raises NotLinked otherwise."""
    wanted = wanted.strip() or wanted
    if looks_like_id(wanted):
        try:
            record = await read_record(client, "get_contact", path={"id": wanted})
            if record.get("id") is not None:
                return record
        except NotFoundError:
            pass  # not an id: perhaps a one-word name or an email address
    by = "email" if "@" in wanted else "name"
    page = await read_page(client, "list_contacts", {"filter": {by: wanted}, "limit": 20})
    rows = [r for r in page.records if r.get("id") is not None]
    key = wanted.casefold()
    exact = [r for r in rows if key == label(r).casefold().strip()
             or key in (str(e.get("email") or "").casefold() for e in r.get("emails") or [] if isinstance(e, dict))]
    if len(exact) == 1:
        return exact[0]
    if not exact and len(rows) == 1:
        return rows[0]
    if not rows:
        raise NotLinked(f"no contact has the id, name or email {q(wanted, 80)}. "
                        "Find it with search_crm or list_contacts.")
    choices = exact or rows
    listed = "\n".join(table(("id", "name", "company_id", "email"), [
        [q(v) for v in (r["id"], label(r), r.get("company_id"), email_of(r))] for r in choices[:CANDIDATES]
    ]))
    beyond = page.next_cursor is not None and not exact  # the lookup read one page: there are others past it
    extra = f"\n+ {len(choices) - CANDIDATES} more" if len(choices) > CANDIDATES else ""
    extra += (", and others" if extra else "\n+ others") if beyond else ""
    count = f"{len(choices)} or more" if beyond else str(len(choices))
    raise NotLinked(f"{count} contacts match {q(wanted, 80)} {FRAME}\n{listed}{extra}\n"
                    "Call log_interaction again with one id as contact.")


async def _open_opportunity(client: Any, links: Links) -> None:
    """Link the contact's open opportunity when there is exactly one; otherwise say why not."""
    contact_id = str(links.contact["id"])
    scope = {"company_id": links.company_id} if links.company_id else {"primary_contact_id": contact_id}
    try:
        query = {"filter": {**scope, "status": "open"}, "limit": OPEN_SCAN}
        page = await read_page(client, "list_opportunities", query)
    except CrmError as exc:
        links.why_no_opportunity = f"Not linked to an opportunity: looking up open ones failed. {exc.agent_message()}"
        return
    mine = [o for o in page.records if o.get("id") is not None
            and (o.get("primary_contact_id") == contact_id or contact_id in (o.get("contact_ids") or []))]
    if len(mine) == 1 and page.next_cursor is None:
        links.opportunity_id, links.opportunity_found = str(mine[0]["id"]), True
    elif len(mine) > 1:
        links.why_no_opportunity = await _candidates(client, mine)
    elif page.next_cursor is not None:
        links.why_no_opportunity = f"Not linked to an opportunity: the company has over {OPEN_SCAN} open ones."


async def _candidates(client: Any, opportunities: list[dict[str, Any]]) -> str:
    """Why no opportunity was linked, with the contact's open ones to choose from (stage by name
    when the pipelines can be read) and how to link one."""
    try:
        stages = stage_names((await read_page(client, "list_pipelines", {"limit": 50})).records)
    except CrmError:
        stages = {}
    rows = []
    for o in opportunities[:CANDIDATES]:
        stage_id = str(o.get("pipeline_stage_id") or "")
        rows.append([q(o["id"]), q(o.get("title")), q(stages.get(stage_id) or stage_id or o.get("status")),
                     amount_text(o)])
    listed = "\n".join(table(("id", "title", "stage", "amount"), rows))
    extra = f"\n+ {len(opportunities) - CANDIDATES} more" if len(opportunities) > CANDIDATES else ""
    return (f"Not linked to an opportunity: the contact has {len(opportunities)} open ones {FRAME}\n{listed}{extra}\n"
            "To link one: update_activity with this activity's id and opportunity_id (give log_interaction "
            "opportunity_id to link one when logging).")
