"""Every hint is true (issue 11): every tool a description, an answer or an error names exists, and
every argument it names exists on the tool it points to.

The texts are collected through real MCP client sessions on the sandbox: tools/list in every mode
(its descriptions and its arguments' descriptions), the instructions, discover mode's answers
(find_tools, describe_tool, call_tool's "did you mean"), and the answers of a broad set of calls:
every tool with valid arguments, with an unknown argument and with none, records that do not exist,
workflows (ambiguous names, candidates, half-done writes), large reads, time windows and read-only
refusals. A checker then reads each sentence of each text (table rows and record fields, which are
CRM data, left out) and checks mechanically:

- each word shaped like a tool name (`list_x`, `get_x`, `create_x`, ..., `search_crm`,
  `find_tools`, ...) is a tool of the registry or a meta-tool;
- each argument the sentence names (`name=...`, `filter name`, or an argument word such as
  `cursor`, `max_records`, `fields`, `opportunity_id`) is an argument of one of the tools the
  sentence names, or, when it names none, of the tool whose text it is (a filter or sort field
  counts when the sentence says filter or sort).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from mcp.client import Client
from mcp_support import CUSTOM_SCHEMA, sandbox_settings, text_of, valid_arguments

from crm_mcp.config import Settings
from crm_mcp.selection import Selection
from crm_mcp.server import build_server
from crm_mcp.tools import registry

pytestmark = pytest.mark.anyio

TOOL_WORD = re.compile(r"\b(?:list|get|create|update|delete|search|log|find|describe|call)_[a-z_]*[a-z]\b")
# words that name an argument in a hint, beside `name=`, `filter name` and `after/before` (plain English
# words such as "fields", "limit" or "after" count only in those shapes)
ARG_WORDS = ("cursor", "max_records", "filter", "sort", "pass_through", "opportunity_id", "company_id",
             "contact_id", "lead_id", "owner_id", "activity_id", "object_id", "pipeline_stage_id", "pipeline_id",
             "primary_contact_id")
ARGUMENT = re.compile(
    rf"\b([a-z][a-z0-9_]*)=|\b(filter) ([a-z][a-z0-9_]*)|\b(after)/(before)\b"
    rf"|(?<![\w\"'.\[])({'|'.join(ARG_WORDS)})(?![\w\"'])"
)
QUOTED = re.compile(r'"[^"]*"')  # an echoed value, e.g. the unknown name in "No tool named "list_deals""
DATA_LINE = re.compile(r"^([a-z_.]+: |.* \| )")  # a record card's field, a table row


def arguments() -> dict[str, tuple[set[str], set[str]]]:
    """Tool name -> (its arguments, the fields of its filter and sort)."""
    out: dict[str, tuple[set[str], set[str]]] = {}
    for tool in registry():
        props = tool.input_schema.get("properties", {})
        nested = {k for name in ("filter", "sort") for k in props.get(name, {}).get("properties", {})}
        out[tool.name] = (set(props), nested)
    out.update({"find_tools": ({"query", "resource"}, set()), "describe_tool": ({"name"}, set()),
                "call_tool": ({"name", "arguments"}, set())})
    return out


def sentences(text: str) -> list[str]:
    """The hint sentences of a text: lines that are no CRM data, split at sentence ends."""
    out: list[str] = []
    for line in text.splitlines():
        if DATA_LINE.match(line):
            continue
        line = re.sub(r"^(\+\d+ more fields \([^)]*\)):.*", r"\1", line)  # the field names it lists
        line = re.sub(r"(Valid fields:) [a-z0-9_.]+(, [a-z0-9_.]+)*", r"\1", line)  # values `fields` takes
        out += [s for s in re.split(r"(?<=[.?!])\s+(?=[A-Z(])", line) if s.strip()]
    return out


@dataclass
class Hints:
    """Every text collected, with the tool it is the text of, and the false hints found in them."""

    texts: list[tuple[str, str]] = field(default_factory=list)  # (tool, text)

    def add(self, tool: str, text: str) -> None:
        self.texts.append((tool, text))

    def false_hints(self) -> list[str]:
        known = arguments()
        wrong: list[str] = []
        for owner, text in self.texts:
            for sentence in sentences(text):
                wrong += [f"{owner}: {problem} in: {sentence}" for problem in _check(sentence, owner, known)]
        return wrong


def _check(sentence: str, owner: str, known: dict[str, tuple[set[str], set[str]]]) -> list[str]:
    """What is false in one sentence: a tool that does not exist; an argument that is not one of
    the tool named last before it (or, before any, of the tool whose text it is)."""
    plain = QUOTED.sub(lambda m: " " * len(m.group(0)), sentence)
    mentions = [(m.start(), m.end(), m.group(0)) for m in TOOL_WORD.finditer(plain)]
    problems = [f"no tool {name!r}" for _, _, name in mentions if name not in known]
    nested = re.search(r"\b(filter|sort)\b", sentence) is not None  # a filter's or sort's field counts
    for match in ARGUMENT.finditer(plain):
        before = [(end, name) for at, end, name in mentions if at < match.start() and name in known]
        # the tool named last before it, unless offered as its alternative ("get_note or fields=[...]");
        # else the tool whose text it is (the instructions: any tool)
        alternative = bool(before) and re.fullmatch(r"\s+or\s+", plain[before[-1][0]:match.start()]) is not None
        targets = ([before[-1][1]] if before and not alternative else []) or (
            [owner] if owner in known else list(known))
        for word in filter(None, match.groups()):
            if not any(word in known[t][0] or (nested and word in known[t][1]) for t in targets):
                problems.append(f"{word!r} is no argument of {'/'.join(targets)}")
    return problems


async def collect_listing(hints: Hints, client: Client) -> None:
    for tool in (await client.list_tools()).tools:
        hints.add(tool.name, tool.description or "")
        for prop in (tool.input_schema.get("properties") or {}).values():
            for inner in [prop, *(prop.get("properties") or {}).values()]:
                if isinstance(inner, dict) and inner.get("description"):
                    hints.add(tool.name, f"{inner['description']}.")
    hints.add("instructions", client.instructions or "")


async def call(hints: Hints, client: Client, tool: str, args: dict[str, Any]) -> str:
    text = text_of(await client.call_tool(tool, args))
    hints.add(tool, text)
    return text


@pytest.fixture
def settings(sandbox_server: Any) -> Settings:
    return sandbox_settings(sandbox_server)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    async with Client(build_server(settings)) as c:
        yield c


@pytest.fixture
def hints() -> Hints:
    return Hints()


def test_the_checker_finds_false_hints() -> None:
    hints = Hints()
    hints.add("get_account_overview", 'Some more fields (fields=["*"] for all).')
    hints.add("log_interaction", "Look for the note with list_notes filter activity_id=act_1.")
    hints.add("list_contacts", "Next page: list_contacts with cursor=\"x\". Or get_deals.")
    hints.add("update_opportunity", "Move stage with pipeline_stage_id (see list_pipelines, with after/before).")
    hints.add("list_contacts", "id | name | cursor=1\nname: x=1")  # CRM data: not hints
    hints.add("list_activities", "Narrow with filter company_id, after and max_records.")
    look = "Look for the note with list_notes filter activity_id=act_1."
    assert hints.false_hints() == [
        "get_account_overview: 'fields' is no argument of get_account_overview in: "
        'Some more fields (fields=["*"] for all).',
        f"log_interaction: 'filter' is no argument of list_notes in: {look}",
        f"log_interaction: 'activity_id' is no argument of list_notes in: {look}",
        "list_contacts: no tool 'get_deals' in: Or get_deals.",
        "update_opportunity: 'after' is no argument of list_pipelines in: "
        "Move stage with pipeline_stage_id (see list_pipelines, with after/before).",
        "update_opportunity: 'before' is no argument of list_pipelines in: "
        "Move stage with pipeline_stage_id (see list_pipelines, with after/before).",
    ]


async def test_every_listing_names_only_real_tools_and_arguments(settings: Settings, hints: Hints) -> None:
    selections = [Selection(), Selection(read_only=True), Selection(workflows=False),
                  Selection(resources=("contacts", "notes")), Selection(tool_mode="discover"),
                  Selection(read_only=True, tool_mode="discover")]
    for selection in selections:
        async with Client(build_server(settings, selection=selection)) as client:
            await collect_listing(hints, client)
            if selection.tool_mode == "discover":
                for query in ("", "log a call", "what deals does Acme have?", "move a deal", "custom objects",
                              "how many leads", "who owns", "delete a note", "xyzzy"):
                    await call(hints, client, "find_tools", {"query": query} if query else {})
                for tool in registry():
                    await call(hints, client, "describe_tool", {"name": tool.name})
                for name in ("list_deals", "get_people", "lst_contacts", "find_tools", "nothing"):
                    await call(hints, client, "call_tool", {"name": name})
                await call(hints, client, "find_tools", {"resource": "nowhere"})
    per_call = Settings(**{**settings.__dict__, "per_call_consumer": True})
    async with Client(build_server(per_call)) as client:
        await collect_listing(hints, client)
    assert len(hints.texts) > 500
    wrong = hints.false_hints()
    assert wrong == [], "\n".join(wrong)


async def test_every_answer_names_only_real_tools_and_arguments(
    settings: Settings, sandbox_server: Any, hints: Hints, client: Client
) -> None:
    ops = [t for t in registry() if t.operation is not None]
    for tool in ops:  # reads and creates/updates first; the deletes last, once the rest has read the records
        if tool.kind != "delete":
            assert tool.operation is not None
            await call(hints, client, tool.name, valid_arguments(tool.name, tool.operation.resource, tool.kind))
        await call(hints, client, tool.name, {"no_such_argument": 1})
        await call(hints, client, tool.name, {})
        if tool.kind in ("get", "update", "delete"):
            path = {"object_id": CUSTOM_SCHEMA} if "object_id" in tool.input_schema["properties"] else {}
            await call(hints, client, tool.name, {**path, "id": "nope_404"})
    for args in ({"max_records": 250}, {"limit": 1}, {"fields": ["name", "emailz"]}, {"fields": ["*"], "limit": 2}):
        await call(hints, client, "list_contacts", args)
    for args in ({"after": "2026-10-01", "filter": {"company_id": "com_001"}}, {"after": "2020-01-01"},
                 {"after": "soon"}, {"before": "2026-10-01", "sort": {"by": "created_at"}}):
        await call(hints, client, "list_activities", args)
    await call(hints, client, "list_custom_objects", {"object_id": CUSTOM_SCHEMA, "max_records": 3, "limit": 2})
    await call(hints, client, "get_company", {"id": "com_001", "fields": ["*"]})

    for args in ({"query": "Acme"}, {"query": "jane.doe@acme.example"}, {"query": "zzzz-nothing"}):
        await call(hints, client, "search_crm", args)
    for company in ("com_001", "Acme Corporation", "a", "No Such Company Ltd", "com_404"):
        await call(hints, client, "get_account_overview", {"company": company})
    for args in ({"type": "call", "contact": "con_0001", "note": "Asked for pricing."},
                 {"type": "meeting", "contact": "Mark"}, {"type": "call", "contact": "Nobody Atall"},
                 {"type": "email", "company_id": "com_001"}, {"type": "call"}):
        await call(hints, client, "log_interaction", args)
    for status, retry in ((503, 0.01), (500, None)):  # a note turned away, a note that may have been written
        sandbox_server.faults.clear()
        sandbox_server.faults.fail(status, retry_after=retry, times=None, probability=1.0, methods={"POST"},
                                   path="/crm/notes")
        try:
            await call(hints, client, "log_interaction", {"type": "call", "company_id": "com_001", "note": "x"})
        finally:
            sandbox_server.faults.clear()
    for tool in (t for t in ops if t.kind == "delete"):
        assert tool.operation is not None
        await call(hints, client, tool.name, valid_arguments(tool.name, tool.operation.resource, "delete"))

    async with Client(build_server(settings, selection=Selection(read_only=True))) as read_only:
        for tool in ("create_contact", "update_opportunity", "delete_note", "log_interaction"):
            await call(hints, read_only, tool, {"id": "x"})
    assert len(hints.texts) > 200
    wrong = hints.false_hints()
    assert wrong == [], "\n".join(wrong)
