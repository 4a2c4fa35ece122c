"""Delete confirmation (`crm-mcp --confirm-destructive`): a delete asks the user first.

`confirm_delete` is the pipeline's confirm step (`crm_mcp.runtime.call_tool`): every call of a tool
whose scope is `crm:delete` (directly, or through discover mode's `call_tool`, which runs the same
pipeline) asks the user once, through form elicitation, before it runs; so does an `undo_change`
that deletes (the undo of a create). A `dry_run` preview deletes nothing and is not asked about.

The question is "Delete contact con_0001 (Jane Doe)? Undo re-creates it with a new id; ..." with one boolean
field. The record is looked up only to name it: when that lookup fails (not found, or any other
error) the question names the id alone, and is still asked. Only an accept with `confirm: true`
runs the delete; a decline, a cancel, an unchecked box or a failed elicitation leaves the record
untouched, and a client that cannot elicit gets the delete refused with the reason, never a
silent delete.

How the question travels depends on the protocol revision of the request:

- 2025-11-25 (handshake era): a server-to-client `elicitation/create` request sent mid-call on
  the request's back-channel (`ctx.session.elicit_form`); the call continues with the answer.
- 2026-07-28 and later: no server-initiated requests. The first round answers the tools/call
  with an `InputRequiredResult` carrying the `elicitation/create` request and a `request_state`;
  the client asks the user and retries the same call with `input_responses` and the state. The
  state is sealed (AES-GCM, bound to the tool name and the exact arguments, with a TTL) by the
  SDK's `RequestStateBoundary`, which `install` adds to the server's middleware, so an answer
  counts only for the question this server asked about this very delete.

A declined or refused delete is an `isError` result: the call did not do what was asked, and a
client or framework that only looks at `isError` must never take it for a successful delete. The
text says that nothing was deleted and that the agent should not retry unless the user asks.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

import mcp_types as types
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
from mcp_types.version import is_version_at_least

from crm_mcp.errors import CrmError
from crm_mcp.operations import Operation, resource, sibling
from crm_mcp.pages import read_record
from crm_mcp.render.values import quote
from crm_mcp.runtime import Run, ToolResult
from crm_mcp.tool_args import split_arguments
from crm_mcp.tools import Tool

log = logging.getLogger("crm_mcp.confirm")

INPUT_REQUIRED_VERSION = "2026-07-28"  # first revision that elicits through InputRequiredResult
INPUT_KEY = "confirm_delete"  # the key of our question in input_requests / input_responses
STATE_PREFIX = "crm-mcp/confirm-delete/v1:"

# The form: one boolean, nothing secret. Rendered as the spec's restricted JSON Schema.
REQUESTED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "confirm": {
            "type": "boolean",
            "title": "Delete permanently",
            "description": "Check to delete the record.",
            "default": False,
        }
    },
    "required": ["confirm"],
}



# What a delete leaves: the journal can re-create the record (undo_change), not its id or its links.
AFTER_DELETE = "Undo re-creates it with a new id; records linked to it are not relinked."
UNDO_TOOL = "undo_change"


def install(server: Any, key: str | None = None) -> None:
    """Seal the multi-round-trip `request_state` of this server (2026-07-28): the lowlevel
    `Server` has no boundary of its own. The key is this process's own, unless `key` (the
    CRM_MCP_REQUEST_STATE_KEY setting) gives one that replicas share: behind a load balancer, the
    retry that carries the user's answer may reach another replica."""
    if any(isinstance(m, RequestStateBoundary) for m in server.middleware):
        return
    security = RequestStateSecurity(keys=[key]) if key else RequestStateSecurity.ephemeral()
    server.middleware.append(RequestStateBoundary(security, default_audience=server.name))


def _error(text: str) -> ToolResult:
    return ToolResult(text, None, True, "delete-not-confirmed")


def _state(tool: str, delete_args: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(delete_args, sort_keys=True, default=str).encode()).hexdigest()[:32]
    return f"{STATE_PREFIX}{tool}:{digest}"


def _can_elicit_form(capabilities: types.ClientCapabilities | None) -> bool:
    """Form elicitation declared: `elicitation: {}` (before modes) or with `form`; url-only is not."""
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def _label(record: Mapping[str, Any]) -> str | None:
    from crm_mcp.render.columns import label

    return label(record)[:80] or None


class _Target:
    """One delete about to be asked about: what it is called in the question."""

    def __init__(self, op: Operation, record_id: str, label: str | None = None, intro: str = ""):
        self.op = op  # the delete operation of the record's resource
        self.record_id = record_id
        self.label = label
        self.intro = intro  # an undo that deletes: which change it undoes

    @property
    def what(self) -> str:
        singular = resource(self.op.resource).singular
        name = f" ({quote(self.label)})" if self.label else ""
        return f"{singular.replace('_', ' ')} {self.record_id}{name}"

    def question(self) -> str:
        return f"{self.intro}Delete {self.what}? {AFTER_DELETE}"


async def _describe(run: Run, op: Operation, args: Any) -> _Target:
    """The target, named from the API when it can be; any failure to look it up leaves the id alone."""
    path, _query, _body = split_arguments(op, args)
    target = _Target(op, str(path.get("id", "?")))
    overrides = {"consumer_id": getattr(args, "consumer_id", None), "service_id": getattr(args, "service_id", None)}
    try:
        client = await run.client()
        record = await read_record(client, sibling(op, "get"), path=path, **overrides)
        target.label = _label(record)
    except CrmError:
        pass  # not found, or the API failed: ask with the id alone
    except Exception:  # never let naming the record break the confirmation
        log.exception("could not look up the record to delete")
    return target


async def _undo_target(run: Run, args: Any) -> _Target | None:
    """The record an undo_change call would delete (the first, when it undoes several creates), or
    None when it deletes nothing (or names no change of this consumer: the undo itself says so)."""
    from crm_mcp.journal.records import label, operation_for

    try:
        journal = await run.runtime.journal()
        scope = run.journal_scope()
        if args.change_id:
            found = await journal.store.get(scope, args.change_id)
            changes = [found] if found is not None else []
        else:
            changes = await journal.store.recent(scope, limit=args.last, undone=False)
    except Exception:  # the undo reports a journal that cannot be read; there is nothing to ask yet
        log.exception("could not read the journal to confirm an undo")
        return None
    creates = [c for c in changes if c.action == "create" and not c.undone]
    if not creates:
        return None
    first = creates[0]
    more = f" (and {len(creates) - 1} more created records)" if len(creates) > 1 else ""
    return _Target(operation_for(first.resource, "delete"), first.record_id, label(first.written)[:80] or None,
                   intro=f"Undoing {first.id} deletes the record it created{more}. ")


def _refused(target: _Target, why: str) -> ToolResult:
    return _error(
        f"Not deleted: {why} This server was started with --confirm-destructive, so every delete "
        f"needs the user's confirmation. {target.what[0].upper()}{target.what[1:]} is unchanged. "
        "Ask the user to delete it themselves, or to use a client that supports elicitation."
    )


def _declined(target: _Target, action: str) -> ToolResult:
    how = "declined" if action in ("decline", "accept") else "cancelled"
    return _error(
        f"Not deleted: the user {how} deleting {target.what}. The record is unchanged. "
        "Do not retry unless the user asks again."
    )


def _decide(target: _Target, answer: types.ElicitResult) -> ToolResult | None:
    """None when the user confirmed; else the result that says nothing was deleted."""
    content = answer.content or {}
    if answer.action == "accept" and content.get("confirm") is True:
        return None
    log.info("tool=%s status=delete-not-confirmed action=%s", target.op.tool_name, answer.action)
    return _declined(target, answer.action)


async def confirm_delete(tool: Tool, args: Any, run: Run) -> Any:
    """The pipeline's confirm step: None when the call may run (not a delete, or confirmed); else
    what answers instead: a refusal, a decline, or (2026-07-28) the question itself."""
    op = tool.operation
    if tool.name == UNDO_TOOL:  # an undo of a create deletes the record the create made
        target = await _undo_target(run, args)
        if target is None:
            return None
    elif tool.scope != "crm:delete" or op is None or getattr(args, "dry_run", False):  # a preview deletes nothing
        return None
    else:
        target = await _describe(run, op, args)
    op = target.op
    ctx, params = run.ctx, run.params
    if ctx is None:  # `crm-mcp call`: no client to ask
        return _refused(target, "there is no MCP client here to ask the user.")
    state = _state(tool.name, args.model_dump(mode="json", exclude_unset=True))
    modern = bool(ctx.protocol_version) and is_version_at_least(ctx.protocol_version, INPUT_REQUIRED_VERSION)
    answer = (params.input_responses or {}).get(INPUT_KEY) if modern and params is not None else None
    if modern and answer is not None and params.request_state == state:
        # Round 2: the answer to the question we asked (the sealed state says so).
        if not isinstance(answer, types.ElicitResult):
            return _refused(target, "the client's answer to the confirmation was not an elicitation result.")
        return _decide(target, answer)
    if not modern and not ctx.session.can_send_request:
        log.info("tool=%s status=delete-refused reason=no-back-channel", op.tool_name)
        return _refused(target, "this connection cannot carry the confirmation request to the client "
                        "(stateless HTTP on protocol 2025-11-25; a client on 2026-07-28 can confirm).")
    if not _can_elicit_form(ctx.session.client_capabilities):
        log.info("tool=%s status=delete-refused reason=no-elicitation", op.tool_name)
        return _refused(target, "the client does not support elicitation, so the user could not be asked.")
    if modern:
        request = types.ElicitRequest(
            params=types.ElicitRequestFormParams(message=target.question(), requested_schema=REQUESTED_SCHEMA)
        )
        return types.InputRequiredResult(input_requests={INPUT_KEY: request}, request_state=state)
    try:
        answer = await ctx.session.elicit_form(
            message=target.question(), requested_schema=REQUESTED_SCHEMA, related_request_id=ctx.request_id
        )
    except Exception as exc:  # the client failed to answer: do not delete
        log.info("tool=%s status=delete-refused reason=elicitation-failed (%s)", op.tool_name, type(exc).__name__)
        return _refused(target, "asking the user for confirmation failed.")
    return _decide(target, answer)
