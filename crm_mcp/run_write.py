"""The write path of the operation tools (issue 13): a create, update or delete previewed with
`dry_run`, checked for duplicates and retries (creates), journaled with the record's state before
it, and answered with its change id. The journal's protocol is `crm_mcp.journal`'s docstring."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from crm_mcp import names as name_cache
from crm_mcp.operations import Operation, missing_required, sibling
from crm_mcp.pages import read_record, record_of
from crm_mcp.run_operation import names_for, overrides_of, tenant_of
from crm_mcp.runtime import Run, ToolResult

log = logging.getLogger("crm_mcp.journal")

NOT_JOURNALED = ("This change could not be journaled (the journal failed), so undo_change cannot take it back; "
                 "nothing else went wrong.")


def _completed(op: Operation, body: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """An update body with the fields the contract requires (e.g. an opportunity's title) that the
    agent left out, at their current values, so that an update changes only what the agent gave."""
    return {**{k: record[k] for k in missing_required(op, body) if k in record}, **body}


async def _complete_update(client: Any, op: Operation, path: dict[str, str], body: dict[str, Any],
                           known: dict[str, Any] | None) -> dict[str, Any]:
    if not missing_required(op, body):
        return body
    record = known if known is not None else await read_record(client, sibling(op, "get"), path=path)
    return _completed(op, body, record)


async def run_write(
    run: Run, op: Operation, args: Any, path: dict[str, str], body: dict[str, Any] | None
) -> ToolResult:
    from crm_mcp import render
    from crm_mcp.journal import PendingWrite, PossibleDuplicates, change_note, preview_write

    client = await run.client()
    if getattr(args, "dry_run", False):
        if op.action == "update" and body is not None:
            body = await _complete_update(client, op, path, body, None)
        preview = await preview_write(client, op, path_params=path, body=body)
        return ToolResult(preview.text, preview.to_dict(), False, "dry-run")

    journal = await run.runtime.journal()
    outcome = await journal.before_write(client, op, scope=run.journal_scope(), path_params=path, body=body,
                                         allow_duplicate=getattr(args, "allow_duplicate", False))
    if isinstance(outcome, PossibleDuplicates):
        check = outcome.check
        matches = [{"id": m.record_id, "label": m.label, "criterion": m.criterion} for m in check.matches]
        return ToolResult(check.text, {"duplicates": matches, "checked": list(check.checked)}, False, "duplicate")
    if not isinstance(outcome, PendingWrite):  # a Replay: the same create moments ago
        return await _replay(client, op, outcome)

    sent = body
    if op.action == "update" and body is not None:
        sent = await _complete_update(client, op, path, body, outcome.before)
    try:
        response = await client.call(op, path_params=path, body=sent)
    except BaseException as exc:
        await journal.write_failed(outcome, exc)
        raise
    record_id = record_of(response).get("id")
    overrides = overrides_of(args)
    if op.resource in ("users", "pipelines"):  # the names just written: read them again
        name_cache.CACHE.forget(tenant_of(run, overrides))
    before = outcome.before if op.action == "update" else None  # the journal read it before the write
    names = await names_for(run, client, op.resource, [body or {}, before or {}], overrides)
    rendered = render.render_write(op.action, op.resource, record_of(response) or None,
                                   record_id=record_id or path.get("id"), sent=body, before=before, names=names)
    try:
        change = await journal.after_write(outcome, response)
    except Exception:  # the write is done: say so, and that it cannot be undone
        log.exception("journal: %s succeeded but could not be journaled", op.tool_name)
        return ToolResult(f"{rendered.text}\n{NOT_JOURNALED}", rendered.structured, False,
                          response.status, response.request_id)
    return ToolResult(f"{rendered.text}\n{change_note(change)}", {**rendered.structured, "change_id": change.id},
                      False, response.status, response.request_id)


async def _replay(client: Any, op: Operation, replay: Any) -> ToolResult:
    """The retry window's answer: the record the first identical call created, or what to check."""
    from crm_mcp import render
    from crm_mcp.errors import CrmError

    hit = replay.hit
    if hit.record_id is None:  # still running, or its answer was lost: nothing to show yet
        return ToolResult(replay.text, {}, False, "replay")
    structured = {"id": hit.record_id, "change_id": hit.change_id, "replayed": True}
    try:
        record = await read_record(client, sibling(op, "get"), path={"id": hit.record_id})
    except CrmError:  # e.g. deleted since: the sentence alone still names it
        return ToolResult(replay.text, structured, False, "replay")
    card = render.render_record(op.resource, record)
    return ToolResult(f"{replay.text}\n{card.text}", structured, False, "replay")


class JournalingClient:
    """The API client of a workflow that writes (log_interaction): each create, update or delete
    it sends is journaled like an operation tool's write, and its change kept in `changes` for the
    answer. No duplicate check: the workflow has found its records itself."""

    def __init__(self, client: Any, journal: Any, scope: Any):
        self._client = client
        self._journal = journal
        self._scope = scope
        self.changes: list[Any] = []

    async def call(self, op: Operation, **kwargs: Any) -> Any:
        if op.action not in ("create", "update", "delete"):
            return await self._client.call(op, **kwargs)
        pending = await self._journal.before_write(self._client, op, scope=self._scope,
                                                   path_params=kwargs.get("path_params"), body=kwargs.get("body"),
                                                   allow_duplicate=True)
        try:
            response = await self._client.call(op, **kwargs)
        except BaseException as exc:
            await self._journal.write_failed(pending, exc)
            raise
        try:
            self.changes.append(await self._journal.after_write(pending, response))
        except Exception:
            log.exception("journal: %s succeeded but could not be journaled", op.tool_name)
        return response


async def journaling_client(run: Run) -> JournalingClient:
    return JournalingClient(await run.client(), await run.runtime.journal(), run.journal_scope())


def with_changes(result: ToolResult, changes: list[Any]) -> ToolResult:
    """A workflow's answer with the change ids of the writes it made, and how to take them back."""
    if not changes:
        return result
    ids = [c.id for c in changes]
    if len(ids) == 1:
        note = f"Change {ids[0]} (undo_change with change_id {ids[0]!r} takes it back)."
    else:
        note = f"Changes {', '.join(ids)} (undo_change with each change_id takes them back)."
    return dataclasses.replace(result, text=f"{result.text}\n{note}",
                               structured={**(result.structured or {}), "change_ids": ids})
