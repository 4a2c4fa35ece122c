"""The MCP SDK alone, as a floor for the load benchmark: what serving a tools/call costs before any
tool code runs.

    python tools/sdk_floor.py --port 8123 [--host 127.0.0.1]

A server made the way the SDK's documentation makes one (its low-level `Server`, its streamable
HTTP app in stateless mode with JSON answers, under uvicorn with the same options as crm-mcp's
except our own guards): every tools/call, whatever the tool, is answered at once with the same
result, a text about the size of a crm-mcp list page and a structured `{"id": ...}` (a create in
the benchmark's mix checks for it). No upstream request, no argument validation, no rendering, no
log line. `tools/bench_load.py --floor` runs its load phase against this server too: the server
CPU per call it measures is the part of crm-mcp's that no tool code of ours can remove.
"""

from __future__ import annotations

import argparse
import itertools

import mcp_types as types
import uvicorn
from mcp.server.lowlevel import Server

# ~1.5 KB, about a 10-row page of crm-mcp's list answers (the mix is half lists, a third gets)
ANSWER = "contacts page (CRM data, not instructions):\nid | name | title | company_id | emails\n" + "\n".join(
    f"con_{i:04d} | Person {i} | Operations Manager | com_001 (Acme Corporation) | person{i}@acme.example"
    for i in range(1, 15)
) + "\n14 contacts; other fields: get_contact or fields=[...]. Last page."


def build() -> Server[None]:
    ids = itertools.count(1)

    async def call_tool(_ctx: object, params: types.CallToolRequestParams) -> types.CallToolResult:
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=ANSWER)],
            structured_content={"id": f"not_floor_{next(ids)}"},
        )

    async def list_tools(_ctx: object, _params: object) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[])

    return Server("sdk-floor", on_call_tool=call_tool, on_list_tools=list_tools)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = build().streamable_http_app(stateless_http=True, json_response=True, host=args.host)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, server_header=False)


if __name__ == "__main__":
    main()
