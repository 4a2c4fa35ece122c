"""Logging: one line per tool call with the tool, the upstream status, the duration and the
request id the API returned; argument values (possibly personal data) only at debug level;
credentials never."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from mcp.client import Client
from mcp_support import sandbox_settings

from crm_mcp.server import build_server

pytestmark = pytest.mark.anyio

LINE = re.compile(r"^tool=(\S+) status=(\S+) ms=(\d+\.\d) request_id=(\S+)$")



async def run_calls(sandbox_server: Any) -> Any:
    settings = sandbox_settings(sandbox_server)
    async with Client(build_server(settings)) as client:
        await client.call_tool("list_contacts", {"filter": {"email": "jane.doe@acme.example"}})
        await client.call_tool("create_note", {"title": "Private", "content": "Salary is 123456"})
        await client.call_tool("get_contact", {"id": "con_missing"})
        await client.call_tool("get_contact", {"id": "../x"})
    return settings


def messages(caplog: pytest.LogCaptureFixture, logger: str = "crm_mcp.calls") -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


async def test_one_line_per_call_without_argument_values(sandbox_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="crm_mcp")
    settings = await run_calls(sandbox_server)
    lines = messages(caplog)
    assert len(lines) == 4, lines
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    tools = [m.group(1) for m in parsed if m]
    statuses = [m.group(2) for m in parsed if m]
    request_ids = [m.group(4) for m in parsed if m]
    assert tools == ["list_contacts", "create_note", "get_contact", "get_contact"]
    assert statuses == ["200", "201", "404", "invalid-arguments"]
    assert all(rid.startswith("req_") for rid in request_ids[:3])  # the sandbox's Request-Id header
    everything = "\n".join(r.getMessage() for r in caplog.records)
    for private in ("jane.doe@acme.example", "Salary is 123456", settings.api_key):
        assert private not in everything


async def test_arguments_only_at_debug_and_never_the_key(sandbox_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = await run_calls(sandbox_server)
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert "jane.doe@acme.example" in everything  # debug shows what was asked
    assert settings.api_key not in everything


def test_the_server_writes_each_line_with_its_time_level_and_logger() -> None:
    """What `crm-mcp` writes to stderr (`cli.configure_logging`), records made without their
    source line, thread or process, which the format never shows."""
    import os
    import subprocess
    import sys

    code = (
        "import logging\n"
        "from crm_mcp.cli import configure_logging\n"
        "configure_logging('info')\n"
        "log = logging.getLogger('crm_mcp.runtime')\n"
        "log.info('tool=%s status=%s ms=%.1f request_id=%s', 'get_contact', 200, 1.25, 'req_1')\n"
        "log.debug('not at info')\n"
        "print(logging._srcfile, logging.logThreads, logging.logProcesses)\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("APIDECK_", "CRM_MCP_"))}
    done = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO crm_mcp\.runtime: "
                        r"tool=get_contact status=200 ms=1\.2 request_id=req_1", lines[0]), lines[0]
    assert done.stdout.split() == ["None", "False", "False"]
