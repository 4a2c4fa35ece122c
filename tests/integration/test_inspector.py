"""The server driven by another implementation: the MCP Inspector's CLI mode (TypeScript SDK), over
stdio and streamable HTTP, on the embedded sandbox.

Needs the inspector installed under .ci/inspector (CI does it):
    npm install --prefix .ci/inspector @modelcontextprotocol/inspector@0.15.0
or MCP_INSPECTOR=/path/to/mcp-inspector. Without it the tests skip, unless CRM_MCP_REQUIRE_INSPECTOR=1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import http_clients
import pytest
from net_support import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
INSTALL_COMMAND = "npm install --prefix .ci/inspector @modelcontextprotocol/inspector@0.15.0"
SERVER_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("APIDECK_")},
    "CRM_MCP_SANDBOX_DB": ":memory:",
}
STDIO_SERVER = [sys.executable, "-m", "crm_mcp"]


def _find_inspector() -> str | None:
    configured = os.environ.get("MCP_INSPECTOR")
    if configured:
        return configured
    local = ROOT / ".ci" / "inspector" / "node_modules" / ".bin" / "mcp-inspector"
    if local.exists() and shutil.which("node"):
        return str(local)
    return None


INSPECTOR = _find_inspector()
if INSPECTOR is None:
    reason = f"MCP Inspector not installed; install it with `{INSTALL_COMMAND}` (needs Node.js and npm)"
    if os.environ.get("CRM_MCP_REQUIRE_INSPECTOR") == "1":
        raise RuntimeError(reason)
    pytestmark = [pytest.mark.slow, pytest.mark.skip(reason=reason)]


def inspector(target: list[str], *args: str, timeout: float = 60) -> dict[str, Any]:
    """Run `mcp-inspector --cli <target> <args>` and return the JSON it prints."""
    assert INSPECTOR is not None
    command = [INSPECTOR, "--cli", *target, *args]
    result = subprocess.run(
        command, env=SERVER_ENV, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, (
        f"{command} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"inspector printed no JSON ({exc}):\n{result.stdout}\nstderr:\n{result.stderr}") from exc


def text_of(result: dict[str, Any]) -> str:
    return "\n".join(block.get("text", "") for block in result["content"])


def _check_tools_list(listed: dict[str, Any]) -> None:
    tools = listed["tools"]
    assert len(tools) == 56  # 50 operations + 3 workflow tools + 3 journal tools
    names = [t["name"] for t in tools]
    assert len(set(names)) == 56  # 50 operations + 3 workflow tools + 3 journal tools
    assert {"list_contacts", "create_note", "get_note", "list_users"} <= set(names)
    for tool in tools:
        assert tool["inputSchema"]["type"] == "object", tool["name"]
        assert tool.get("description"), tool["name"]


def _check_list_contacts(result: dict[str, Any]) -> None:
    assert result["isError"] is False, text_of(result)
    assert "con_0001" in text_of(result)
    # `limit=2` reached the server as the integer 2: the inspector converts it by the tool's schema.
    assert result["structuredContent"]["count"] == 2, result


def _check_created(result: dict[str, Any]) -> str:
    assert result["isError"] is False, text_of(result)
    note_id = result["structuredContent"]["id"]
    assert isinstance(note_id, str) and note_id
    assert note_id in text_of(result)
    return note_id


# stdio: the inspector spawns the server, one process per call (a fresh in-memory sandbox each time)


def test_stdio_tools_list() -> None:
    _check_tools_list(inspector(STDIO_SERVER, "--method", "tools/list"))


def test_stdio_list_contacts() -> None:
    _check_list_contacts(
        inspector(STDIO_SERVER, "--method", "tools/call", "--tool-name", "list_contacts", "--tool-arg", "limit=2")
    )


def test_stdio_create_note() -> None:
    _check_created(
        inspector(
            STDIO_SERVER,
            "--method", "tools/call", "--tool-name", "create_note",
            "--tool-arg", "title=Inspector stdio note", "content=Written by the MCP Inspector CLI",
        )
    )


def test_stdio_invalid_arguments_are_a_tool_error() -> None:
    result = inspector(STDIO_SERVER, "--method", "tools/call", "--tool-name", "get_contact")
    assert result["isError"] is True
    assert "id" in text_of(result)


# streamable HTTP: one server for the module, so a note created by one call is read by the next


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [*STDIO_SERVER, "serve", "--http", "--port", str(port), "--log-level", "warning"],
        env=SERVER_ENV,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"crm-mcp serve --http exited {process.returncode}:\n{process.stderr.read()}")  # type: ignore[union-attr]
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("crm-mcp serve --http did not listen within 30 s") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


def test_http_tools_list(http_url: str) -> None:
    _check_tools_list(inspector([http_url], "--transport", "http", "--method", "tools/list"))


def test_http_list_contacts(http_url: str) -> None:
    _check_list_contacts(
        inspector(
            [http_url], "--transport", "http",
            "--method", "tools/call", "--tool-name", "list_contacts", "--tool-arg", "limit=2",
        )
    )


def test_http_create_note_then_read_it_back(http_url: str) -> None:
    note_id = _check_created(
        inspector(
            [http_url], "--transport", "http",
            "--method", "tools/call", "--tool-name", "create_note",
            "--tool-arg", "title=Inspector HTTP note", "content=Written over streamable HTTP",
        )
    )
    read = inspector(
        [http_url], "--transport", "http",
        "--method", "tools/call", "--tool-name", "get_note", "--tool-arg", f"id={note_id}",
    )
    assert read["isError"] is False, text_of(read)
    shown = text_of(read) + json.dumps(read.get("structuredContent"))
    assert "Inspector HTTP note" in shown
    assert "Written over streamable HTTP" in shown


def test_http_rejects_a_foreign_origin(http_url: str) -> None:
    """What the inspector's browser UI would trip over if the server accepted any page's requests."""
    response = http_clients.post(
        http_url,
        headers={"Origin": "https://evil.example", "Accept": "application/json, text/event-stream"},
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
    )
    assert response.status_code == 403
