"""Context cost benchmark: the token targets, measured, as a markdown table.

    python tools/bench_context.py

Every number is o200k tokens (`crm_mcp.tokens`), counted on what an agent reads: tool definitions as
tools/list sends them (compact JSON), and tool results as their text plus their structured content
(compact JSON). Results come from real calls through an in-memory MCP client session to a server on
a sandbox CRM started here (in-memory database, a fresh demo consumer per server).

Rows:
- tools/list of the 50 operation tools, and the largest one: every parameter typed, arrays with
  their items, enums, date formats and the argument descriptions in (≤ 12,500 and ≤ 750; typing
  alone took the untyped list's ~8,000 to ~10,400), per-call consumer arguments off (the default),
  and the same list with them on;
- discover mode (`--tool-mode discover`): the meta-tool definitions; finding (`find_tools` "list
  contacts"), describing and running `list_contacts` (a page of 5, and the default page of 20);
  describing the largest create tool (≤ 750, as the largest tool). The ≤ 700 target is held
  against the page of 5: it stands against Apideck's 1,666 tokens for the same three steps, which
  returns raw JSON and so cannot have run a page of 20 (20 raw contacts alone cost about 4,400
  tokens);
- each workflow tool's answer against the sum of the single-tool results it replaces (the note adds
  what the agent writes, each call's name and arguments, to both sides): the same
  calls the workflow makes, each run as its own tool call (`search_crm` "Acme": one list call per
  resource and field searched; `get_account_overview` com_001: get_company and the five lists;
  `log_interaction` a call with a note, the contact given by name ("David Gonzalez", on one open
  opportunity, which the workflow links) or by id: the lookup of the contact (list_contacts by
  name, or get_contact), list_opportunities (the company's open ones, to find the contact's),
  create_activity, create_note).
  Goal: the workflow answer costs at most a third.
Only measures: writes nothing but the table (stdout).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402
from mcp.client import Client  # noqa: E402

from crm_mcp.config import Settings  # noqa: E402
from crm_mcp.sandbox.server import SandboxServer  # noqa: E402
from crm_mcp.selection import Selection  # noqa: E402
from crm_mcp.server import build_server  # noqa: E402
from crm_mcp.tokens import compact_json, count_tokens, json_tokens  # noqa: E402
from crm_mcp.tool_args import with_consumer_arguments  # noqa: E402
from crm_mcp.tools import operation_tools  # noqa: E402
from crm_mcp.workflows import ACTIVITY_SCAN, NOTE_PAGE, NOTE_PAGES, SEARCH_PAGE, searches_for  # noqa: E402

SEARCH_QUERY = "Acme"
COMPANY = "com_001"
CONTACT = "con_0011"
LOG_RUNS = 10
CONTACT_NAME = "David Gonzalez"  # con_0011, of com_001, on one of its four open opportunities: linked to it
NOTE = "Discussed the renewal; they want a proposal by Friday."


def settings_for(sandbox: SandboxServer) -> Settings:
    return Settings(api_key="bench-key", app_id="bench-app", consumer_id=f"bench-{uuid.uuid4().hex[:12]}",
                    base_url=sandbox.base_url)


def paid(result: Any) -> int:
    text = "\n".join(getattr(c, "text", "") for c in result.content)
    structured = result.structured_content
    return count_tokens(text) + (count_tokens(compact_json(structured)) if structured is not None else 0)


ARGUMENTS = [0]  # tokens of the calls' names and arguments (what the agent writes), summed


def written(tool: str, args: dict[str, Any]) -> int:
    return json_tokens({"name": tool, "arguments": args})


async def call(client: Client, tool: str, args: dict[str, Any]) -> Any:
    ARGUMENTS[0] += written(tool, args)
    result = await client.call_tool(tool, args)
    if result.is_error:
        raise RuntimeError(f"{tool} failed: {result.content}")
    return result


async def singles(client: Client, calls: Sequence[tuple[str, dict[str, Any]]]) -> int:
    return sum([paid(await call(client, tool, args)) for tool, args in calls])


async def notes_pages(client: Client) -> int:
    """list_notes page after page as the overview scans them (at most NOTE_PAGES pages)."""
    total, cursor = 0, None
    for _ in range(NOTE_PAGES):
        result = await call(client, "list_notes", {"limit": NOTE_PAGE, **({"cursor": cursor} if cursor else {})})
        total += paid(result)
        cursor = result.structured_content.get("next_cursor")
        if not cursor:
            break
    return total


async def measure(sandbox: SandboxServer) -> list[tuple[str, int, str, str]]:
    rows: list[tuple[str, int, str, str]] = []

    def row(what: str, value: int, target: int | None, note: str = "") -> None:
        verdict = "" if target is None else ("ok" if value <= target else "OVER")
        rows.append((what, value, f"≤ {target:,} {verdict}" if target is not None else "-", note))

    wire = [t.to_wire() for t in operation_tools()]
    row("tools/list, 50 operation tools", json_tokens(wire), 12_500)
    largest = max(wire, key=json_tokens)
    row("largest tool", json_tokens(largest), 750, largest["name"])
    switching = [{**t, "inputSchema": with_consumer_arguments(t["inputSchema"])} for t in wire]
    row("tools/list, 50 operation tools, per-call consumers on", json_tokens(switching), None,
        "CRM_MCP_PER_CALL_CONSUMER=1 lists consumer_id and service_id on each")

    creates = [t for t in operation_tools() if t.kind == "create"]
    largest_create = max(creates, key=lambda t: json_tokens(t.to_wire())).name
    async with Client(build_server(settings_for(sandbox), selection=Selection(tool_mode="discover"))) as client:
        listed = (await client.list_tools()).tools
        row("discover: meta-tool definitions", json_tokens([t.model_dump(by_alias=True, exclude_none=True)
                                                            for t in listed]), 400,
            ", ".join(t.name for t in listed))
        found = paid(await call(client, "find_tools", {"query": "list contacts"}))
        described = paid(await call(client, "describe_tool", {"name": "list_contacts"}))
        ran5 = paid(await call(client, "call_tool", {"name": "list_contacts", "arguments": {"limit": 5}}))
        ran20 = paid(await call(client, "call_tool", {"name": "list_contacts", "arguments": {}}))
        row("discover: find + describe + run list_contacts (limit 5)", found + described + ran5, 700,
            f"{found} + {described} + {ran5}")
        row("discover: same, default page of 20", found + described + ran20, None,
            f"{found} + {described} + {ran20} (the 20 rows are the data asked for)")
        row("discover: describe the largest create tool", paid(await call(client, "describe_tool",
                                                                          {"name": largest_create})), 750,
            largest_create)

    async with Client(build_server(settings_for(sandbox))) as client:
        plan = searches_for(SEARCH_QUERY)
        answer = await side(lambda: call(client, "search_crm", {"query": SEARCH_QUERY}))
        parts = await side(lambda: singles(client, [(f"list_{r}", {"filter": {f: SEARCH_QUERY}, "limit": SEARCH_PAGE})
                                                    for r, f in plan]))
        workflow_row(rows, f"search_crm {SEARCH_QUERY!r}", answer, parts, f"{len(plan)} list calls")

        answer = await side(lambda: call(client, "get_account_overview", {"company": COMPANY}))

        async def overview_singles() -> int:
            return await singles(client, [
                ("get_company", {"id": COMPANY}),
                ("list_contacts", {"filter": {"company_id": COMPANY}, "limit": 50}),
                ("list_opportunities", {"filter": {"company_id": COMPANY, "status": "open"}, "limit": 50}),
                ("list_pipelines", {"limit": 50}),
                ("list_activities", {"filter": {"company_id": COMPANY},
                                     "sort": {"by": "updated_at", "direction": "desc"}, "limit": ACTIVITY_SCAN}),
            ]) + await notes_pages(client)

        parts = await side(overview_singles)
        workflow_row(rows, f"get_account_overview {COMPANY}", answer, parts, "get_company + 5 lists")

        for contact, lookup in ((CONTACT_NAME, ("list_contacts", {"filter": {"name": CONTACT_NAME}})),
                                (CONTACT, ("get_contact", {"id": CONTACT}))):
            # the new records' ids are random, and how many tokens a random id costs varies: the
            # mean of LOG_RUNS logs on each side
            answers, singles_ = [], []
            for _ in range(LOG_RUNS):
                answers.append(await side(partial(call, client, "log_interaction",
                                                  {"type": "call", "contact": contact, "note": NOTE})))
                singles_.append(await side(partial(log_singles, client, *lookup)))
            workflow_row(rows, f"log_interaction call with {contact!r} + note", mean(answers), mean(singles_),
                         f"{lookup[0]} + list_opportunities + create_activity + create_note; mean of {LOG_RUNS}")
    return rows


async def log_singles(client: Client, lookup: str, args: dict[str, Any]) -> int:
    """What an agent calls to log a call with a note without the workflow: find the contact (and
    its company), find its open opportunity among the company's, create the activity and the note."""
    contact = await call(client, lookup, args)
    opportunities = await call(client, "list_opportunities", {"filter": {"company_id": COMPANY, "status": "open"}})
    activity = await call(client, "create_activity", {"type": "call", "title": "Call with David Gonzalez",
                                                      "contact_id": CONTACT, "company_id": COMPANY})
    note = await call(client, "create_note", {"title": "Call with David Gonzalez", "content": NOTE,
                                              "contact_id": CONTACT, "company_id": COMPANY})
    return sum(paid(r) for r in (contact, opportunities, activity, note))


def mean(sides: Sequence[tuple[int, int]]) -> tuple[int, int]:
    return round(sum(s[0] for s in sides) / len(sides)), round(sum(s[1] for s in sides) / len(sides))


async def side(run: Callable[[], Awaitable[Any]]) -> tuple[int, int]:
    """(result tokens, written tokens) of one side of a workflow comparison."""
    ARGUMENTS[0] = 0
    outcome = await run()
    return (outcome if isinstance(outcome, int) else paid(outcome)), ARGUMENTS[0]


def workflow_row(rows: list[tuple[str, int, str, str]], what: str, answer: tuple[int, int], parts: tuple[int, int],
                 calls: str) -> None:
    ratio = answer[0] / parts[0] if parts[0] else 0.0
    verdict = "ok" if ratio <= 1 / 3 else "OVER"
    with_args = sum(answer) / sum(parts) if sum(parts) else 0.0
    rows.append((f"workflow: {what}", answer[0], f"≤ 1/3 of {parts[0]:,}: {ratio:.2f} {verdict}",
                 f"vs {calls}; with the calls' arguments: {sum(answer):,} vs {sum(parts):,} ({with_args:.2f})"))


async def main() -> None:
    with SandboxServer(db=":memory:") as sandbox:
        rows = await measure(sandbox)
    print("| measure | tokens | target | note |")
    print("|---|---:|---|---|")
    for what, value, target, note in rows:
        print(f"| {what} | {value:,} | {target} | {note} |")


if __name__ == "__main__":
    anyio.run(main)
