"""The API key never appears in a log record, a tool result (text or structured) or an exception.

Every tool is called with a canary key, valid and invalid, through a real MCP client session, while
every logger (ours, the SDK's, httpx2/aiohttp, uvicorn) is captured at DEBUG; then against a sandbox
that accepts only another key (upstream 401 for every tool), through transient and fatal upstream
failures, and against an unreachable API."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import http_clients
import pytest
from mcp.shared.exceptions import MCPError
from mcp_support import valid_arguments
from security_support import BlockingSession, blocking_session, new_consumer, settings_for, tools

from crm_mcp.operations import operation
from crm_mcp.sandbox.server import SandboxServer

CANARY = "sk_live_CANARY_7f3a9"
# the key, and pieces of it a partial leak (cut, case-changed) would still show
CANARY_PIECES = (CANARY.lower(), "canary_7f3a9", "sk_live_canary")
LOGGERS = ("", "crm_mcp", "mcp", "httpx2", "httpcore", "httpcore2", "aiohttp", "h11", "anyio", "uvicorn",
           "uvicorn.error", "uvicorn.access", "starlette")
TOOLS = tools()


class Everything(logging.Handler):
    """Keeps every record, formatted with its exception and stack, whatever the logger's propagation."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception as exc:  # a record that cannot be formatted still counts
            text = f"{record.msg!r} {record.args!r} {exc!r}"
        self.lines.append(f"{text} {record.__dict__!r}")


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> Iterator[Everything]:
    handler = Everything()
    saved: list[tuple[logging.Logger, int]] = []
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    caplog.set_level(logging.DEBUG)
    try:
        yield handler
    finally:
        for logger, level in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
    # caplog saw the same records through the root logger
    for record in caplog.records:
        assert not _leaks(record.getMessage()), record.getMessage()


def _leaks(text: str) -> list[str]:
    low = text.lower()
    return [piece for piece in CANARY_PIECES if piece in low]


class Audit:
    """Calls tools and keeps everything the agent (or an operator) could see."""

    def __init__(self, session: BlockingSession):
        self.session = session
        self.seen: list[str] = []
        self.results: list[Any] = []

    def call(self, name: str, arguments: dict[str, Any]) -> Any:
        try:
            result = self.session.call(name, arguments)
        except Exception as exc:
            self.seen.append(f"{exc!s} {exc!r} {getattr(exc, 'error', '')!r}")
            return None
        self.seen.append(result.model_dump_json())
        self.results.append(result)
        return result


def _invalid(tool: Any) -> list[dict[str, Any]]:
    op = operation(tool.name)
    cases: list[dict[str, Any]] = [{"bogus_argument": 1}, {"consumer_id": "a\r\nb"}]
    if op.path_params:
        cases.append({})
        cases.append({name: "../x" for name in op.path_params})
    if op.action == "list":
        cases.append({"limit": 0, **({"object_id": "cos_projects"} if "object_id" in op.path_params else {})})
    return cases


def _assert_clean(audit: Audit, handler: Everything) -> None:
    assert audit.seen, "nothing was called"
    for text in audit.seen:
        assert not _leaks(text), text[:500]
    assert handler.lines, "no log record was captured: the capture is broken"
    http_client = ("httpx2", "httpcore", "aiohttp", "crm_mcp.upstream")  # crm_mcp.upstream_transport
    assert any(line.startswith(http_client) for line in handler.lines), "the HTTP client's logs were missed"
    for line in handler.lines:
        assert not _leaks(line), line[:500]


def test_every_tool_valid_and_invalid_with_a_canary_key(sandbox_server: Any, captured: Everything) -> None:
    settings = settings_for(sandbox_server.base_url, new_consumer("sec-canary"), api_key=CANARY)
    assert CANARY not in repr(settings) and CANARY not in settings.describe()
    with blocking_session(settings) as session:
        audit = Audit(session)
        audit.seen.append(session.list_tools().model_dump_json())
        audit.seen.append(str(session.client.instructions))
        for tool in TOOLS:
            op = operation(tool.name)
            audit.call(tool.name, valid_arguments(tool.name, op.resource, op.action))
            for arguments in _invalid(tool):
                audit.call(tool.name, arguments)
        audit.call("no_such_tool", {})
    assert any(not r.is_error for r in audit.results) and any(r.is_error for r in audit.results)
    assert any("MCPError" in s or "no_such_tool" in s for s in audit.seen)
    _assert_clean(audit, captured)


@pytest.fixture(scope="module")
def strict_sandbox() -> Iterator[SandboxServer]:
    """A sandbox that accepts only the key 'right': the canary key gets a 401 from the API."""
    with SandboxServer(db=":memory:", api_key="right") as server:
        yield server


def test_upstream_401_for_every_tool_does_not_leak_the_key(strict_sandbox: SandboxServer, captured: Everything) -> None:
    settings = settings_for(strict_sandbox.base_url, new_consumer("sec-401"), api_key=CANARY)
    with blocking_session(settings) as session:
        audit = Audit(session)
        for tool in TOOLS:
            op = operation(tool.name)
            result = audit.call(tool.name, valid_arguments(tool.name, op.resource, op.action))
            assert result is not None and result.is_error, tool.name
            assert "401" in audit.seen[-1] or "API key" in audit.seen[-1], audit.seen[-1]
    assert strict_sandbox.faults.count() >= len(TOOLS)  # the calls really reached the API
    _assert_clean(audit, captured)


def test_the_key_the_api_accepts_is_not_leaked_either(strict_sandbox: SandboxServer, captured: Everything) -> None:
    """Control: with the right key the same calls succeed (the 401s above were the key's doing)."""
    settings = settings_for(strict_sandbox.base_url, new_consumer("sec-right"), api_key="right")
    with blocking_session(settings) as session:
        result = session.call("list_users", {"limit": 1})
        assert not result.is_error


def test_upstream_failures_and_retries_do_not_leak_the_key(sandbox_server: Any, captured: Everything) -> None:
    settings = settings_for(sandbox_server.base_url, new_consumer("sec-faults"), api_key=CANARY)
    faults = sandbox_server.faults
    try:
        with blocking_session(settings) as session:
            audit = Audit(session)
            faults.fail(503, times=1, path="/crm/contacts")
            assert not audit.call("list_contacts", {"limit": 1}).is_error  # retried (logged), then answered
            faults.clear()
            faults.drop(methods={"POST"}, times=1)
            uncertain = audit.call("create_note", {"title": "t", "content": "c"})
            assert uncertain.is_error
            faults.clear()
            faults.fail(400, times=1, path="/crm/companies", methods={"POST"})  # not the duplicate lookup
            assert audit.call("create_company", {"name": "x"}).is_error
    finally:
        faults.clear()
    _assert_clean(audit, captured)


@pytest.mark.slow
def test_an_unreachable_api_does_not_leak_the_key(captured: Everything) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = settings_for(f"http://127.0.0.1:{port}", "sec-down", api_key=CANARY)
    with blocking_session(settings) as session:
        audit = Audit(session)
        result = audit.call("delete_contact", {"id": "con_0001"})
        assert result.is_error
    _assert_clean(audit, captured)


def test_mcp_errors_carry_no_key(sandbox_server: Any) -> None:
    settings = settings_for(sandbox_server.base_url, new_consumer("sec-mcperr"), api_key=CANARY)
    with blocking_session(settings) as session, pytest.raises(MCPError) as raised:
        session.call("list_nothing", {})
    assert not _leaks(f"{raised.value!s} {raised.value!r}")


# every tool with the first way (slow: 50 calls over HTTP), every fifth tool with the others
@pytest.mark.parametrize("how", [pytest.param("x-apideck-api-key", marks=pytest.mark.slow), "authorization",
                                 "x-apideck-api-key behind a server token"])
@pytest.mark.slow  # a real server or subprocess, seconds of set-up: with the slow tests
def test_per_request_tenant_keys_over_http_do_not_leak(
    strict_sandbox: SandboxServer, captured: Everything, how: str
) -> None:
    """HTTP mode: a request brings its own tenant's key in headers. The API refuses it (401), for
    every tool; nothing the client gets back and nothing logged shows it."""
    import anyio
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp_support import serve_in_thread

    from crm_mcp.http import build_http_app
    from crm_mcp.server import build_server

    server_token = "srv_tok_51d2a7" if "server token" in how else None
    settings = settings_for(strict_sandbox.base_url, new_consumer("sec-http-own"), api_key="right")
    app = build_http_app(build_server(settings), settings, host="127.0.0.1", port=0, token=server_token)
    tenant = {"x-apideck-app-id": "tenant-app", "x-apideck-consumer-id": new_consumer("sec-http-tenant")}
    if how == "authorization":
        headers = {**tenant, "Authorization": f"Bearer {CANARY}"}
    else:
        headers = {**tenant, "x-apideck-api-key": CANARY}
        if server_token:
            headers["Authorization"] = f"Bearer {server_token}"
    seen: list[str] = []
    errors = 0

    async def run() -> None:
        nonlocal errors
        http = http_clients.async_client(headers=headers, timeout=30)
        async with Client(streamable_http_client(url, http_client=http)) as client:
            for tool in TOOLS[:: 1 if how == "x-apideck-api-key" else 5]:
                op = operation(tool.name)
                result = await client.call_tool(tool.name, valid_arguments(tool.name, op.resource, op.action))
                seen.append(result.model_dump_json())
                errors += bool(result.is_error)
                assert result.is_error, f"{tool.name} did not use the request's key: {seen[-1][:300]}"
                assert "401" in seen[-1], seen[-1][:300]  # the API refused the tenant's key
        # a partial set of tenant headers: an error that names what is missing, not the key
        partial = {k: v for k, v in headers.items() if k != "x-apideck-consumer-id"}
        http = http_clients.async_client(headers=partial)
        async with Client(streamable_http_client(url, http_client=http)) as client:
            try:
                result = await client.call_tool("list_users", {"limit": 1})
                seen.append(result.model_dump_json())
            except Exception as exc:
                seen.append(f"{exc!s} {exc!r}")

    with serve_in_thread(app) as port:
        url = f"http://127.0.0.1:{port}/mcp"
        anyio.run(run)
    assert errors and any("x-apideck-consumer-id" in s for s in seen[-1:]), seen[-1]
    for text in seen:
        assert not _leaks(text), text[:500]
    for line in captured.lines:
        assert not _leaks(line), line[:500]
