"""The handler of every operation tool: call the operation with the validated arguments and render
its answer (a list page, a record card). Writes go through `crm_mcp.run_write`. A list call with `max_records` follows
the cursors (`crm_mcp.large_reads`)."""

from __future__ import annotations

from typing import Any

from crm_mcp.operations import Operation
from crm_mcp.pages import page_of, record_of
from crm_mcp.runtime import Run, ToolResult
from crm_mcp.tool_args import WRITE_ACTIONS, split_arguments

DEFAULT_PAGE_SIZE = 20  # the contract's `limit` default: what a list without `limit` asks for


def _render_fields(op: Operation, args: Any) -> list[str] | str | None:
    """The `fields` argument as render takes it: ["*"] (every field) becomes "*"; a get tool that
    cannot pick fields shows them all, as the agent has no way to ask for the rest."""
    if op.action == "get" and "fields" not in op.query_params:
        return "*"
    fields: list[str] | None = getattr(args, "fields", None)
    return "*" if fields and "*" in fields else fields


def _overrides(args: Any) -> dict[str, Any]:
    return {"consumer_id": getattr(args, "consumer_id", None), "service_id": getattr(args, "service_id", None)}


async def run_operation(run: Run, op: Operation, args: Any) -> ToolResult:
    from crm_mcp import render

    path, query, body = split_arguments(op, args)
    if op.action in WRITE_ACTIONS:  # previews, the journal, duplicates: crm_mcp.run_write
        from crm_mcp.run_write import run_write

        return await run_write(run, op, args, path, body)
    overrides = _overrides(args)
    client = await run.client()
    fields = _render_fields(op, args)
    if getattr(args, "after", None) or getattr(args, "before", None):
        from crm_mcp import large_reads

        return await large_reads.window_result(client, op, args, query, overrides=overrides, fields=fields)
    if getattr(args, "max_records", None) is not None:
        from crm_mcp import large_reads

        read = await large_reads.read_records(
            client, op, query, max_records=args.max_records, path=path, overrides=overrides, fields=fields,
            progress=run.progress,
        )
        text, structured = large_reads.render_read(op, read, fields=fields)
        return ToolResult(text, structured, False, read.last_status, read.last_request_id)
    response = await client.call(op, path_params=path, query=query, body=body, **overrides)
    if op.action == "list":
        page = page_of(response)
        asked = getattr(args, "limit", None) or DEFAULT_PAGE_SIZE
        rendered = render.render_list(op.resource, page.records[:asked], next_cursor=page.next_cursor, fields=fields,
                                      pick_fields="fields" in op.query_params)
        if len(page.records) > asked:  # the upstream ignored `limit`: show what was asked, say what was cut
            sent = len(page.records)
            narrow = " narrow the list with filter" if "filter" in op.query_params else " get them by id"
            note = (f"\nThe API sent {sent} rows for limit {asked}: {sent - asked} were cut. A next cursor "
                    f"continues after all {sent}; to see the cut ones,{narrow}.")
            return ToolResult(rendered.text + note, rendered.structured, False, response.status, response.request_id)
    else:
        rendered = render.render_record(op.resource, record_of(response), fields=fields)
    return ToolResult(rendered.text, rendered.structured, False, response.status, response.request_id)

