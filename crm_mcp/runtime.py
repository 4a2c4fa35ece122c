"""One tool call end to end, for every tool: the pipeline, and what a running server holds.

`call_tool` is the one path of a call, operation or workflow, whether it came as tools/call,
through discover mode's `call_tool` or from `crm-mcp call`: validate the arguments, confirm where
asked (`crm_mcp.confirm`), run the tool's handler, log one line (tool, status, duration, request
id), and redact secrets from everything the answer carries. Every failure is an error result,
never a raise.

`CrmRuntime` is what a running server holds: its settings, the one shared API client, and the
embedded sandbox when no credentials are configured (started on the first call, so that
start-up and tools/list never wait for it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import ValidationError

from crm_mcp import telemetry
from crm_mcp.config import Settings
from crm_mcp.credentials import Credentials
from crm_mcp.redaction import redact, redact_obj
from crm_mcp.tenants import TenantClient
from crm_mcp.tool_args import switching_model

if TYPE_CHECKING:
    from crm_mcp.journal import Scope, WriteJournal
    from crm_mcp.tools import Tool

log = logging.getLogger("crm_mcp.calls")

# progress(done, total, message): reports a long call's progress to the client that asked for it
Progress = Callable[[float, float | None, str | None], Awaitable[None]]


@dataclass(frozen=True)
class ToolResult:
    """What a tool call answers: text for the agent, structured content, and whether it failed;
    `status` and `request_id` (of the last API response) are for the call's log line only."""

    text: str
    structured: dict[str, Any] | None = None
    is_error: bool = False
    status: int | str | None = None
    request_id: str | None = None


class JournalUnavailable(Exception):
    """The write journal cannot be opened (its file or database): writes are not sent unjournaled."""


class _Overriding:
    """The API client with a call's `consumer_id` / `service_id` applied to every request it makes."""

    def __init__(self, client: Any, overrides: Mapping[str, str]):
        self._client = client
        self._overrides = dict(overrides)

    async def call(self, op: Any, **kwargs: Any) -> Any:
        return await self._client.call(op, **{**kwargs, **self._overrides})


def error_result(text: str, status: int | str = "error", request_id: str | None = None) -> ToolResult:
    return ToolResult(text, None, True, status, request_id)


@dataclass(frozen=True)
class Run:
    """One call as its handler sees it: the runtime, the caller's tenant, and the MCP request."""

    runtime: CrmRuntime
    credentials: Credentials | None = None  # HTTP mode: the request's own tenant
    progress: Progress | None = None  # given only when the client sent a progress token
    ctx: Any = None  # the SDK's request context (None from `crm-mcp call`)
    params: Any = None  # the tools/call params (confirmation reads its multi-round-trip fields)
    # per-call consumer switching (CRM_MCP_PER_CALL_CONSUMER): the call's consumer_id / service_id
    overrides: Mapping[str, str] = field(default_factory=dict)

    async def client(self) -> Any:
        client = await self.runtime.client(self.credentials)
        return _Overriding(client, self.overrides) if self.overrides else client

    def secrets(self) -> tuple[str, ...]:
        return self.runtime.secrets(self.credentials)

    def journal_scope(self) -> Scope:
        """Whose changes a write journals and an undo may take back: the tenant (a fingerprint of
        its app id and key, never the key) and the consumer the call acts for."""
        from crm_mcp.journal import scope_for

        settings = self.runtime.settings
        creds = self.credentials
        app_id = creds.app_id if creds is not None else settings.app_id or ""
        api_key = creds.api_key if creds is not None else settings.api_key or ""
        consumer = (self.overrides.get("consumer_id") or (creds.consumer_id if creds is not None else None)
                    or settings.consumer_id or "")
        return scope_for(app_id, api_key, consumer)


# confirm(tool, args, run): None to go ahead, else the answer that stands instead of the call
# (a refusal, a decline, or the question itself on protocol 2026-07-28).
Confirm = Callable[["Tool", Any, Run], Awaitable[Any]]


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


@telemetry.traced_call  # telemetry: a span and the call metrics per tool call (crm_mcp.telemetry)
async def call_tool(tool: Tool, arguments: dict[str, Any] | None, run: Run, *, confirm: Confirm | None = None) -> Any:
    """Run `tool` with `arguments` through the pipeline. Returns a ToolResult, or what `confirm`
    answers instead of running (an MCP result of its own, e.g. an `InputRequiredResult`)."""
    started = time.perf_counter()
    secrets = run.secrets()
    if log.isEnabledFor(logging.DEBUG):  # argument values may be personal data: debug only
        log.debug("tool=%s arguments=%s", tool.name, redact(str(arguments), secrets))
    settings = run.runtime.settings
    model = tool.args()
    if settings.per_call_consumer:  # the tool takes consumer_id / service_id (crm_mcp.tool_args)
        model = switching_model(model, settings.allowed_consumers)
    try:
        args = model.model_validate(dict(arguments or {}))
    except ValidationError as exc:
        result: ToolResult = error_result(validation_message(tool.name, exc), "invalid-arguments")
    else:
        overrides = {k: getattr(args, k) for k in ("consumer_id", "service_id") if getattr(args, k, None)}
        if overrides:
            run = replace(run, overrides=overrides)
        answer = await confirm(tool, args, run) if confirm is not None else None
        if answer is not None and not isinstance(answer, ToolResult):
            # the confirmation question (2026-07-28): the call goes on when the client retries it
            log.info("tool=%s status=input-required ms=%.1f request_id=-", tool.name,
                     (time.perf_counter() - started) * 1000)
            return answer
        result = answer if answer is not None else await _run(tool, args, run)
    status = result.status if result.status is not None else ("error" if result.is_error else "ok")
    log.info(
        "tool=%s status=%s ms=%.1f request_id=%s",
        tool.name, status, (time.perf_counter() - started) * 1000, result.request_id or "-",
    )
    if secrets:  # an upstream may echo the key in a record as well as in an error
        crm_data = not result.is_error  # CRM text: only the known secrets go ("basic plan" stays whole)
        result = replace(result, text=redact(result.text, secrets, patterns=not crm_data),
                         structured=redact_obj(result.structured, secrets, patterns=False))
    return result


async def _run(tool: Tool, args: Any, run: Run) -> ToolResult:
    from crm_mcp.errors import CrmError  # loaded with the API client by the first call, not at start-up

    try:
        return await tool.handler(run, args)
    except CrmError as exc:
        return error_result(exc.agent_message(), exc.status or "error", exc.request_id)
    except JournalUnavailable as exc:
        return error_result(
            f"Nothing was written: the write journal (which makes every write undoable) could not be opened "
            f"({exc}). Reads still work; ask the operator to check CRM_MCP_JOURNAL_PATH or "
            "CRM_MCP_JOURNAL_DATABASE_URL.", "journal-unavailable",
        )
    except Exception as exc:  # a bug of ours: say so without internals, keep serving
        log.exception("tool=%s failed unexpectedly", tool.name)
        then = ("check whether it was applied before calling again" if tool.writes
                else "the call may be retried once")
        return error_result(
            f"{tool.name} failed inside the server ({type(exc).__name__}). Nothing more is known; {then}.",
            "internal-error",
        )


class CrmRuntime:
    """Holds the API client (and the embedded sandbox) for one server."""

    def __init__(self, settings: Settings, *, transport: Any = None, client_options: dict[str, Any] | None = None):
        self.settings = settings
        self._transport = transport  # tests: an httpx2 transport that checks every request
        self._client_options = dict(client_options or {})  # e.g. retry policy, timeouts
        self._client: Any = None
        self._sandbox: Any = None
        self._lock = anyio.Lock()
        self._journal: WriteJournal | None = None
        self._journal_lock = anyio.Lock()

    async def journal(self) -> WriteJournal:
        """The write journal (crm_mcp.journal), opened on first use (the lifespan starts it early)
        and closed with the runtime. Raises JournalUnavailable when it cannot be opened."""
        if self._journal is None:
            async with self._journal_lock:
                if self._journal is None:
                    from crm_mcp.config import ConfigError
                    from crm_mcp.journal import open_journal

                    try:
                        self._journal = await open_journal(self.settings)
                    except ConfigError as exc:  # worded for the operator, without secrets
                        raise JournalUnavailable(str(exc)) from exc
                    except Exception as exc:
                        log.warning("the write journal could not be opened (%s)", type(exc).__name__)
                        raise JournalUnavailable(type(exc).__name__) from exc
        return self._journal

    async def client(self, credentials: Credentials | None = None) -> Any:
        """The shared ApideckClient, created (and the sandbox started) on first use; bound to a
        request's tenant `credentials` when it brought its own (HTTP mode)."""
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await anyio.to_thread.run_sync(self._make_client)
        return self._client if credentials is None else TenantClient(self._client, credentials)

    def load_client_code(self) -> None:
        """Imports, on the calling thread, what making the API client will import: the client
        module itself (start-up leaves it out) and its connection pool (`load_pool`). Imports hold
        the GIL, so in the thread that makes the client (`_prepare` in crm_mcp.server) they would
        only slow the first messages down and leave the first call waiting for them."""
        from crm_mcp.client import load_pool

        if self._transport is None:
            load_pool({**self.settings.client_options, **self._client_options}.get("pool", "httpx2"))

    def secrets(self, credentials: Credentials | None = None) -> tuple[str, ...]:
        """What must never appear in a result: the configured key and a tenant's key."""
        tenant = (credentials.api_key, credentials.app_id) if credentials is not None else ()
        return (*self.settings.secrets, *tenant)

    def _make_client(self) -> Any:
        from crm_mcp.client import ApideckClient

        base_url = self.settings.base_url
        if self.settings.sandbox:
            from crm_mcp.sandbox.server import SandboxServer

            self._sandbox = SandboxServer.embedded(db=self.settings.sandbox_db)
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
            # CRM_MCP_UPSTREAM_TIMEOUT bounds each whole upstream answer (crm_mcp.client)
            **{"read_timeout": self.settings.upstream_timeout, **self.settings.client_options, **self._client_options},
        )

    async def aclose(self) -> None:
        if self._journal is not None:
            journal, self._journal = self._journal, None
            await journal.store.aclose()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._sandbox is not None:
            await anyio.to_thread.run_sync(self._sandbox.stop)
            self._sandbox = None
