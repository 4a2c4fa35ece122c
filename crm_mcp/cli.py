"""The `crm-mcp` command: serve (stdio or HTTP), sandbox, tools, call.

`crm-mcp` alone is `crm-mcp serve`: the MCP server over stdio, as desktop clients start it.
Everything the command prints for people goes to stderr; in stdio mode stdout carries only
protocol messages.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence


def _add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="stderr log level"
    )


def build_parser() -> argparse.ArgumentParser:
    from crm_mcp import __version__

    parser = argparse.ArgumentParser(
        prog="crm-mcp",
        description="MCP server for the Apideck CRM unified API. With no APIDECK_API_KEY it serves "
        "an embedded sandbox CRM with demo data.",
    )
    parser.add_argument("--version", action="version", version=f"crm-mcp {__version__}")
    _add_serve_arguments(parser)
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", help="run the MCP server (default): stdio, or --http")
    _add_serve_arguments(serve)

    sandbox = sub.add_parser("sandbox", help="run the sandbox CRM (an Apideck-compatible HTTP API)")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=4010)
    sandbox.add_argument(
        "--db",
        default=None,
        help="SQLite database path, or :memory: (default: sandbox.db in the user data directory)",
    )

    sub.add_parser("tools", help="print the tool table: name, kind, tokens")

    call = sub.add_parser("call", help="run one tool and print its result (debugging without a client)")
    call.add_argument("tool", help="tool name, e.g. list_contacts")
    call.add_argument("arguments", nargs="?", default="{}", help="JSON object of arguments")
    return parser


def configure_logging(level: str) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("httpx2", "httpcore", "mcp", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "serve"
    if command == "sandbox":
        from crm_mcp.sandbox.server import run_sandbox

        return run_sandbox(host=args.host, port=args.port, db=args.db)
    if command == "tools":
        return print_tool_table()
    configure_logging(getattr(args, "log_level", "info"))
    from crm_mcp.config import ConfigError, settings_from_env

    try:
        settings = settings_from_env()
    except ConfigError as exc:
        print(f"crm-mcp: configuration error: {exc}", file=sys.stderr)
        return 2
    if command == "call":
        return run_call(settings, args.tool, args.arguments)
    return serve(settings, http=args.http, host=args.host, port=args.port)


def serve(settings: object, *, http: bool, host: str, port: int) -> int:
    import anyio

    from crm_mcp.config import Settings
    from crm_mcp.server import build_server, run_stdio

    assert isinstance(settings, Settings)
    log = logging.getLogger("crm_mcp")
    server = build_server(settings)
    log.info("crm-mcp serving %s over %s", settings.describe(), "HTTP" if http else "stdio")
    if http:
        from crm_mcp.http import run_http

        return run_http(server, settings, host=host, port=port)
    anyio.run(run_stdio, server)
    return 0


def print_tool_table() -> int:
    from crm_mcp.tokens import json_tokens
    from crm_mcp.tools import operation_tools

    tools = operation_tools()
    rows = [(t.name, t.kind, json_tokens(t.to_wire())) for t in tools]
    width = max(len(r[0]) for r in rows)
    print(f"{'tool':<{width}}  {'kind':<8}  tokens")
    for name, kind, tokens in rows:
        print(f"{name:<{width}}  {kind:<8}  {tokens:>6}")
    print(f"{'all ' + str(len(rows)) + ' tools':<{width}}  {'':<8}  {json_tokens([t.to_wire() for t in tools]):>6}")
    return 0


def run_call(settings: object, tool: str, raw_arguments: str) -> int:
    import anyio

    from crm_mcp.config import Settings
    from crm_mcp.runtime import CrmRuntime
    from crm_mcp.tools import operation_tools

    assert isinstance(settings, Settings)
    names = {t.name for t in operation_tools()}
    if tool not in names:
        print(f"crm-mcp: unknown tool {tool!r}; `crm-mcp tools` lists them", file=sys.stderr)
        return 2
    try:
        arguments = json.loads(raw_arguments)
    except json.JSONDecodeError as exc:
        print(f"crm-mcp: arguments are not valid JSON: {exc}", file=sys.stderr)
        return 2
    if not isinstance(arguments, dict):
        print("crm-mcp: arguments must be a JSON object", file=sys.stderr)
        return 2

    async def go() -> int:
        runtime = CrmRuntime(settings)
        try:
            result = await runtime.call_operation(tool, arguments)
        finally:
            await runtime.aclose()
        print(result.text)
        if result.structured is not None:
            print(json.dumps(result.structured, ensure_ascii=False), file=sys.stderr)
        return 1 if result.is_error else 0

    return anyio.run(go)


if __name__ == "__main__":
    raise SystemExit(main())
