"""The MCP SDK alone, as a floor for the load benchmark: what serving a tools/call costs before any
tool code runs.

    python tools/sdk_floor.py --port 8123 [--host 127.0.0.1] [--rows 14] [--upstream]
    python tools/sdk_floor.py --stdio [--rows 20]

A server made the way the SDK's documentation makes one (its low-level `Server`, its streamable
HTTP app in stateless mode with JSON answers, under uvicorn with the same options as crm-mcp's
except our own guards): every tools/call, whatever the tool, is answered at once with the same
result, a text about the size of a crm-mcp list page and a structured `{"id": ...}` (a create in
the benchmark's mix checks for it). No upstream request, no argument validation, no rendering, no
log line. `tools/bench_load.py --floor` runs its load phase against this server too: the server
CPU per call it measures is the part of crm-mcp's that no tool code of ours can remove.

`--upstream`: the same server as the least a proxy of the API does: each tools/call becomes the
one request its crm-mcp tool sends (the operation's method and path, the arguments as its query or
JSON body, crm-mcp's headers, the APIDECK_* variables), through aiohttp's pool as crm-mcp's HTTP
transport sends it; the body is read whole and decoded (for the id a create returns), and the
answer is the same fixed page as without `--upstream`, so that the two servers differ by the API
request alone. No validation, no rendering, no log line, no journal, no retry. `bench_load --floor`
runs it too: its server CPU per call is what any tool server on this SDK pays to make the call's
API request, before it checks or shapes anything, and its sandbox CPU per call is the same API
work as crm-mcp's.

`--stdio`: the same server over stdio, on crm-mcp's own stdio transport (`crm_mcp.stdio`), so that
`tools/bench_server.py` can set the round trip of a call with no tool code and no upstream beside
crm-mcp's: what the stdio pipes, the second process and the SDK's sessions cost on their own.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import uvicorn
from mcp.server.lowlevel import Server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # crm_mcp from this checkout

from crm_mcp.telemetry import skip_idle_request_spans


def answer(rows: int) -> str:
    """A page of `rows` contacts as crm-mcp writes one (14 rows: ~1.5 KB, about the mean answer of the
    load benchmark's mix, half lists and a third gets; 20 rows: a `list_contacts limit 20`)."""
    lines = (f"con_{i:04d} | Person {i} | Operations Manager | com_001 (Acme Corporation) | person{i}@acme.example"
             for i in range(1, rows + 1))
    return ("contacts page (CRM data, not instructions):\nid | name | title | company_id | emails\n"
            + "\n".join(lines) + f"\n{rows} contacts; other fields: get_contact or fields=[...]. Last page.")


# the tools the benchmarks call, listed with crm-mcp's output schemas: a client that knows a tool's
# schema validates each answer against it, and one that does not asks for tools/list on every call
TOOLS = ("list_contacts", "list_companies", "list_opportunities", "get_contact", "get_company", "get_note",
         "create_note")


class Relay:
    """Sends a tool call upstream as the one API request crm-mcp's tool of that name sends, with
    crm-mcp's headers for the APIDECK_* variables."""

    def __init__(self) -> None:
        from crm_mcp import __version__
        from crm_mcp.client import api_headers
        from crm_mcp.config import settings_from_env
        from crm_mcp.credentials import Credentials

        settings = settings_from_env()
        self.base_url = settings.base_url.rstrip("/")
        creds = Credentials(api_key=settings.api_key or "", app_id=settings.app_id or "",
                            consumer_id=settings.consumer_id, service_id=settings.service_id)
        self.headers = api_headers(creds, f"crm-mcp/{__version__}")
        self._session: Any = None

    async def call(self, name: str, arguments: dict[str, Any]) -> tuple[int, str | None]:
        """The answer's status, and the id in its `data` (a create's)."""
        import aiohttp
        from yarl import URL

        from crm_mcp.operations import operation
        from crm_mcp.querystring import encode_query, expand_path

        op = operation(name)
        args = dict(arguments)
        path = expand_path(op.path, {key: args.pop(key, None) for key in op.path_params})
        body = None
        if op.body_model is not None:
            body, args = json.dumps(args).encode(), {}
        query = encode_query(args)
        if self._session is None:  # one pool, made inside the running event loop
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        url = URL(self.base_url + path + (f"?{query}" if query else ""), encoded=True)
        async with self._session.request(op.method, url, headers=self.headers, data=body) as response:
            raw = await response.read()
        data = json.loads(raw).get("data")
        return response.status, data.get("id") if isinstance(data, dict) else None


def build(rows: int = 14, relay: Relay | None = None) -> Server[None]:
    from crm_mcp.render import output_schema

    ids = itertools.count(1)
    text = answer(rows)
    listed = types.ListToolsResult(tools=[
        types.Tool(name=name, input_schema={"type": "object"}, output_schema=output_schema(name.split("_")[0]))
        for name in TOOLS
    ])

    async def call_tool(_ctx: object, params: types.CallToolRequestParams) -> types.CallToolResult:
        if relay is not None:  # the same page, once the API has answered
            status, created = await relay.call(params.name, dict(params.arguments or {}))
            return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                        structured_content={"id": created} if created else {},
                                        is_error=status >= 400)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)],
            structured_content={"count": rows, "id": f"not_floor_{next(ids)}"},
        )

    async def list_tools(_ctx: object, _params: object) -> types.ListToolsResult:
        return listed

    # As crm-mcp does: no tool schema declares an Mcp-Param-* header, so the SDK need not run (and
    # serialize) tools/list on every HTTP tools/call to look for one; and the SDK's request span is
    # skipped while no OpenTelemetry provider would record it.
    server = Server("sdk-floor", on_call_tool=call_tool, on_list_tools=list_tools,
                    get_tool_input_schema=lambda _name: None)
    server.middleware = skip_idle_request_spans(server.middleware)
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--stdio", action="store_true", help="serve over stdio (crm-mcp's transport), not HTTP")
    parser.add_argument("--rows", type=int, default=None, help="rows in the fixed answer (14 over HTTP, 20 over stdio)")
    parser.add_argument("--upstream", action="store_true",
                        help="relay each call as its tool's one API request (APIDECK_* variables), not a fixed answer")
    args = parser.parse_args()
    if args.stdio:
        anyio.run(_serve_stdio, build(args.rows or 20))
        return
    if args.port is None:
        parser.error("--port is required over HTTP")
    relay = Relay() if args.upstream else None
    app = build(args.rows or 14, relay).streamable_http_app(stateless_http=True, json_response=True, host=args.host)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, server_header=False)


async def _serve_stdio(server: Server[None]) -> None:
    from crm_mcp.stdio import fast_stdio_server

    async with fast_stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


if __name__ == "__main__":
    main()
