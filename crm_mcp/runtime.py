"""One tool call end to end: validate the arguments, call the API, shape the result.

`CrmRuntime` is what a running server holds: its settings, the one shared API client, and the
embedded sandbox when no credentials are configured (started on the first call, so that
start-up and tools/list never wait for it).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from pydantic import ValidationError

from crm_mcp.client import Credentials
from crm_mcp.config import Settings
from crm_mcp.errors import CrmError
from crm_mcp.operations import Operation, model, operation
from crm_mcp.redaction import redact
from crm_mcp.tenants import TenantClient
from crm_mcp.tool_args import args_model_for, split_arguments

log = logging.getLogger("crm_mcp.calls")

# progress(done, total, message): reports a long call's progress to the client that asked for it
Progress = Callable[[float, float | None, str | None], Awaitable[None]]

SANDBOX_DB_ENV = "CRM_MCP_SANDBOX_DB"  # the embedded sandbox's database (default: the user data directory)


@dataclass(frozen=True)
class ToolResult:
    """What a tool call answers: text for the agent, structured content, and whether it failed."""

    text: str
    structured: dict[str, Any] | None = None
    is_error: bool = False


def validation_message(tool: str, exc: ValidationError) -> str:
    """'Invalid arguments for create_contact: emails.0.email: Field required; ...' — never the input."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False)[:10]:
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown argument (not a field of this tool)"
        parts.append(f"{where}: {msg}")
    more = len(exc.errors()) - len(parts)
    tail = f"; and {more} more" if more > 0 else ""
    return f"Invalid arguments for {tool}: " + "; ".join(parts) + tail + ". Fix them and call again."


def _render_fields(args: Any) -> list[str] | str | None:
    """The `fields` argument as render takes it: ["*"] (every field) becomes "*"."""
    fields: list[str] | None = getattr(args, "fields", None)
    return "*" if fields and "*" in fields else fields


class CrmRuntime:
    """Holds the API client (and the embedded sandbox) for one server; runs operation tools."""

    def __init__(self, settings: Settings, *, transport: Any = None, client_options: dict[str, Any] | None = None):
        self.settings = settings
        self._transport = transport  # tests: an httpx2 transport that checks every request
        self._client_options = dict(client_options or {})  # e.g. retry policy, timeouts
        self._client: Any = None
        self._sandbox: Any = None
        self._lock = anyio.Lock()

    async def client(self, credentials: Credentials | None = None) -> Any:
        """The shared ApideckClient, created (and the sandbox started) on first use; bound to a
        request's tenant `credentials` when it brought its own (HTTP mode)."""
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await anyio.to_thread.run_sync(self._make_client)
        return self._client if credentials is None else TenantClient(self._client, credentials)

    def secrets(self, credentials: Credentials | None = None) -> tuple[str, ...]:
        """What must never appear in a result: the configured key and a tenant's key."""
        tenant = (credentials.api_key, credentials.app_id) if credentials is not None else ()
        return (*self.settings.secrets, *tenant)

    def _make_client(self) -> Any:
        from crm_mcp.client import ApideckClient

        base_url = self.settings.base_url
        if self.settings.sandbox:
            from crm_mcp.sandbox.server import SandboxServer

            self._sandbox = SandboxServer.embedded(db=os.environ.get(SANDBOX_DB_ENV) or None)
            self._sandbox.start()
            base_url = self._sandbox.base_url
            log.info("embedded sandbox CRM at %s", base_url)
        return ApideckClient(
            api_key=self.settings.api_key,
            app_id=self.settings.app_id,
            consumer_id=self.settings.consumer_id,
            service_id=self.settings.service_id,
            base_url=base_url,
            transport=self._transport,
            **{"read_timeout": self.settings.upstream_timeout, **self._client_options},  # CRM_MCP_UPSTREAM_TIMEOUT
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._sandbox is not None:
            await anyio.to_thread.run_sync(self._sandbox.stop)
            self._sandbox = None

    # ------------------------------------------------------------------ calls

    async def call_operation(
        self,
        tool_name: str,
        arguments: dict[str, Any] | None,
        credentials: Credentials | None = None,
        *,
        progress: Progress | None = None,
    ) -> ToolResult:
        """Run the operation tool `tool_name` (for the tenant of `credentials`, if given); every
        failure becomes an error result, never a raise. A list call with `max_records` follows the
        cursors (`crm_mcp.large_reads`), calling `progress(done, total, message)` after each page
        when given (the server gives it only when the client sent a progress token)."""
        op = operation(tool_name)
        started = time.perf_counter()
        if log.isEnabledFor(logging.DEBUG):  # argument values may be personal data: debug only
            log.debug("tool=%s arguments=%s", tool_name, redact(str(arguments), self.secrets(credentials)))
        status: int | str = "-"
        request_id = None
        try:
            args = args_model_for(op, self.settings).model_validate(arguments or {})
        except ValidationError as exc:
            elapsed_ms = (time.perf_counter() - started) * 1000
            log.info("tool=%s status=invalid-arguments ms=%.1f request_id=-", tool_name, elapsed_ms)
            return ToolResult(validation_message(tool_name, exc), is_error=True)
        path, query, body = split_arguments(op, args)
        overrides = {"consumer_id": getattr(args, "consumer_id", None), "service_id": getattr(args, "service_id", None)}
        try:
            client = await self.client(credentials)
            if op.action == "update" and body is not None:
                body = await self._complete_update(client, op, path, body, overrides)
            max_records = getattr(args, "max_records", None)
            if max_records is not None:
                result, status, request_id = await self._large_read(client, op, query, args, overrides, progress)
            else:
                response = await client.call(op, path_params=path, query=query, body=body, **overrides)
                status, request_id = response.status, response.request_id
                result = self._render(op, response.body, args, path)
        except CrmError as exc:
            status, request_id = exc.status or "error", exc.request_id
            result = ToolResult(exc.agent_message(), is_error=True)
        except Exception as exc:  # a bug of ours: say so without internals, keep serving
            log.exception("tool=%s failed unexpectedly", tool_name)
            status = "internal-error"
            result = ToolResult(
                f"{tool_name} failed inside the server ({type(exc).__name__}). Nothing more is known; "
                "the call may be retried once.",
                is_error=True,
            )
        log.info(
            "tool=%s status=%s ms=%.1f request_id=%s",
            tool_name, status, (time.perf_counter() - started) * 1000, request_id or "-",
        )
        secrets = self.secrets(credentials)
        if result.is_error and secrets:
            result = ToolResult(redact(result.text, secrets), None, True)
        return result

    async def _complete_update(
        self, client: Any, op: Operation, path: dict[str, str], body: dict[str, Any], overrides: dict[str, Any]
    ) -> dict[str, Any]:
        """Add the fields the contract requires in an update body (e.g. an opportunity's title)
        that the agent left out, with their current values, so that an update changes only what
        the agent gave."""
        assert op.body_model
        required = [
            info.alias or name for name, info in model(op.body_model).model_fields.items()
            if info.is_required() and (info.alias or name) not in body
        ]
        if not required:
            return body
        get_op = operation(op.tool_name.replace("update_", "get_", 1))
        current = await client.call(get_op, path_params=path, query={}, body=None, **overrides)
        record = current.body.get("data") or {}
        return {**{k: record.get(k) for k in required if k in record}, **body}

    async def _large_read(
        self, client: Any, op: Operation, query: dict[str, Any], args: Any, overrides: dict[str, Any],
        progress: Progress | None,
    ) -> tuple[ToolResult, int | str, str | None]:
        from crm_mcp import large_reads

        fields = _render_fields(args)
        read = await large_reads.read_records(
            client, op, query, max_records=args.max_records, overrides=overrides, fields=fields, progress=progress
        )
        text, structured = large_reads.render_read(op, read, fields=fields)
        return ToolResult(text, structured), read.last_status, read.last_request_id

    def _render(self, op: Operation, body: dict[str, Any], args: Any, path: dict[str, str]) -> ToolResult:
        from crm_mcp import render

        data = body.get("data")
        fields = _render_fields(args)
        if op.action == "list":
            cursors = (body.get("meta") or {}).get("cursors") or {}
            rendered = render.render_list(op.resource, data or [], next_cursor=cursors.get("next"), fields=fields)
        elif op.action == "get":
            rendered = render.render_record(op.resource, data or {}, fields=fields)
        else:
            record_id = (data or {}).get("id") if isinstance(data, dict) else None
            rendered = render.render_write(op.action, op.resource, data, record_id=record_id or path.get("id"))
        return ToolResult(rendered.text, rendered.structured)
