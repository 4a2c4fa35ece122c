"""`log_interaction`: a call, meeting or email logged as an activity linked to the right contact,
company and opportunity, plus an optional note; a half-done write is reported exactly as such."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crm_mcp.errors import CrmError
from crm_mcp.pages import read_record
from crm_mcp.runtime import ToolResult
from crm_mcp.tool_args import parse_moment
from crm_mcp.workflows.args import LogInteractionArgs
from crm_mcp.workflows.common import label, q, workflow_tool
from crm_mcp.workflows.links import Links, NotLinked, resolve_links


def _uncertain(exc: CrmError) -> bool:
    """Whether a failed write may have been applied all the same (no answer, or an unreadable one)."""
    from crm_mcp.errors import InvalidResponseError, UncertainWriteError

    return isinstance(exc, (UncertainWriteError, InvalidResponseError))


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@workflow_tool(
    title="Log an interaction", args=LogInteractionArgs, scope="crm:write",
    output={"activity_id": {"type": "string"}, "note_id": {"type": "string"}},
    resources={"activities", "notes", "contacts", "opportunities"},
)
async def log_interaction(client: Any, args: LogInteractionArgs) -> ToolResult:
    """Log a call, meeting or email as an activity linked to its contact, company and open opportunity (both
    found from the contact if left out); with note, also add a note. Returns both ids."""
    try:
        links = await resolve_links(client, args)
    except NotLinked as why:
        return ToolResult(f"Nothing was logged: {why}", None, is_error=True)
    contact = links.contact

    now = datetime.now(UTC)
    moment = parse_moment(args.when) if args.when else now
    title = args.title or (
        f"{args.type.capitalize()} with {label(contact)}" if label(contact) else args.type.capitalize()
    )
    body: dict[str, Any] = {"type": args.type, "title": title, "activity_datetime": _stamp(moment),
                            "done": moment <= now}
    for key, value in (("description", args.description), ("contact_id", contact.get("id")),
                       ("company_id", links.company_id), ("opportunity_id", links.opportunity_id)):
        if value:
            body[key] = value
    if args.duration_minutes is not None:
        body["duration_seconds"] = args.duration_minutes * 60

    if args.dry_run:  # issue 13: what would be sent, nothing written
        return await _preview(client, body, title, args.note)
    try:
        created = await read_record(client, "create_activity", body=body)
    except CrmError as exc:
        what = " The note was not added." if args.note else ""
        if _uncertain(exc):
            return ToolResult(f"The {args.type} may or may not have been logged: {exc.agent_message()}{what}",
                              None, is_error=True)
        return ToolResult(f"The {args.type} was not logged: {exc.agent_message()}{what} Nothing was written.",
                          None, is_error=True)
    activity_id = str(created.get("id") or "")
    logged = f"Logged {args.type} activity {q(activity_id) if activity_id else '(the API returned no id)'}"
    linked = f" for {_linked(body, links)}." if _linked(body, links) else "."
    if links.why_no_opportunity:
        linked += f" {links.why_no_opportunity}"
    structured: dict[str, Any] = {"activity_id": activity_id} if activity_id else {}
    if not args.note:
        return ToolResult(logged + linked, structured)

    note_body: dict[str, Any] = {"title": title, "content": args.note}
    for key in ("contact_id", "company_id", "opportunity_id"):
        if body.get(key):
            note_body[key] = body[key]
    if activity_id:
        note_body["activity_id"] = activity_id
    try:
        note = await read_record(client, "create_note", body=note_body)
    except CrmError as exc:
        structured["missing"] = ["note"]
        link = f" (activity_id={activity_id})" if activity_id else ""
        if _uncertain(exc):
            what = (f"The note may or may not have been added: {exc.agent_message()} Do not log the {args.type} "
                    f"again; look through list_notes (it lists every note) for a note on this activity, and add "
                    f"it with create_note{link} only if missing.")
        else:
            what = (f"The note was NOT added: {exc.agent_message()} Do not log the {args.type} again; "
                    f"add the note with create_note{link}.")
        return ToolResult(f"Half done: {logged}{linked} {what}", structured, is_error=True)
    note_id = str(note.get("id") or "")
    if note_id:
        structured["note_id"] = note_id
    return ToolResult(f"{logged} and note {q(note_id) if note_id else '(the API returned no id)'}{linked}", structured)


async def _preview(client: Any, body: dict[str, Any], title: str, note: str | None) -> ToolResult:
    """The activity (and note) a dry_run would create; the links are resolved, nothing is written."""
    from crm_mcp.journal import preview_write
    from crm_mcp.operations import operation

    activity = await preview_write(client, operation("create_activity"), body=body)
    text, structured = activity.text, {"dry_run": True, "activity": activity.to_dict()["request"]}
    if note:
        links = ("contact_id", "company_id", "opportunity_id")
        note_body: dict[str, Any] = {"title": title, "content": note, **{k: body[k] for k in links if k in body}}
        preview = await preview_write(client, operation("create_note"), body=note_body)
        text += "\nThen, with the new activity's id as activity_id:\n" + preview.text
        structured["note"] = preview.to_dict()["request"]
    return ToolResult(text, structured)


def _linked(body: dict[str, Any], links: Links) -> str:
    """"contact con_1 (Jane Doe), company com_1, opportunity opp_1 (the contact's only open one)"."""
    parts = []
    if body.get("contact_id"):
        name = label(links.contact)
        parts.append(f"contact {q(body['contact_id'])}" + (f" ({q(name)})" if name else ""))
    if body.get("company_id"):
        parts.append(f"company {q(body['company_id'])}")
    if body.get("opportunity_id"):
        found = " (the contact's only open one)" if links.opportunity_found else ""
        parts.append(f"opportunity {q(body['opportunity_id'])}{found}")
    return ", ".join(parts)
