"""Large reads: a list tool asked for `max_records=N` gathers up to N records across pages.

The runtime follows the API's cursors itself, so that an agent wanting 450 contacts makes one
tool call instead of three (and reads one table instead of three). The read:

- pages with `limit` 200 (the API's maximum), or the agent's `limit` when it gave one, and never
  asks for more than is still wanted (N=450: 200 + 200 + 50);
- stops at N, at the last page, or before the result would exceed `TOKEN_BUDGET` (estimated the
  way `render` estimates, from the rows read so far): the page size shrinks to what still fits, and
  the rendered table gets `render_list(..., max_tokens=TOKEN_BUDGET)` as a last guard (rows past it
  are still named by id);
- always ends with the cursor to go on from (the `next` of the last page read, or the cursor of a
  page that failed) and one line saying why it stopped;
- reports progress after each page (records read of N) when the client asked for progress;
- a failure on the first page is the tool's error; on a later page, the records already read are
  returned with the failure as the reason it stopped.

A time window on activities (`after` / `before` on list_activities, `read_window`) is a read of the
same kind: the server walks the pages newest-created first and keeps what falls in the window.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from crm_mcp.errors import CrmError
from crm_mcp.operations import Operation
from crm_mcp.pages import PageWalk
from crm_mcp.tool_args import MAX_RECORDS

if TYPE_CHECKING:
    from crm_mcp.runtime import Progress, ToolResult

PAGE_SIZE = 200  # the API's largest page
TOKEN_BUDGET = 20_000  # estimated tokens a large read's result may take (MCP clients cap results at ~25k)
FIRST_ROW_GUESS = 50  # estimated tokens per row before a page has been rendered
STOP_LINE = 60  # tokens kept for the line that says why the read stopped
RESERVE = 120  # tokens pages are sized to leave free: the stop line and the estimate's drift

@dataclass
class LargeRead:
    """The records a large read gathered, where to go on from, and why it stopped."""

    records: list[Any]
    next_cursor: str | None
    pages: int
    stopped: str  # why it stopped, as a clause: "reached max_records=450"
    last_status: int | str = "-"
    last_request_id: str | None = None


def _estimate(resource: str, records: list[Any], fields: Any, cursor: str | None) -> int:
    from crm_mcp import render

    rendered = render.render_list(resource, records, next_cursor=cursor, fields=fields)
    return render.estimate_tokens(rendered.text) + render.estimate_tokens(json.dumps(rendered.structured))


async def read_records(
    client: Any,
    op: Operation,
    query: Mapping[str, Any],
    *,
    max_records: int,
    path: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    fields: Any = None,
    progress: Progress | None = None,
    budget: int | None = None,
) -> LargeRead:
    """Up to `max_records` records of the list operation `op`, following cursors from
    `query["cursor"]` (if any), with the `path` ids the operation takes (a custom object's
    `object_id`). Raises the `CrmError` of a failed first page."""
    budget = TOKEN_BUDGET if budget is None else budget
    wanted = min(max_records, MAX_RECORDS)
    page_size = min(int(query.get("limit") or PAGE_SIZE), PAGE_SIZE)
    walk = PageWalk(client, op, query, path, **dict(overrides or {}))
    records: list[Any] = []
    per_row = float(FIRST_ROW_GUESS)
    spent = 0
    status: int | str = "-"
    request_id = None
    plural = op.resource.replace("_", " ")
    while True:
        remaining = wanted - len(records)
        fit = int((budget - RESERVE - spent) // per_row) if per_row > 0 else remaining
        size = min(page_size, remaining, fit)
        if size < 1:
            stopped = f"the next page would not fit in the ~{budget:,} tokens a result may take"
            break
        try:
            page = await walk.next(size)
        except CrmError as exc:
            if walk.pages == 0:
                raise
            stopped = f"page {walk.pages + 1} failed: {exc.agent_message()} (call again with the cursor to retry)"
            break
        status, request_id = page.status, page.request_id
        records.extend(page.records)
        if progress is not None:
            await progress(float(len(records)), float(wanted), f"{len(records)} of {wanted} {plural} read")
        if records:
            spent = _estimate(op.resource, records, fields, page.next_cursor)
            per_row = spent / len(records)
        if walk.stopped is not None:
            stopped = walk.stopped
            break
        if len(records) >= wanted:
            stopped = f"reached max_records={wanted}"
            break
    if max_records > MAX_RECORDS:
        stopped += f" (max_records is capped at {MAX_RECORDS})"
    return LargeRead(records, walk.cursor, walk.pages, stopped, status, request_id)


def render_read(op: Operation, read: LargeRead, *, fields: Any = None, budget: int | None = None) -> tuple[str, dict]:
    """The text and structured content of a large read: the table (cut to the budget if need be,
    every row still named), then how many pages were read, why it stopped and how to go on."""
    from crm_mcp import render

    budget = TOKEN_BUDGET if budget is None else budget
    rendered = render.render_list(op.resource, read.records, next_cursor=read.next_cursor, fields=fields)
    cost = render.estimate_tokens(rendered.text) + render.estimate_tokens(json.dumps(rendered.structured))
    if cost > budget - STOP_LINE:  # pages are sized to fit, so only when rows were much longer than estimated
        rendered = render.render_list(op.resource, read.records, next_cursor=read.next_cursor, fields=fields,
                                      max_tokens=budget - STOP_LINE)
    pages = f"{read.pages} page{'s' if read.pages != 1 else ''}"
    line = f"Read {len(read.records)} in {pages}; stopped: {read.stopped}."
    if read.next_cursor:  # the render's footer gives the cursor itself
        line += " To go on: call again with that cursor and max_records."
    return f"{rendered.text}\n{line}", rendered.structured


# A time window on activities (`after` / `before`): the contract can neither filter nor sort by an
# activity's own date, so the server walks the list newest-created first (narrowed by the agent's
# filter) and keeps what falls in the window. An activity is mostly created on or after its date,
# but one scheduled ahead is created before it: the walk cannot stop at `after`, only at a bound.
WINDOW_SCAN = 2000  # activities a window read looks at, at most
WINDOW_DATE = "activity_datetime"


@dataclass
class WindowRead:
    """The activities of a window, and how far the walk looked when the bound stopped it."""

    records: list[Any]
    scanned: int
    oldest_created: str | None  # the created_at the walk reached when it stopped at the bound, else None
    last_status: int | str = "-"
    last_request_id: str | None = None


def _in_window(record: Any, after: datetime | None, before: datetime | None) -> bool:
    from crm_mcp.tool_args import parse_moment

    value = record.get(WINDOW_DATE) if isinstance(record, Mapping) else None
    try:
        moment = parse_moment(value) if isinstance(value, str) and value else None
    except ValueError:
        return False
    return moment is not None and (after is None or moment >= after) and (before is None or moment < before)


async def read_window(
    client: Any, op: Operation, query: Mapping[str, Any], *, after: datetime | None, before: datetime | None,
    overrides: Mapping[str, Any] | None = None, scan: int | None = None,
) -> WindowRead:
    """The activities of the list `op` (with the agent's `query` filter) whose date falls in
    [after, before), looking at up to `scan` records, newest-created first."""
    scan = WINDOW_SCAN if scan is None else scan
    walk_query = {**query, "sort": {"by": "created_at", "direction": "desc"}}
    walk = PageWalk(client, op, walk_query, **dict(overrides or {}))
    kept: list[Any] = []
    scanned = 0
    oldest: str | None = None
    status: int | str = "-"
    request_id = None
    while walk.stopped is None and scanned < scan:
        page = await walk.next(min(PAGE_SIZE, scan - scanned))
        status, request_id = page.status, page.request_id
        scanned += len(page.records)
        kept += [r for r in page.records if _in_window(r, after, before)]
        if page.records:
            oldest = str(page.records[-1].get("created_at") or "") or oldest
    return WindowRead(kept, scanned, oldest if walk.stopped is None else None, status, request_id)


def render_window(op: Operation, read: WindowRead, *, fields: Any = None, budget: int | None = None,
                  narrowed: bool) -> tuple[str, dict]:
    """The window's activities (cut to the budget if need be, every row still named), then what
    was looked at, and when the bound stopped the walk, how far back it reached."""
    from crm_mcp import render

    budget = TOKEN_BUDGET if budget is None else budget
    rendered = render.render_list(op.resource, read.records, fields=fields, max_tokens=budget - STOP_LINE)
    line = f"{len(read.records)} in the window, of {read.scanned:,} activities looked at (newest-created first)"
    if read.oldest_created is None:
        line += ": all that match the filter."
    else:
        narrow = "" if narrowed else " Narrow with filter company_id, contact_id or owner_id to look further."
        line += (f"; stopped at {read.scanned:,}, at created_at {read.oldest_created}: activities created "
                 f"before it were not looked at, so the window may be incomplete.{narrow}")
    return f"{rendered.text}\n{line}", rendered.structured


async def window_result(client: Any, op: Operation, args: Any, query: Mapping[str, Any], *,
                        overrides: Mapping[str, Any] | None = None, fields: Any = None) -> ToolResult:
    """A list call with `after` / `before`: the window read, rendered; a sort or cursor of the
    agent's own is refused, as the walk sets its own order."""
    from crm_mcp.runtime import ToolResult, error_result
    from crm_mcp.tool_args import parse_moment

    clash = [name for name in ("sort", "cursor") if query.get(name)]
    if clash:
        return error_result(f"Invalid arguments for {op.tool_name}: {' and '.join(clash)} cannot be combined with "
                            "after/before (the window is read newest-created first). Leave them out.",
                            "invalid-arguments")
    after = parse_moment(args.after) if args.after else None
    before = parse_moment(args.before) if args.before else None
    narrowed = any((query.get("filter") or {}).get(k) for k in ("company_id", "contact_id", "owner_id"))
    read = await read_window(client, op, {k: v for k, v in query.items() if k != "limit"},
                             after=after, before=before, overrides=overrides)
    text, structured = render_window(op, read, fields=fields, narrowed=narrowed)
    return ToolResult(text, structured, False, read.last_status, read.last_request_id)
