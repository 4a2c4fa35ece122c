"""The `crm-mcp` command: serve (stdio or HTTP), sandbox, tools, call."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    from crm_mcp import __version__

    parser = argparse.ArgumentParser(
        prog="crm-mcp",
        description="MCP server for the Apideck CRM unified API. With no APIDECK_API_KEY it serves "
        "an embedded sandbox CRM.",
    )
    parser.add_argument("--version", action="version", version=f"crm-mcp {__version__}")
    sub = parser.add_subparsers(dest="command")

    sandbox = sub.add_parser("sandbox", help="run the sandbox CRM (an Apideck-compatible HTTP API)")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=4010)
    sandbox.add_argument(
        "--db",
        default=None,
        help="SQLite database path, or :memory: (default: sandbox.db in the user data directory)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "sandbox":
        from crm_mcp.sandbox.server import run_sandbox

        return run_sandbox(host=args.host, port=args.port, db=args.db)
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
