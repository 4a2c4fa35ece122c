"""Running a workflow tool: validate the arguments, run it for the caller's tenant, log one line,
and keep secrets out of the answer. Every failure is an error result, never a raise."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import ValidationError

from crm_mcp.errors import CrmError
from crm_mcp.redaction import redact, redact_obj
from crm_mcp.runtime import ToolResult, validation_message
from crm_mcp.workflows.args import ARGS
from crm_mcp.workflows.log_interaction import log_interaction
from crm_mcp.workflows.overview import overview
from crm_mcp.workflows.search import search

log = logging.getLogger("crm_mcp.calls")

_RUNNERS: dict[str, Callable[[Any, Any], Awaitable[ToolResult]]] = {
    "search_crm": search,
    "get_account_overview": overview,
    "log_interaction": log_interaction,
}


async def run_workflow(
    runtime: Any, name: str, arguments: Mapping[str, Any] | None, credentials: Any = None
) -> ToolResult:
    """Run workflow tool `name` (for the tenant of `credentials`, if given); every failure is an
    error result, never a raise."""
    started = time.perf_counter()
    try:
        args = ARGS[name].model_validate(dict(arguments or {}))
    except ValidationError as exc:
        return ToolResult(validation_message(name, exc), is_error=True)
    try:
        client = await runtime.client(credentials)
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
        structured = redact_obj(result.structured, secrets, patterns=False)
        result = ToolResult(redact(result.text, secrets, patterns=result.is_error), structured, result.is_error)
    return result
