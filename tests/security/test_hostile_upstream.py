"""A hostile upstream echoes the API key everywhere it can: in error bodies of every length (JSON
messages, details, downstream errors, non-JSON pages, non-object JSON), in a success answer that is
not JSON, in the request-id header and other headers, in the rows of a successful list, in a
create's unreadable answer, and in the pipelines resource (answer and error). The key, and every
8-character piece of it, must be absent from every result, resource answer and log line, at every
log level: first in memory over a sweep of lengths (so that every cut the server makes lands
somewhere inside the key), then as a stdio subprocess started with each `--log-level`."""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError
from security_support import LoopbackServer, UpstreamHandler, loopback_upstream, result_blob, settings_for

from crm_mcp.cli import configure_logging
from crm_mcp.client import RetryPolicy
from crm_mcp.server import build_server

KEY = "sk_live_HOSTILE_4b9e2d7f1a3c"
PIECES = {KEY[i : i + 8].lower() for i in range(len(KEY) - 7)}
ECHO_HEADERS = {
    "x-apideck-request-id": f"req-{KEY}",
    "x-echo": f"Authorization: Bearer {KEY}",
    "x-upstream-key": KEY,
}
VARIANTS = ("json", "downstream", "html", "array", "ok-text")
PADS = range(0, 640, 6)  # with a 28-character key, a cut at any length falls inside it somewhere


def leaks(text: str) -> list[str]:
    low = text.lower()
    return sorted(piece for piece in PIECES if piece in low)


def hostile(handler: UpstreamHandler) -> None:
    """The upstream: what it answers depends on the path (and, for a create, the name's length)."""
    path = handler.path.split("?")[0]
    if path == "/crm/contacts" and handler.command == "GET":
        row = {"id": "con_1", "name": f"Row {KEY}", "description": f"key={KEY}",
               "emails": [{"email": f"{KEY}@x.example", "type": "primary"}]}
        handler.reply(200, json.dumps({"status_code": 200, "data": [row], "meta": {"cursors": {"next": None}}}),
                      ECHO_HEADERS)
    elif path == "/crm/contacts" and handler.command == "POST":
        pad = len(json.loads(handler.body).get("first_name") or "")
        handler.reply(201, "c" * pad + KEY + " (not JSON)", {**ECHO_HEADERS, "content-type": "text/plain"})
    elif path.startswith("/crm/contacts/"):
        variant, pad = path.rsplit("/", 1)[1].rsplit("-", 1)
        handler.reply(*_error(variant, int(pad)))
    elif path == "/crm/pipelines" and handler.server.pipelines_fail:  # type: ignore[attr-defined]
        body = {"status_code": 400, "type_name": "RequestValidationError", "message": f"bad key {KEY}"}
        handler.reply(400, json.dumps(body), ECHO_HEADERS)
    elif path == "/crm/pipelines":
        stage = {"id": f"st_{KEY}", "name": f"Stage {KEY}", "display_order": 1, "win_probability": 10}
        data = [{"id": "pip_1", "name": f"Pipeline {KEY}", "stages": [stage]}]
        handler.reply(200, json.dumps({"status_code": 200, "data": data, "meta": {"cursors": {}}}), ECHO_HEADERS)
    else:
        handler.reply(404, json.dumps({"message": f"no route {KEY}"}), ECHO_HEADERS)


def _error(variant: str, pad: int) -> tuple[int, str, dict[str, str]]:
    text = "m" * pad + KEY + " end"
    if variant == "json":
        body = {"status_code": 400, "type_name": "RequestValidationError", "message": text, "detail": "d" * pad + KEY}
        return 400, json.dumps(body), ECHO_HEADERS
    if variant == "downstream":
        body = {"status_code": 400, "type_name": "ConnectorExecutionError", "message": text,
                "downstream_errors": [{"code": KEY, "message": "e" * pad + KEY, "detail": KEY}]}
        return 400, json.dumps(body), ECHO_HEADERS
    if variant == "html":
        return 409, f"<html>{text}</html>", {**ECHO_HEADERS, "content-type": "text/html"}
    if variant == "array":
        return 422, json.dumps([text]), ECHO_HEADERS
    return 200, text, {**ECHO_HEADERS, "content-type": "text/plain"}  # ok-text: a success that is not JSON


def calls(pads: range) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "list_contacts", {"limit": 5, "fields": ["id", "name", "emails", "description"]}
    for pad in pads:
        for variant in VARIANTS:
            yield "get_contact", {"id": f"{variant}-{pad}"}
        yield "create_contact", {"first_name": "x" * pad or "x"}


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()} {record.exc_text or ''}")


@pytest.fixture
def upstream() -> Iterator[LoopbackServer]:
    with loopback_upstream(hostile) as server:
        server.pipelines_fail = False  # type: ignore[attr-defined]
        yield server


@pytest.fixture
def debug_logs() -> Iterator[Lines]:
    """Everything logged, as the server's own logging set-up at debug level lets it through."""
    root = logging.getLogger()
    handler = Lines()
    saved = {name: logging.getLogger(name).level for name in ("", "httpx2", "httpcore2", "httpcore", "mcp")}
    root.setLevel(logging.DEBUG)
    configure_logging("debug")
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


async def _run_all(client: Client, upstream: LoopbackServer, pads: range) -> list[str]:
    seen: list[str] = []
    for name, arguments in calls(pads):
        result = await client.call_tool(name, arguments)
        seen.append(result_blob(result))
    for fail in (False, True):
        upstream.pipelines_fail = fail  # type: ignore[attr-defined]
        try:
            answer = await client.read_resource("crm://pipelines")
            seen.append(answer.model_dump_json())
        except MCPError as exc:
            seen.append(f"{exc!s} {exc.error!r}")
    return seen


@pytest.mark.anyio
async def test_nothing_the_hostile_upstream_echoes_reaches_results_resources_or_logs(
    upstream: LoopbackServer, debug_logs: Lines
) -> None:
    settings = settings_for(f"http://127.0.0.1:{upstream.server_port}", "hostile", api_key=KEY)
    server = build_server(settings, client_options={"retry": RetryPolicy.never()})
    async with Client(server) as client:
        seen = await _run_all(client, upstream, PADS)
    calls_made = len(list(calls(PADS)))
    assert len(upstream.seen) >= calls_made  # every call reached the upstream
    assert "Row [REDACTED]" in seen[0] and "[REDACTED]@x.example" in seen[0]  # the row came through, redacted
    assert sum("may have been applied" in s for s in seen) == len(PADS)  # every create: unreadable answer
    assert "Pipeline [REDACTED]" in seen[-2] and "Could not read the pipelines" in seen[-1]
    assert any("request_id=req-[REDACTED]" in line for line in debug_logs.lines), debug_logs.lines[:5]
    for text in seen:
        assert not leaks(text), (leaks(text), text[:600])
    for line in debug_logs.lines:
        assert not leaks(line), line[:600]


@pytest.mark.slow
@pytest.mark.parametrize("level", ["debug", "info", "warning", "error"])
def test_the_stdio_server_at_every_log_level_shows_no_piece_of_the_key(upstream: LoopbackServer, level: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APIDECK_")}
    env.update(APIDECK_API_KEY=KEY, APIDECK_APP_ID="app-hostile", APIDECK_CONSUMER_ID="hostile",
               APIDECK_BASE_URL=f"http://127.0.0.1:{upstream.server_port}")
    params = StdioServerParameters(command=sys.executable, args=["-m", "crm_mcp", "--log-level", level], env=env)
    seen: list[str] = []

    async def run() -> None:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            # around the cuts at 120, 160, 200 and 300 characters
            seen.extend(await _run_all(client, upstream, range(110, 330, 7)))

    with tempfile.TemporaryFile("w+") as errlog:
        anyio.run(run)
        errlog.seek(0)
        logged = errlog.read()
    assert "Row [REDACTED]" in seen[0]
    if level in ("debug", "info"):
        assert "tool=get_contact" in logged and "request_id=req-[REDACTED]" in logged
    for text in [*seen, *logged.splitlines()]:
        assert not leaks(text), (leaks(text), text[:600])
