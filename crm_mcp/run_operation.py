"""The handler of every operation tool: call the operation with the validated arguments and render
its answer (a list page, a record card). Writes go through `crm_mcp.run_write`. A list call with `max_records` follows
the cursors (`crm_mcp.large_reads`)."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import anyio.lowlevel

from crm_mcp import names as name_cache
from crm_mcp.errors import InvalidArgumentError
from crm_mcp.operations import Operation
from crm_mcp.pages import page_of, record_of
from crm_mcp.runtime import Run, ToolResult
from crm_mcp.tool_args import WRITE_ACTIONS, split_arguments

log = logging.getLogger("crm_mcp.run_operation")

DEFAULT_PAGE_SIZE = 20  # the contract's `limit` default: what a list without `limit` asks for


def _render_fields(op: Operation, args: Any) -> list[str] | str | None:
    """The `fields` argument as render takes it: ["*"] (every field) becomes "*"; a get tool that
    cannot pick fields shows them all, as the agent has no way to ask for the rest."""
    if op.action == "get" and "fields" not in op.query_params:
        return "*"
    fields: list[str] | None = getattr(args, "fields", None)
    return "*" if fields and "*" in fields else fields


def overrides_of(args: Any) -> dict[str, Any]:
    return {"consumer_id": getattr(args, "consumer_id", None), "service_id": getattr(args, "service_id", None)}


def _check_fields(op: Operation, args: Any) -> None:
    """Refuse a `fields` argument that names a field the records do not have, before any call."""
    from crm_mcp.render import unknown_fields

    if "fields" not in op.query_params:  # a custom object's `fields` is its body, not a choice of fields
        return
    fields = getattr(args, "fields", None)
    problem = unknown_fields(op.resource, fields) if fields else None
    if problem:
        raise InvalidArgumentError("fields", problem)


def tenant_of(run: Run, overrides: dict[str, Any]) -> str:
    """The name cache's key of the caller's tenant and consumer."""
    settings = run.runtime.settings
    creds = run.credentials or settings
    consumer = overrides.get("consumer_id") or run.overrides.get("consumer_id") or creds.consumer_id
    service = overrides.get("service_id") or run.overrides.get("service_id") or creds.service_id
    return name_cache.tenant_key(creds.api_key, creds.app_id, consumer, service, settings.base_url)


async def names_for(run: Run, client: Any, resource: str, records: list[dict[str, Any]],
                 overrides: dict[str, Any]) -> name_cache.Names:
    """The cached names of the users and pipelines `records` point to (one list call each per
    tenant and consumer every few minutes, none per row)."""
    need = name_cache.lists_needed(resource, records)
    if not need:
        return name_cache.NO_NAMES
    sent = {k: v for k, v in overrides.items() if v}
    return await name_cache.CACHE.names(tenant_of(run, overrides), client, need, sent)


async def call_with_names(run: Run, client: Any, op: Operation, fields: list[str] | str | None,
                          overrides: dict[str, Any], **call: Any) -> Any:
    """`client.call(op, **call)`; on the tenant's first read of records that point to users or
    pipelines, the lists that name them are read while it runs instead of after it (one upstream
    round trip less on the first call; `names_for` then finds them cached). A call the client
    refuses before sending (a bad argument) sends no names read either."""
    key = tenant_of(run, overrides)
    lists = name_cache.CACHE.missing(key, name_cache.lists_for(op.resource, None if fields in (None, "*") else fields))
    if not lists:
        return await client.call(op, **call)
    outcome: dict[str, Any] = {}

    async def read_records() -> None:
        try:
            outcome["response"] = await client.call(op, **call)
        except Exception as exc:  # raised below, unwrapped (a task group would group it)
            outcome["error"] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(read_records)
        await anyio.lowlevel.checkpoint()  # the call's own checks run (and may refuse it) before any names read
        if "error" not in outcome:
            try:
                await name_cache.CACHE.names(key, client, lists, {k: v for k, v in overrides.items() if v})
            except Exception:  # only a head start: names_for reads them again after the records
                log.debug("reading the names along with the records failed", exc_info=True)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["response"]


async def run_operation(run: Run, op: Operation, args: Any) -> ToolResult:
    from crm_mcp import render

    _check_fields(op, args)
    path, query, body = split_arguments(op, args)
    if op.action in WRITE_ACTIONS:  # previews, the journal, duplicates: crm_mcp.run_write
        from crm_mcp.run_write import run_write

        return await run_write(run, op, args, path, body)
    overrides = overrides_of(args)
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
    response = await call_with_names(run, client, op, fields, overrides, path_params=path, query=query, body=body,
                                     **overrides)
    if op.action == "list":
        page = page_of(response)
        asked = getattr(args, "limit", None) or DEFAULT_PAGE_SIZE
        rows = page.records[:asked]
        names = await names_for(run, client, op.resource, rows, overrides)
        rendered = render.render_list(op.resource, rows, next_cursor=page.next_cursor, fields=fields,
                                      pick_fields="fields" in op.query_params, names=names)
        if len(page.records) > asked:  # the upstream ignored `limit`: show what was asked, say what was cut
            sent = len(page.records)
            narrow = " narrow the list with filter" if "filter" in op.query_params else " get them by id"
            note = (f"\nThe API sent {sent} rows for limit {asked}: {sent - asked} were cut. A next cursor "
                    f"continues after all {sent}; to see the cut ones,{narrow}.")
            return ToolResult(rendered.text + note, rendered.structured, False, response.status, response.request_id)
    else:
        record = record_of(response)
        names = await names_for(run, client, op.resource, [record], overrides)
        rendered = render.render_record(op.resource, record, fields=fields, names=names)
    return ToolResult(rendered.text, rendered.structured, False, response.status, response.request_id)

