"""The server over its real transports: stdio as a subprocess (with the embedded sandbox, as on a
fresh machine, and against the test sandbox) and streamable HTTP; both protocol revisions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import http_clients
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp_support import sandbox_settings, serve_in_thread, text_of

from crm_mcp.http import build_http_app
from crm_mcp.server import build_server

pytestmark = pytest.mark.anyio

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("APIDECK_")}



def stdio_params(env: dict[str, str] | None = None) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "crm_mcp"],
        env={**CLEAN_ENV, "CRM_MCP_SANDBOX_DB": ":memory:", **(env or {})},
    )


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_stdio_subprocess_on_the_embedded_sandbox(mode: str) -> None:
    """No credentials at all: the server starts its own sandbox and does real work."""
    async with Client(stdio_params(), mode=mode) as client:  # type: ignore[arg-type]
        assert "sandbox" in (client.instructions or "")
        tools = (await client.list_tools()).tools
        assert len(tools) == 56  # 50 operations + 3 workflow tools + 3 journal tools
        found = await client.call_tool("list_contacts", {"filter": {"email": "jane.doe@acme.example"}})
        assert not found.is_error, text_of(found)
        assert "con_0001" in text_of(found)


@pytest.mark.slow
async def test_stdio_against_configured_credentials(sandbox_server: Any) -> None:
    settings = sandbox_settings(sandbox_server)
    env = {
        "APIDECK_API_KEY": settings.api_key,
        "APIDECK_APP_ID": settings.app_id,
        "APIDECK_CONSUMER_ID": settings.consumer_id,
        "APIDECK_BASE_URL": settings.base_url,
    }
    async with Client(stdio_params(env)) as client:
        assert "sandbox" not in (client.instructions or "")
        created = await client.call_tool("create_company", {"name": "Stdio Test Ltd"})
        assert not created.is_error, text_of(created)
        assert created.structured_content and created.structured_content["id"]


@pytest.mark.slow
def test_stdout_carries_only_protocol_messages() -> None:
    """Raw stdio: every line the server writes to stdout is a JSON-RPC message."""
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
         "params": {"name": "list_users", "arguments": {"limit": 2}}},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "get_contact", "arguments": {}}},
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "crm_mcp", "--log-level", "debug"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**CLEAN_ENV, "CRM_MCP_SANDBOX_DB": ":memory:"}, text=True,
    )
    assert proc.stdin and proc.stdout
    answers: dict[int, Any] = {}
    lines: list[str] = []
    try:
        for message in requests:
            proc.stdin.write(json.dumps(message) + "\n")
            proc.stdin.flush()
            if "id" not in message:
                continue
            while message["id"] not in answers:
                line = proc.stdout.readline()
                assert line, "server closed stdout"
                lines.append(line)
                decoded = json.loads(line)
                assert decoded.get("jsonrpc") == "2.0"
                if "id" in decoded:
                    answers[decoded["id"]] = decoded
    finally:
        proc.stdin.close()
        proc.wait(timeout=20)
        stderr = proc.stderr.read() if proc.stderr else ""
    assert len(answers[2]["result"]["tools"]) == 56  # 50 operations + 3 workflow tools + 3 journal tools
    assert answers[3]["result"]["isError"] is False
    assert answers[4]["result"]["isError"] is True
    assert "tool=list_users" in stderr  # the log went to stderr


@pytest.fixture
def http_server(sandbox_server: Any) -> Iterator[str]:
    server = build_server(sandbox_settings(sandbox_server))
    app = build_http_app(server, sandbox_settings(sandbox_server), host="127.0.0.1", port=0, token=None)
    with serve_in_thread(app) as port:
        yield f"http://127.0.0.1:{port}/mcp"


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_streamable_http(http_server: str, mode: str) -> None:
    async with Client(http_server, mode=mode) as client:  # type: ignore[arg-type]
        tools = (await client.list_tools()).tools
        assert len(tools) == 56  # 50 operations + 3 workflow tools + 3 journal tools
        page = await client.call_tool("list_opportunities", {"limit": 3, "filter": {"company_id": "com_001"}})
        assert not page.is_error, text_of(page)
        assert "opp_" in text_of(page)
        bad = await client.call_tool("list_opportunities", {"limit": 500})
        assert bad.is_error and "limit" in text_of(bad)


@pytest.mark.slow
def test_a_stdio_line_over_the_limit_is_refused_and_the_server_keeps_serving() -> None:
    """A message longer than the reader's 64 MiB limit: an error for its id, a log line, and the
    next message is served (asyncio's readline would raise and end the server)."""
    from crm_mcp.stdio import _LINE_LIMIT

    proc = subprocess.Popen(
        [sys.executable, "-m", "crm_mcp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**CLEAN_ENV, "CRM_MCP_SANDBOX_DB": ":memory:"},
    )
    assert proc.stdin and proc.stdout

    def send(message: dict[str, Any] | bytes) -> None:
        assert proc.stdin
        proc.stdin.write(message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n")
        proc.stdin.flush()

    def answer_to(request_id: int) -> dict[str, Any]:
        assert proc.stdout
        while True:
            line = proc.stdout.readline()
            assert line, "the server closed stdout"
            decoded: dict[str, Any] = json.loads(line)
            if decoded.get("id") == request_id:
                return decoded

    try:
        send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}})
        assert answer_to(1)["result"]["serverInfo"]["name"] == "crm-mcp"
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        shell = b'{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "create_note", '
        send(shell + b'"arguments": {"content": "' + b"x" * (_LINE_LIMIT + 1024) + b'"}}}\n')
        refused = answer_to(2)
        assert refused["error"]["code"] == -32600
        assert f"longer than {_LINE_LIMIT} bytes" in refused["error"]["message"]
        send({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
              "params": {"name": "list_users", "arguments": {"limit": 2}}})
        served = answer_to(3)
        assert served["result"]["isError"] is False
        assert "usr_" in served["result"]["content"][0]["text"]
        assert proc.poll() is None
    finally:
        proc.stdin.close()
        proc.wait(timeout=20)
        stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert f"over the limit of {_LINE_LIMIT} bytes for one message" in stderr


@pytest.mark.slow
def test_stdio_lines_that_are_no_message_are_skipped_and_the_next_is_served() -> None:
    """Stdio read by our own transport: a line that is not JSON, and one that is JSON but no
    JSON-RPC message, reach the server as errors it passes over; the request after them gets the
    next line on stdout, and the end of stdin ends the server cleanly."""
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {}}
    request = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
               "params": {"name": "list_users", "arguments": {"limit": 2}, "_meta": meta}}
    proc = subprocess.Popen(
        [sys.executable, "-m", "crm_mcp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**CLEAN_ENV, "CRM_MCP_SANDBOX_DB": ":memory:"},
    )
    assert proc.stdin and proc.stdout
    try:
        proc.stdin.write(b"not json\n" + b'{"hello": "world"}\n' + json.dumps(request).encode() + b"\n")
        proc.stdin.flush()
        answer = json.loads(proc.stdout.readline())
    finally:
        proc.stdin.close()
        status = proc.wait(timeout=20)
    assert answer["id"] == 7 and answer["result"]["isError"] is False
    assert "usr_" in answer["result"]["content"][0]["text"]
    assert proc.stdout.read() == b""  # nothing else was written
    assert status == 0


async def test_mcp_param_headers_are_checked_only_against_schemas_that_declare_them(
    sandbox_server: Any, http_server: str
) -> None:
    """The SDK checks a tools/call's Mcp-Param-* headers against the `x-mcp-header` declarations of
    the tool's schema; no schema of ours declares one, so none is handed to it (its walk would find
    nothing, at 40-135 µs a call), and a stray header changes nothing."""
    from mcp.client.streamable_http import streamable_http_client

    from crm_mcp.server import _declares_mcp_header

    assert _declares_mcp_header({"properties": {"region": {"type": "string", "x-mcp-header": "Region"}}})
    assert _declares_mcp_header({"anyOf": [{"type": "null"}, {"properties": {"r": {"x-mcp-header": "R"}}}]})
    # named only in a value (the repr shows it, the walk finds no such key), or nowhere
    assert not _declares_mcp_header({"properties": {"r": {"description": "not an x-mcp-header"}}})
    assert not _declares_mcp_header({"properties": {"r": {"type": "string"}}})
    server = build_server(sandbox_settings(sandbox_server))
    assert server.get_tool_input_schema is not None  # set: the SDK never lists tools per call
    for name in ("list_contacts", "create_contact", "update_opportunity", "log_interaction"):
        assert server.get_tool_input_schema(name) is None
    async with (
        http_clients.async_client(headers={"Mcp-Param-Limit": "999"}) as http,
        Client(streamable_http_client(http_server, http_client=http), mode="auto") as client,
    ):
        page = await client.call_tool("list_users", {"limit": 2})
        assert not page.is_error, text_of(page)
        assert text_of(page).count("usr_") >= 2
