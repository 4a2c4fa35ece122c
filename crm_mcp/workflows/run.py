"""Running a workflow tool: validate the arguments, run it for the caller's tenant, log one line,
and keep secrets out of the answer. Every failure is an error result, never a raise."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import ValidationError

from crm_mcp.errors import CrmError
from crm_mcp.redaction import redact
from crm_mcp.runtime import ToolResult, validation_message
from crm_mcp.workflows.args import args_model_for
from crm_mcp.workflows.log_interaction import log_interaction
from crm_mcp.workflows.overview import overview
from crm_mcp.workflows.search import search

log = logging.getLogger("crm_mcp.calls")

_RUNNERS: dict[str, Callable[[Any, Any], Awaitable[ToolResult]]] = {
    "search_crm": search,
    "get_account_overview": overview,
    "log_interaction": log_interaction,
}


class _Overriding:
    """The API client with a call's `consumer_id` / `service_id` applied to every request it makes."""

    def __init__(self, client: Any, overrides: dict[str, str]):
        self._client = client
        self._overrides = overrides

    async def call(self, op: Any, **kwargs: Any) -> Any:
        return await self._client.call(op, **{**kwargs, **self._overrides})


async def run_workflow(
    runtime: Any, name: str, arguments: Mapping[str, Any] | None, credentials: Any = None
) -> ToolResult:
    """Run workflow tool `name` (for the tenant of `credentials`, if given); every failure is an
    error result, never a raise."""
    started = time.perf_counter()
    try:
        args = args_model_for(name, runtime.settings).model_validate(dict(arguments or {}))
    except ValidationError as exc:
        return ToolResult(validation_message(name, exc), is_error=True)
    try:
        client = await runtime.client(credentials)
        overrides = {k: getattr(args, k) for k in ("consumer_id", "service_id") if getattr(args, k) is not None}
        if overrides:  # per-call consumer switching is on and the call names a consumer or connector
            client = _Overriding(client, overrides)
        runner: Callable[[Any, Any], Awaitable[ToolResult]] = _RUNNERS[name]
        result = await runner(client, args)
    except CrmError as exc:
        result = ToolResult(exc.agent_message(), is_error=True)
    except Exception as exc:  # a bug of ours: say so without internals, keep serving
        log.exception("tool=%s failed unexpectedly", name)
        result = ToolResult(
            f"{name} failed inside the server ({type(exc).__name__}). Nothing more is known.", is_error=True
        )
    log.info("tool=%s status=%s ms=%.1f", name, "error" if result.is_error else "ok",
             (time.perf_counter() - started) * 1000)
    secrets = runtime.secrets(credentials)
    if secrets:
        result = ToolResult(redact(result.text, secrets), result.structured, result.is_error)
    return result
