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
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crm_mcp.errors import CrmError
from crm_mcp.operations import Operation
from crm_mcp.pages import PageWalk
from crm_mcp.tool_args import MAX_RECORDS

if TYPE_CHECKING:
    from crm_mcp.runtime import Progress

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
    overrides: Mapping[str, Any] | None = None,
    fields: Any = None,
    progress: Progress | None = None,
    budget: int | None = None,
) -> LargeRead:
    """Up to `max_records` records of the list operation `op`, following cursors from
    `query["cursor"]` (if any). Raises the `CrmError` of a failed first page."""
    budget = TOKEN_BUDGET if budget is None else budget
    wanted = min(max_records, MAX_RECORDS)
    page_size = min(int(query.get("limit") or PAGE_SIZE), PAGE_SIZE)
    walk = PageWalk(client, op, query, **dict(overrides or {}))
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
