"""The write journal's own tools (issue 13), declared in the registry beside the workflow tools:

- `undo_change(change_id | last, force?)`: takes back a change of this consumer (an update is
  patched back, a create deleted, a delete re-created with a new id); refuses, showing the
  difference, when someone changed the record since, unless `force`.
- `list_changes(limit?)`: this consumer's journal, newest first.
- `crm_changes(since, resources?, limit?, cursor?)`: what was created or changed in the CRM since
  a time (anyone's changes, through the list endpoints' `updated_since` filters), by resource.

Scopes: `undo_change` needs `crm:write`, even when it deletes (the undo of a create). It only takes
back a change this same tenant and consumer made through this server, with the right it was made
with (crm:write); putting the CRM back as it was is not the free-standing delete that `crm:delete`
guards. `--confirm-destructive` still asks the user before an undo that deletes (crm_mcp.confirm).
The other two read (`crm:read`), so read-only mode keeps them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crm_mcp.journal.changes import DEFAULT_LIMIT, DIGEST_RESOURCES, MAX_LIMIT
from crm_mcp.runtime import Run, ToolResult, error_result
from crm_mcp.tool_args import SwitchingOff
from crm_mcp.tools import Scope, Tool

TOOLSET = "changes"  # not a workflow: --no-workflows keeps them
MAX_UNDO = 20  # changes one undo_change call may take back (`last`)
ChangeId = Annotated[str, Field(pattern=r"^chg_[A-Za-z0-9_-]{1,64}$")]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    # per-call consumer switching, off by default (crm_mcp.tool_args): unlisted and refused
    consumer_id: SwitchingOff = None
    service_id: SwitchingOff = None


class UndoArgs(_Args):
    change_id: ChangeId | None = Field(None, description="From a write's answer or list_changes")
    last: int | None = Field(None, ge=1, le=MAX_UNDO, description="Instead: undo this consumer's last N changes")
    force: bool = Field(False, description="Undo even if the record was changed since")

    @model_validator(mode="after")
    def _one(self) -> UndoArgs:
        if (self.change_id is None) == (self.last is None):
            raise ValueError("give change_id or last (how many of your latest changes to undo), not both")
        return self


class ListChangesArgs(_Args):
    limit: int = Field(20, ge=1, le=100)


class CrmChangesArgs(_Args):
    since: str | None = Field(None, min_length=1, max_length=64, description="ISO 8601 time; not with cursor")
    resources: list[Literal[DIGEST_RESOURCES]] | None = Field(None, min_length=1)  # type: ignore[valid-type]
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Records per resource")
    cursor: str | None = Field(None, max_length=4096)


def _result(text: str, structured: dict[str, Any]) -> ToolResult:
    return ToolResult(text, structured)


async def undo(run: Run, args: UndoArgs) -> ToolResult:
    from crm_mcp.journal import UndoError

    journal = await run.runtime.journal()
    client = await run.client()
    scope = run.journal_scope()
    try:
        if args.change_id is not None:
            results = [await journal.undo(client, scope, args.change_id, force=args.force)]
        else:
            results = await journal.undo_last(client, scope, args.last or 1, force=args.force)
    except UndoError as exc:  # not found, already undone, a conflict: worded for the agent
        return error_result(str(exc), "undo-refused")
    if not results:
        return _result("Nothing to undo: this consumer has no change left in the journal.", {"undone": []})
    return _result("\n".join(r.text for r in results), {"undone": [r.to_dict() for r in results]})


async def list_changes(run: Run, args: ListChangesArgs) -> ToolResult:
    from crm_mcp.journal import describe_changes

    journal = await run.runtime.journal()
    changes = await journal.list_changes(run.journal_scope(), limit=args.limit)
    rows = [{"change_id": c.id, "action": c.action, "resource": c.resource, "record_id": c.record_id,
             "undone": c.undone} for c in changes]  # fmt: skip
    return _result(describe_changes(changes), {"changes": rows})


async def changes_digest(run: Run, args: CrmChangesArgs) -> ToolResult:
    from crm_mcp.journal import ChangesArgumentError, crm_changes

    if args.since is not None and args.cursor is not None:
        return error_result("Give since or cursor, not both: a cursor continues the digest it came from.",
                            "invalid-arguments")
    try:
        digest = await crm_changes(await run.client(), args.since, args.resources, limit=args.limit,
                                   cursor=args.cursor)
    except ChangesArgumentError as exc:
        return error_result(f"crm_changes: {exc}.", "invalid-arguments")
    return _result(digest.text, digest.to_dict())


def _tool(name: str, title: str, description: str, args: type[BaseModel], scope: Scope,
          resources: frozenset[str], run: Callable[[Run, Any], Awaitable[ToolResult]],
          output: dict[str, Any]) -> Tool:
    async def handler(call: Run, validated: Any) -> ToolResult:
        return await run(call, validated)

    # undo_change overwrites or deletes: the protocol's defaults (destructive, not idempotent) hold
    annotations = {"readOnlyHint": True} if scope == "crm:read" else {}
    return Tool(name=name, title=title, description=description, args=lambda: args, output_schema=output,
                annotations=annotations, resources=resources, scope=scope, toolset=TOOLSET, handler=handler)


_ARRAY = {"type": "array", "items": {"type": "object"}}

CHANGE_TOOLS = (
    _tool("undo_change", "Undo a change",
          "Take back a write of yours: an update is patched back, a create deleted, a delete re-created "
          "(new id; links not restored). Refuses if the record changed since, unless force.",
          UndoArgs, "crm:write", frozenset(), undo, {"type": "object", "properties": {"undone": _ARRAY}}),
    _tool("list_changes", "List your changes",
          "Your writes through this server, newest first, with change ids for undo_change.",
          ListChangesArgs, "crm:read", frozenset(), list_changes,
          {"type": "object", "properties": {"changes": _ARRAY}}),
    _tool("crm_changes", "What changed in the CRM",
          "Records created or changed since a time, by anyone, grouped by resource with counts and names; "
          "cursor continues.",
          CrmChangesArgs, "crm:read", frozenset(DIGEST_RESOURCES), changes_digest, {"type": "object"}),
)
