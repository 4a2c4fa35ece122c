"""The `crm-mcp` command: serve (stdio or HTTP), sandbox, tools, call.

`crm-mcp` alone is `crm-mcp serve`: the MCP server over stdio, as desktop clients start it.
Everything the command prints for people goes to stderr; in stdio mode stdout carries only
protocol messages.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crm_mcp.config import Settings
    from crm_mcp.selection import Selection


def _add_serve_arguments(parser: argparse.ArgumentParser, *, sub: bool = False) -> None:
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    parser.add_argument("--workers", type=int, default=1,
                        help="HTTP worker processes (default 1; about one per CPU core, see README)")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="stderr log level"
    )
    # The tool selection, fixed for the server's life. On the `serve` subcommand these default to
    # "not given", so that `crm-mcp --read-only serve` keeps the flag given before the subcommand.
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if sub else value

    selection = parser.add_argument_group("tool selection (fixed at start-up)")
    selection.add_argument(
        "--read-only", action="store_true", default=default(False),
        help="offer no create, update or delete tool; calls to one are refused",
    )
    selection.add_argument(
        "--resources", metavar="NAMES", default=default(None),
        help="only the tools of these resources, comma-separated (e.g. contacts,notes)",
    )
    selection.add_argument(
        "--tools", metavar="NAMES", default=default(None),
        help="only these tools (added to --resources), comma-separated",
    )
    selection.add_argument(
        "--workflows", action=argparse.BooleanOptionalAction, default=default(None),
        help="offer the workflow tools (search_crm, get_account_overview, log_interaction); "
        "--no-workflows: leave them out",
    )
    selection.add_argument(
        "--tool-mode", choices=["all", "discover"], default=default("all"),
        help="all: list every tool (default); discover: list only find_tools, describe_tool and "
        "call_tool, which find, describe and run the same tools",
    )
    parser.add_argument(
        "--confirm-destructive", action="store_true", default=default(False),
        help="a delete asks the user to confirm (MCP elicitation) first; a client that cannot ask "
        "gets the delete refused",
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
    _add_serve_arguments(serve, sub=True)

    sandbox = sub.add_parser("sandbox", help="run the sandbox CRM (an Apideck-compatible HTTP API)")
    sandbox.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=4010)
    sandbox.add_argument(
        "--allow-remote",
        action="store_true",
        help="serve on a non-loopback --host too (the sandbox accepts any API key: anyone who can reach it "
        "can read and change its data)",
    )
    sandbox.add_argument(
        "--db",
        default=None,
        help="SQLite database path, or :memory: (default: sandbox.db in the user data directory)",
    )

    sub.add_parser("tools", help="print the tool table: name, kind, tokens")

    journal = sub.add_parser("journal", help="the write journal (undo, retry window): purge it")
    journal_sub = journal.add_subparsers(dest="journal_command", required=True)
    purge = journal_sub.add_parser("purge", help="delete journal entries older than the retention")
    purge.add_argument("--all", action="store_true", help="delete every entry, whatever its age")

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
    # The HTTP libraries log every request line and, at debug, the upstream's response headers
    # (which an upstream may fill with anything, the API key included): warnings only.
    for noisy in ("httpx2", "httpcore2", "httpcore", "mcp", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    # Every tool call logs a line, and the format shows no source line, thread or process: records
    # skip looking them up (the settings of the logging HOWTO's "Optimization"). Inside the HTTP
    # server a line's median CPU went from 36 to 28 µs.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False


# The young generation is collected after this many new container objects instead of Python's 700.
# One tool call decodes and renders thousands of short-lived dicts and lists: at 700 the collector
# ran several times per call, each time walking (and promoting) the call's data still in use, which
# a few thousand allocations later is freed by reference counting anyway. Measured over HTTP, 6
# alternating pairs: about 8% less server CPU per call. Cyclic garbage waits a little longer.
GC_YOUNG_THRESHOLD = 7000


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "serve"
    if command in ("serve", "call"):  # before the server's imports, which allocate as much
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    if command == "sandbox":
        from crm_mcp.sandbox.server import run_sandbox

        return run_sandbox(host=args.host, port=args.port, db=args.db, allow_remote=args.allow_remote)
    if command == "tools":
        return print_tool_table()
    from crm_mcp.config import ConfigError, settings_from_env

    try:
        settings = settings_from_env(flags={"log_level": getattr(args, "log_level", None)})
    except ConfigError as exc:
        configure_logging("info")
        print(f"crm-mcp: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if command == "journal":
        from crm_mcp.journal.maintenance import purge_journal

        return purge_journal(settings, everything=args.all)
    if command == "call":
        return run_call(settings, args.tool, args.arguments)
    if args.workers < 1 or (args.workers > 1 and not args.http):
        print("crm-mcp: --workers takes a count of 1 or more, and more than 1 only with --http", file=sys.stderr)
        return 2
    from crm_mcp.selection import SelectionError, select_tools

    try:
        selection = selection_from_args(args)
        select_tools(selection)  # a typo in --resources/--tools fails here, before serving
    except SelectionError as exc:
        print(f"crm-mcp: {exc}", file=sys.stderr)
        return 2
    return serve(
        settings, http=args.http, host=args.host, port=args.port, selection=selection,
        confirm_destructive=bool(getattr(args, "confirm_destructive", False)), workers=args.workers,
    )


def selection_from_args(args: argparse.Namespace) -> Selection:
    """The tool selection the flags ask for (raises SelectionError for an empty name list)."""
    from crm_mcp.selection import WORKFLOWS_DEFAULT, Selection, parse_names

    workflows = getattr(args, "workflows", None)
    return Selection(
        read_only=bool(getattr(args, "read_only", False)),
        resources=parse_names(getattr(args, "resources", None), "--resources"),
        tools=parse_names(getattr(args, "tools", None), "--tools"),
        workflows=WORKFLOWS_DEFAULT if workflows is None else workflows,
        tool_mode=getattr(args, "tool_mode", "all"),
    )


def upstream_for(settings: Settings, *, http: bool) -> Settings:
    """HTTP serving sends upstream through aiohttp's pool (less than half the CPU per request of
    httpx2's, for many callers); stdio keeps httpx2's, which a desktop server imports anyway: aiohttp
    would add ~110 ms to its start-up or first call for savings one user never notices."""
    if not http:
        return settings
    return replace(settings, client_options={"pool": "aiohttp", **settings.client_options})


def serve(
    settings: Settings, *, http: bool, host: str, port: int, selection: Selection | None = None,
    confirm_destructive: bool = False, workers: int = 1,
) -> int:
    import anyio

    from crm_mcp.server import build_server, run_stdio
    from crm_mcp.stdio import event_loop_options
    from crm_mcp.telemetry import configure

    configure()  # OpenTelemetry export, when the standard OTEL_* variables ask for it
    log = logging.getLogger("crm_mcp")
    settings = upstream_for(settings, http=http)
    server = build_server(settings, selection=selection, confirm_destructive=confirm_destructive)
    log.info("crm-mcp serving %s over %s", settings.describe(), "HTTP" if http else "stdio")
    if http:
        from crm_mcp.http import run_http

        return run_http(server, settings, host=host, port=port, workers=workers)
    anyio.run(run_stdio, server, settings, backend_options=event_loop_options())
    return 0


def print_tool_table() -> int:
    from crm_mcp.tokens import TokenizerMissing, json_tokens
    from crm_mcp.tools import registry

    tools = [t for t in registry() if t.operation is not None]
    workflows = [t for t in registry() if t.operation is None]  # workflow and journal tools
    try:
        rows = [(t.name, t.kind, json_tokens(t.to_wire())) for t in (*tools, *workflows)]
    except TokenizerMissing as exc:
        print(f"crm-mcp tools: {exc}", file=sys.stderr)
        return 1
    width = max(len(r[0]) for r in rows)
    print(f"{'tool':<{width}}  {'kind':<8}  tokens")
    for name, kind, tokens in rows:
        print(f"{name:<{width}}  {kind:<8}  {tokens:>6}")
    print(f"{'all ' + str(len(tools)) + ' tools':<{width}}  {'':<8}  {json_tokens([t.to_wire() for t in tools]):>6}")
    print(f"{'+ ' + str(len(workflows)) + ' others':<{width}}  {'':<8}  "
          f"{json_tokens([t.to_wire() for t in workflows]):>6}")
    return 0


def run_call(settings: Settings, name: str, raw_arguments: str) -> int:
    """`crm-mcp call`: the tool through the same pipeline as an MCP call, without a client."""
    import anyio

    from crm_mcp.runtime import CrmRuntime, Run, ToolResult, call_tool
    from crm_mcp.tools import by_name

    tool = by_name().get(name)
    if tool is None:
        print(f"crm-mcp: unknown tool {name!r}; `crm-mcp tools` lists them", file=sys.stderr)
        return 2
    try:
        arguments = json.loads(raw_arguments)
    except json.JSONDecodeError as exc:
        print(f"crm-mcp: arguments are not valid JSON: {exc}", file=sys.stderr)
        return 2
    if not isinstance(arguments, dict):
        print("crm-mcp: arguments must be a JSON object", file=sys.stderr)
        return 2

    from crm_mcp.telemetry import configure

    configure()  # OpenTelemetry export, when the standard OTEL_* variables ask for it

    async def go() -> int:
        runtime = CrmRuntime(settings)
        try:
            result = await call_tool(tool, arguments, Run(runtime))
        finally:
            await runtime.aclose()
        assert isinstance(result, ToolResult)  # no confirmation step here: always a result
        print(result.text)
        if result.structured is not None:
            print(json.dumps(result.structured, ensure_ascii=False), file=sys.stderr)
        return 1 if result.is_error else 0

    return anyio.run(go)


if __name__ == "__main__":
    raise SystemExit(main())
