"""The `crm-mcp tools` and `crm-mcp call` commands, and start-up errors, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from crm_mcp.tokens import json_tokens
from crm_mcp.tools import operation_tools

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("APIDECK_")}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crm_mcp", *args], capture_output=True, text=True, timeout=120,
        env={**CLEAN_ENV, "CRM_MCP_SANDBOX_DB": ":memory:", **(env or {})},
    )


@pytest.mark.slow
def test_tools_prints_every_tool_with_its_tokens() -> None:
    result = run("tools")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:] if line.strip()}
    for tool in operation_tools():
        _name, kind, tokens = rows[tool.name]
        assert kind == tool.kind
        assert int(tokens) == json_tokens(tool.to_wire())
    assert {"search_crm", "get_account_overview", "log_interaction"} <= set(rows)
    total = next(line for line in result.stdout.splitlines() if line.startswith("all 50 tools"))
    assert int(total.split()[-1]) == json_tokens([t.to_wire() for t in operation_tools()])


@pytest.mark.slow
def test_call_runs_a_tool_on_the_embedded_sandbox() -> None:
    result = run("call", "list_contacts", json.dumps({"filter": {"email": "jane.doe@acme.example"}}))
    assert result.returncode == 0, result.stderr
    assert "con_0001" in result.stdout and "Jane Doe" in result.stdout
    structured: dict[str, Any] = json.loads(result.stderr.strip().splitlines()[-1])
    assert structured["count"] == 1


@pytest.mark.slow
def test_call_reports_bad_input_and_unknown_tools() -> None:
    bad = run("call", "get_contact", "{}")
    assert bad.returncode == 1 and "id" in bad.stdout and "Traceback" not in bad.stdout + bad.stderr
    unknown = run("call", "get_everything", "{}")
    assert unknown.returncode == 2 and "unknown tool" in unknown.stderr
    not_json = run("call", "get_contact", "{id:")
    assert not_json.returncode == 2 and "not valid JSON" in not_json.stderr


def test_half_configured_credentials_stop_the_server_with_a_clear_message() -> None:
    result = run(env={"APIDECK_API_KEY": "sk_live_x"})
    assert result.returncode == 2
    assert "APIDECK_APP_ID" in result.stderr and "APIDECK_CONSUMER_ID" in result.stderr
    assert "sk_live_x" not in result.stderr
    result = run(env={"APIDECK_APP_ID": "app"})
    assert result.returncode == 2 and "APIDECK_API_KEY" in result.stderr


def test_a_short_request_state_key_stops_the_server_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from crm_mcp import cli

    for name in [n for n in os.environ if n.startswith("APIDECK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CRM_MCP_REQUEST_STATE_KEY", "too-short-key")
    assert cli.main(["serve", "--confirm-destructive"]) == 2
    err = capsys.readouterr().err
    assert "configuration error: CRM_MCP_REQUEST_STATE_KEY must be at least 32 characters" in err
    assert "too-short-key" not in err and "Traceback" not in err


def test_http_serving_sends_upstream_through_aiohttp_and_stdio_through_httpx2() -> None:
    """`serve --http` picks aiohttp's pool (CPU per call under many callers); stdio keeps httpx2's
    (no aiohttp import at start-up or on the first call); a pool already set is kept."""
    from crm_mcp.cli import upstream_for
    from crm_mcp.config import Settings

    settings = Settings(api_key="k", app_id="a", consumer_id="c", client_options={"read_timeout": 5.0})
    assert upstream_for(settings, http=True).client_options == {"pool": "aiohttp", "read_timeout": 5.0}
    assert upstream_for(settings, http=False) is settings
    chosen = Settings(api_key="k", app_id="a", consumer_id="c", client_options={"pool": "httpx2"})
    assert upstream_for(chosen, http=True).client_options == {"pool": "httpx2"}


@pytest.mark.slow  # a Python process of its own
def test_a_stdio_server_answers_tools_list_without_importing_aiohttp() -> None:
    """aiohttp costs ~110 ms to import: a stdio server never loads it, up to its first call."""
    code = (
        "import sys, crm_mcp.cli, crm_mcp.server, crm_mcp.tools, crm_mcp.client;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'yarl')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout
