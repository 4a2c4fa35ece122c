"""Delete confirmation (`crm-mcp --confirm-destructive`): a delete asks the user first.

`guard(call_tool, offered=...)` wraps the server's tools/call handler. A call that would delete a
record (a `delete_*` tool, or another tool naming one in its arguments, such as discover mode's
`call_tool {name: "delete_contact", arguments: {...}}`) asks the user once, through form
elicitation; when the dispatcher re-enters the handler with the delete itself, that inner call
is not asked again (a context variable carries the confirmation down the call chain).

The question is "Delete contact con_0001 (Jane Doe)? This cannot be undone." with one boolean
field. Only an accept with `confirm: true` runs the delete; a decline, a cancel, an
unchecked box or a failed elicitation leaves the record untouched, and a client that cannot
elicit gets the delete refused with the reason, never a silent delete.

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
import os
from collections.abc import Awaitable, Callable, Collection, Mapping
from contextvars import ContextVar
from typing import Any

import mcp_types as types
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
from mcp_types.version import is_version_at_least
from pydantic import ValidationError

from crm_mcp.errors import CrmError, NotFoundError
from crm_mcp.operations import OPERATIONS, Operation, operation, resource
from crm_mcp.render.values import quote
from crm_mcp.tenants import TenantHeaderError, request_credentials
from crm_mcp.tool_args import args_model_for, split_arguments

log = logging.getLogger("crm_mcp.confirm")

STATE_KEY_ENV = "CRM_MCP_REQUEST_STATE_KEY"  # a key replicas share for sealing request_state (optional)
INPUT_REQUIRED_VERSION = "2026-07-28"  # first revision that elicits through InputRequiredResult
INPUT_KEY = "confirm_delete"  # the key of our question in input_requests / input_responses
STATE_PREFIX = "crm-mcp/confirm-delete/v1:"
LABEL_FIELDS = ("name", "title", "full_name", "display_name", "company_name", "email")

DELETE_TOOLS: dict[str, Operation] = {op.tool_name: op for op in OPERATIONS if op.action == "delete"}
_OPERATION_TOOLS = frozenset(op.tool_name for op in OPERATIONS)

# The form: one boolean, nothing secret. Rendered as the spec's restricted JSON Schema.
REQUESTED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "confirm": {
            "type": "boolean",
            "title": "Delete permanently",
            "description": "Check to delete the record. It cannot be undone.",
            "default": False,
        }
    },
    "required": ["confirm"],
}

CallTool = Callable[[Any, types.CallToolRequestParams], Awaitable[types.CallToolResult]]

# The deletes the user confirmed in this call chain: a dispatcher tool (discover mode's call_tool)
# that re-enters the tools/call handler with the delete itself is not asked a second time.
_CONFIRMED: ContextVar[frozenset[str]] = ContextVar("crm_mcp_confirmed_deletes", default=frozenset())


def install(server: Any) -> None:
    """Seal the multi-round-trip `request_state` of this server (2026-07-28): the lowlevel
    `Server` has no boundary of its own. The key is this process's own, unless
    CRM_MCP_REQUEST_STATE_KEY (32+ characters) gives one that replicas share: behind a load
    balancer, the retry that carries the user's answer may reach another replica."""
    if any(isinstance(m, RequestStateBoundary) for m in server.middleware):
        return
    key = os.environ.get(STATE_KEY_ENV)
    security = RequestStateSecurity(keys=[key]) if key else RequestStateSecurity.ephemeral()
    server.middleware.append(RequestStateBoundary(security, default_audience=server.name))


def delete_target(name: str, arguments: Mapping[str, Any] | None) -> tuple[Operation, dict[str, Any]] | None:
    """The delete a tools/call would run, with the delete's own arguments; None when it deletes nothing.

    Direct: `delete_contact {id}`. Through another tool: any tool whose arguments name a delete
    tool (e.g. `{"tool": "delete_contact", "arguments": {"id": ...}}`): its nested object of
    arguments (or, without one, its other arguments) are the delete's."""
    if name in DELETE_TOOLS:
        return DELETE_TOOLS[name], dict(arguments or {})
    if name in _OPERATION_TOOLS:  # an operation tool other than a delete deletes nothing
        return None
    args = dict(arguments or {})
    for key, value in args.items():
        if isinstance(value, str) and value in DELETE_TOOLS:
            nested = [v for v in args.values() if isinstance(v, Mapping)]
            inner = dict(nested[0]) if len(nested) == 1 else {k: v for k, v in args.items() if k != key}
            return DELETE_TOOLS[value], inner
    return None


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def _state(tool: str, delete_args: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(delete_args, sort_keys=True, default=str).encode()).hexdigest()[:32]
    return f"{STATE_PREFIX}{tool}:{digest}"


def _can_elicit_form(capabilities: types.ClientCapabilities | None) -> bool:
    """Form elicitation declared: `elicitation: {}` (before modes) or with `form`; url-only is not."""
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def _label(record: Mapping[str, Any]) -> str | None:
    for field in LABEL_FIELDS:
        value = record.get(field)
        if isinstance(value, str) and value.strip():
            return value.strip()[:80]
    first, last = record.get("first_name"), record.get("last_name")
    full = " ".join(p for p in (first, last) if isinstance(p, str) and p.strip())
    return full[:80] or None


class _Target:
    """One delete about to be asked about: what it is called in the question."""

    def __init__(self, op: Operation, args: dict[str, Any]):
        self.op = op
        self.args = args
        self.record_id = str(args.get("id", "?"))
        self.label: str | None = None
        self.exists = True

    @property
    def what(self) -> str:
        singular = resource(self.op.resource).singular
        name = f" ({quote(self.label)})" if self.label else ""
        return f"{singular.replace('_', ' ')} {self.record_id}{name}"

    def question(self) -> str:
        return f"Delete {self.what}? This cannot be undone."


async def _describe(ctx: Any, op: Operation, args: dict[str, Any]) -> _Target | None:
    """The target with its display name from the API; None when the arguments are invalid (the
    delete itself will say so, without deleting)."""
    try:
        parsed = args_model_for(op, ctx.lifespan_context.settings).model_validate(args)
    except ValidationError:
        return None
    target = _Target(op, args)
    path, _query, _body = split_arguments(op, parsed)
    overrides = {"consumer_id": getattr(parsed, "consumer_id", None), "service_id": getattr(parsed, "service_id", None)}
    get_name = op.tool_name.replace("delete_", "get_", 1)
    try:
        credentials = request_credentials(ctx.request)
        client = await ctx.lifespan_context.client(credentials)
        response = await client.call(operation(get_name), path_params=path, query={}, body=None, **overrides)
        data = (response.body or {}).get("data")
        target.label = _label(data) if isinstance(data, Mapping) else None
    except NotFoundError:
        target.exists = False
    except (CrmError, TenantHeaderError, KeyError):
        pass  # ask with the id alone
    except Exception:  # never let naming the record break the confirmation
        log.exception("could not look up the record to delete")
    return target


def _refused(target: _Target, why: str) -> types.CallToolResult:
    return _error(
        f"Not deleted: {why} This server was started with --confirm-destructive, so every delete "
        f"needs the user's confirmation. {target.what[0].upper()}{target.what[1:]} is unchanged. "
        "Ask the user to delete it themselves, or to use a client that supports elicitation."
    )


def _declined(target: _Target, action: str) -> types.CallToolResult:
    how = "declined" if action in ("decline", "accept") else "cancelled"
    return _error(
        f"Not deleted: the user {how} deleting {target.what}. The record is unchanged. "
        "Do not retry unless the user asks again."
    )


def _decide(target: _Target, answer: types.ElicitResult) -> types.CallToolResult | None:
    """None when the user confirmed; else the result that says nothing was deleted."""
    content = answer.content or {}
    if answer.action == "accept" and content.get("confirm") is True:
        return None
    log.info("tool=%s status=delete-not-confirmed action=%s", target.op.tool_name, answer.action)
    return _declined(target, answer.action)


def guard(call_tool: CallTool, *, offered: Collection[str] | None = None) -> Callable[..., Awaitable[Any]]:
    """`call_tool` with deletes confirmed by the user first. `offered`: the tool names this server
    runs; a direct call of a delete tool it does not offer goes straight to `call_tool` (which
    refuses it) instead of asking the user about a delete that would not happen."""

    async def confirmed_call_tool(ctx: Any, params: types.CallToolRequestParams) -> Any:
        found = delete_target(params.name, params.arguments)
        if found is None or (offered is not None and found[0].tool_name not in offered):
            return await call_tool(ctx, params)
        op, delete_args = found
        state = _state(op.tool_name, delete_args)
        if state in _CONFIRMED.get():  # confirmed by the call that dispatched this one
            return await call_tool(ctx, params)

        async def delete() -> types.CallToolResult:
            token = _CONFIRMED.set(_CONFIRMED.get() | {state})
            try:
                return await call_tool(ctx, _plain(params))
            finally:
                _CONFIRMED.reset(token)

        modern = bool(ctx.protocol_version) and is_version_at_least(ctx.protocol_version, INPUT_REQUIRED_VERSION)
        answer = (params.input_responses or {}).get(INPUT_KEY) if modern else None
        if modern and answer is not None and params.request_state == state:
            # Round 2: the answer to the question we asked (the sealed state says so).
            answered = await _describe(ctx, op, delete_args) or _Target(op, delete_args)
            if not isinstance(answer, types.ElicitResult):
                return _refused(answered, "the client's answer to the confirmation was not an elicitation result.")
            result = _decide(answered, answer)
            return result if result is not None else await delete()

        target = await _describe(ctx, op, delete_args)
        if target is None or not target.exists:
            return await call_tool(ctx, _plain(params))  # invalid arguments or no such record: nothing to delete
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
        result = _decide(target, answer)
        return result if result is not None else await delete()

    return confirmed_call_tool


def _plain(params: types.CallToolRequestParams) -> types.CallToolRequestParams:
    """The call without the confirmation round's fields, as the tool handler expects it."""
    if params.input_responses is None and params.request_state is None:
        return params
    return params.model_copy(update={"input_responses": None, "request_state": None})
