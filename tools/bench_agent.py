"""Agent benchmark: everyday CRM tasks, run as a careful agent would, checked against the CRM itself.

    python tools/bench_agent.py            # both tool modes, a table per mode
    python tools/bench_agent.py --mode discover

Each task is a question or a write an agent gets from a user ("what did we do with Acme in the last
30 days?", "log a call with Jane Doe"). It runs as the tool calls a careful agent would make, through
a real MCP client session (in memory) to a server on a sandbox CRM started here, and reads its answer
from the tools' text only, the way a model does (tables, `key: value` lines). The answer is then
checked against the sandbox's own data, read over its HTTP API directly (the truth), and for writes
the record is read back. A task is right only when the answer equals the truth.

In the default mode the agent calls the tools by name (it has the tool list). In the discover mode
it has only `find_tools`, `describe_tool` and `call_tool`: before the first use of a tool it asks
`find_tools` with the user's words and must find the tool there (not finding it fails the task),
describes it once, then runs it through `call_tool`.

Printed per task: the calls made, the tokens the agent read and wrote (o200k: each call's name and
arguments, each answer's text), and right or wrong with the answer and the truth. Each mode runs
on its own fresh demo consumer, so writes of one mode do not change the other's data.
"""

from __future__ import annotations

import argparse
import re
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402
import httpx2  # noqa: E402
from mcp.client import Client  # noqa: E402

from crm_mcp.config import Settings  # noqa: E402
from crm_mcp.sandbox.server import SandboxServer  # noqa: E402
from crm_mcp.selection import Selection  # noqa: E402
from crm_mcp.server import build_server  # noqa: E402
from crm_mcp.tokens import count_tokens, json_tokens  # noqa: E402

MODES = ("all", "discover")


# ---------------------------------------------------------------------------------- reading answers


def unquote(cell: str) -> str:
    """A table cell as the agent reads it: quoted CRM strings ("...") unquoted, '-' is empty."""
    cell = cell.strip()
    if len(cell) >= 2 and cell[0] == cell[-1] == '"':
        cell = cell[1:-1].replace('\\"', '"')
    return "" if cell == "-" else cell


def tables(text: str) -> list[list[dict[str, str]]]:
    """Every table in a tool's text: a header line `a | b | c` and the rows under it."""
    found: list[list[dict[str, str]]] = []
    header: list[str] | None = None
    for line in text.splitlines():
        if " | " not in line:
            header = None
            continue
        cells = [c.strip() for c in line.split(" | ")]
        if header is None or len(cells) != len(header):
            header = cells
            found.append([])
            continue
        found[-1].append({h: unquote(c) for h, c in zip(header, cells, strict=True)})
    return found


def rows(text: str) -> list[dict[str, str]]:
    """The rows of the text's tables, all of them."""
    return [row for table in tables(text) for row in table]


def fields(text: str) -> dict[str, str]:
    """The `key: value` lines of a record card."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if sep and re.fullmatch(r"[a-z_.]+", key):
            out.setdefault(key, unquote(value))
    return out


def amount(cell: str) -> float:
    """'120,000 USD' or '120000 USD' -> 120000.0."""
    number = re.match(r"-?[\d,]+(\.\d+)?", cell.strip())
    if number is None:
        raise ValueError(f"not an amount: {cell!r}")
    return float(number.group(0).replace(",", ""))


def id_and_name(cell: str) -> tuple[str, str | None]:
    """'usr_02 (Marcus Reid)' -> ('usr_02', 'Marcus Reid'): an id with the name the server put beside it."""
    match = re.fullmatch(r"(\S+)(?: \((.*)\))?", cell.strip())
    return (match.group(1), match.group(2)) if match else (cell, None)


def ids(text: str, prefix: str) -> list[str]:
    """The record ids of one kind a text names, in order, once each (e.g. prefix "con")."""
    return list(dict.fromkeys(re.findall(rf"\b{prefix}_\w+", text)))


def first(items: Any, what: str) -> Any:
    """The first item, or the task fails saying what was not there."""
    for item in items:
        return item
    raise TaskFailed(f"no {what} in the answer")


def cell(row: dict[str, str], *names: str) -> str:
    """The first of `names` the row has (the agent reads whichever column the table shows)."""
    for name in names:
        if name in row:
            return row[name]
    raise KeyError(f"none of {names} in columns {list(row)}")


# ---------------------------------------------------------------------------------------- the agent


class TaskFailed(Exception):
    """The agent could not go on: a tool it needed was not found, or a call failed unexpectedly."""


@dataclass
class Agent:
    """Calls tools the way an agent in one of the two modes does, and counts what it costs."""

    client: Client
    mode: str
    calls: int = 0
    tokens: int = 0
    described: set[str] = field(default_factory=set)

    async def _raw(self, tool: str, args: dict[str, Any]) -> tuple[str, bool]:
        self.calls += 1
        self.tokens += json_tokens({"name": tool, "arguments": args})
        result = await self.client.call_tool(tool, args)
        text = "\n".join(getattr(c, "text", "") for c in result.content)
        self.tokens += count_tokens(text)
        if self.mode == "all" and result.structured_content is not None:  # what a model is shown
            self.tokens += json_tokens(result.structured_content)
        return text, bool(result.is_error)

    async def call(self, tool: str, args: dict[str, Any], *, words: str, expect_error: bool = False) -> str:
        """Run `tool`; `words` are what the agent would ask find_tools in discover mode."""
        if self.mode == "discover":
            if tool not in self.described:
                found, _ = await self._raw("find_tools", {"query": words})
                if not re.search(rf"(^|[\s,:]){re.escape(tool)}([\s,:]|$)", found, re.M):
                    raise TaskFailed(f"find_tools {words!r} did not offer {tool}")
                await self._raw("describe_tool", {"name": tool})
                self.described.add(tool)
            text, is_error = await self._raw("call_tool", {"name": tool, "arguments": args})
        else:
            text, is_error = await self._raw(tool, args)
        if is_error and not expect_error:
            raise TaskFailed(f"{tool} failed: {text[:300]}")
        return text

    async def all_rows(self, tool: str, args: dict[str, Any], *, words: str) -> list[dict[str, str]]:
        """Every row of a list, following next_cursor if the answer offers one."""
        out: list[dict[str, str]] = []
        cursor: str | None = None
        for _ in range(50):
            text = await self.call(tool, {**args, **({"cursor": cursor} if cursor else {})}, words=words)
            out += rows(text)
            match = re.search(r'cursor="([^"]+)"', text)
            cursor = match.group(1) if match else None
            if cursor is None:
                return out
        raise TaskFailed(f"{tool}: more than 50 pages")


# ---------------------------------------------------------------------------------------- the truth


class Truth:
    """The sandbox's own data, read over its HTTP API (not through the MCP server)."""

    def __init__(self, base_url: str, consumer: str):
        self.http = httpx2.Client(base_url=base_url, headers={
            "Authorization": "Bearer bench-key", "x-apideck-app-id": "bench-app", "x-apideck-consumer-id": consumer,
        })

    def all(self, resource: str, **query: Any) -> list[dict[str, Any]]:
        params = {"limit": 200, **{k: v for k, v in query.items() if k != "path"}}
        out: list[dict[str, Any]] = []
        while True:
            body = self.http.get(f"/crm/{query.get('path', resource)}", params=params).json()
            out += body["data"]
            cursor = ((body.get("meta") or {}).get("cursors") or {}).get("next")
            if not cursor:
                return out
            params["cursor"] = cursor

    def get(self, resource: str, record_id: str) -> dict[str, Any] | None:
        response = self.http.get(f"/crm/{resource}/{record_id}")
        return response.json()["data"] if response.status_code == 200 else None

    def close(self) -> None:
        self.http.close()


def name_of(record: dict[str, Any]) -> str:
    return str(record.get("name") or " ".join(filter(None, (record.get("first_name"), record.get("last_name")))))


def parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------------------- the tasks

Check = tuple[Any, Any]  # (the agent's answer, the truth)
TaskRun = Callable[[Agent, Truth], Awaitable[Check]]


@dataclass(frozen=True)
class Task:
    name: str
    ask: str  # what the user asked
    run: TaskRun


TASKS: list[Task] = []


def task(name: str, ask: str) -> Callable[[TaskRun], TaskRun]:
    def register(fn: TaskRun) -> TaskRun:
        TASKS.append(Task(name, ask, fn))
        return fn
    return register


@task("account contacts", "Who are our contacts at Acme Corporation?")
async def account_contacts(agent: Agent, truth: Truth) -> Check:
    text = await agent.call("get_account_overview", {"company": "Acme Corporation"}, words="account overview")
    answer = sorted(r["id"] for r in rows(text) if r.get("id", "").startswith("con_"))
    expected = sorted(c["id"] for c in truth.all("contacts", **{"filter[company_id]": "com_001"}))
    return answer, expected


@task("open pipeline of an account", "What open deals does Acme have, and how much are they worth in all?")
async def account_open_deals(agent: Agent, truth: Truth) -> Check:
    text = await agent.call("get_account_overview", {"company": "com_001"}, words="account overview")
    total = re.search(r"open opportunities: (\d+), total ([\d,.]+)", text)
    answer = (int(total.group(1)), amount(total.group(2))) if total else None
    opps = truth.all("opportunities", **{"filter[company_id]": "com_001", "filter[status]": "open"})
    return answer, (len(opps), float(sum(o.get("monetary_amount") or 0 for o in opps)))


@task("total across pages", "What is the total amount of all open opportunities?")
async def open_total(agent: Agent, truth: Truth) -> Check:
    found = await agent.all_rows("list_opportunities",  # pages of 20: the read follows the cursors
                                 {"filter": {"status": "open"}, "limit": 20, "max_records": 1000}, words="list deals")
    answer = (len(found), sum(amount(cell(r, "amount", "monetary_amount")) for r in found))
    opps = truth.all("opportunities", **{"filter[status]": "open"})
    return answer, (len(opps), float(sum(o.get("monetary_amount") or 0 for o in opps)))


@task("30-day history", "What did we do with Acme Corporation in the last 30 days?")
async def thirty_days(agent: Agent, truth: Truth) -> Check:
    now = datetime.now(UTC)
    since = now - timedelta(days=30)
    found = await agent.all_rows("list_activities", {"filter": {"company_id": "com_001"},
                                                     "after": since.isoformat(), "before": now.isoformat()},
                                 words="activities in a time window")
    answer = sorted(r["id"] for r in found)
    acts = truth.all("activities", **{"filter[company_id]": "com_001"})
    expected = sorted(a["id"] for a in acts
                      if a.get("activity_datetime") and since <= parse_time(a["activity_datetime"]) < now)
    return answer, expected


@task("owner of an account", "Who owns the Acme Corporation account?")
async def account_owner(agent: Agent, truth: Truth) -> Check:
    card = fields(await agent.call("get_company", {"id": "com_001"}, words="get company"))
    owner_id, answer = id_and_name(card["owner_id"])
    if answer is None:  # no name beside the id: look the user up
        user = fields(await agent.call("get_user", {"id": owner_id}, words="get user"))
        answer = " ".join(filter(None, (user.get("first_name"), user.get("last_name")))) or user.get("name")
    company = truth.get("companies", "com_001") or {}
    return answer, name_of(truth.get("users", company.get("owner_id", "")) or {})


@task("find by email", "Which contact has the email jane.doe@acme.example?")
async def by_email(agent: Agent, truth: Truth) -> Check:
    text = await agent.call("search_crm", {"query": "jane.doe@acme.example"}, words="search")
    answer = ids(text, "con")
    expected = sorted(c["id"] for c in truth.all("contacts")
                      if any(e.get("email") == "jane.doe@acme.example" for e in c.get("emails") or []))
    return answer, expected


@task("custom object", "Which projects are in progress?")
async def active_projects(agent: Agent, truth: Truth) -> Check:
    schemas = rows(await agent.call("list_custom_object_schemas", {}, words="custom object schemas"))
    schema_id = first((r["id"] for r in schemas if r.get("name") == "Project"), "Project schema")
    found = await agent.all_rows("list_custom_objects", {"object_id": schema_id, "max_records": 1000},
                                 words="list custom objects")
    answer = sorted(r["id"] for r in found if re.search(r"(^|; )status=in_progress(;|$)", r.get("fields", "")))
    objects = truth.all("custom_objects", path=f"custom-objects/{schema_id}")
    expected = sorted(o["id"] for o in objects if any(f.get("name") == "status" and f.get("value") == "in_progress"
                                                      for f in o.get("fields") or []))
    return answer, expected


@task("leads by status", "How many qualified leads do we have, and who are they?")
async def qualified_leads(agent: Agent, truth: Truth) -> Check:
    found = await agent.all_rows("list_leads", {"fields": ["name", "status"], "max_records": 1000},
                                 words="list leads")
    answer = sorted(r["id"] for r in found if r.get("status") == "qualified")
    return answer, sorted(lead["id"] for lead in truth.all("leads") if lead.get("status") == "qualified")


@task("users by role", "Who are our customer success managers?")
async def success_managers(agent: Agent, truth: Truth) -> Check:
    found = await agent.all_rows("list_users", {"fields": ["first_name", "last_name", "title"]},
                                 words="list users")
    role = "Customer Success Manager"
    answer = sorted(f"{r['first_name']} {r['last_name']}" for r in found if r.get("title") == role)
    return answer, sorted(name_of(u) for u in truth.all("users") if u.get("title") == role)


@task("pipeline stages", "What are the stages of the Renewals pipeline, in order?")
async def renewal_stages(agent: Agent, truth: Truth) -> Check:
    pipelines = rows(await agent.call("list_pipelines", {}, words="pipeline stages"))
    stages = first((r["stages"] for r in pipelines if r.get("name") == "Renewals"), "Renewals pipeline")
    answer = re.findall(r"(?:^|; )([^;(]+?) \(stg_\w+\)", stages)
    renewals = first((p for p in truth.all("pipelines") if p.get("name") == "Renewals"), "Renewals pipeline")
    return answer, [s["name"] for s in sorted(renewals["stages"], key=lambda s: s.get("display_order") or 0)]


@task("log a call", "Log a call with Jane Doe about pricing, with a note that they want a proposal.")
async def log_call(agent: Agent, truth: Truth) -> Check:
    text = await agent.call("log_interaction", {
        "type": "call", "contact": "Jane Doe", "title": "Pricing call", "note": "They want a proposal by Friday.",
    }, words="log a call")
    activity_id = re.search(r"\b(act_\w+)", text)
    note_id = re.search(r"\b(not_\w+)", text)
    activity = truth.get("activities", activity_id.group(1)) if activity_id else None
    note = truth.get("notes", note_id.group(1)) if note_id else None
    answer = (activity and (activity.get("type"), activity.get("contact_id"), activity.get("title")),
              note and (note.get("contact_id"), note.get("content")))
    return answer, (("call", "con_0001", "Pricing call"), ("con_0001", "They want a proposal by Friday."))


@task("ambiguous name", "Log a meeting with Mark.")
async def ambiguous(agent: Agent, truth: Truth) -> Check:
    before = len(truth.all("activities"))
    text = await agent.call("log_interaction", {"type": "meeting", "contact": "Mark"}, words="log a meeting",
                            expect_error=True)
    offered = sorted(r["id"] for r in rows(text) if r.get("id", "").startswith("con_"))
    marks = sorted(c["id"] for c in truth.all("contacts", **{"filter[name]": "Mark"}))
    # right: nothing written, and every Mark offered to the user to choose from
    return (offered, len(truth.all("activities")) - before), (marks, 0)


@task("move a deal", "Move the Acme Security Suite deal to the Negotiation stage.")
async def move_deal(agent: Agent, truth: Truth) -> Check:
    wanted = {"filter": {"title": "Security Suite", "company_id": "com_001"}}
    found = rows(await agent.call("list_opportunities", wanted, words="list deals"))
    deal = first((r["id"] for r in found), "deal")
    card = fields(await agent.call("get_opportunity", {"id": deal, "fields": ["pipeline_id"]}, words="get deal"))
    pipelines = rows(await agent.call("list_pipelines", {}, words="pipeline stages"))
    pipeline_id, _ = id_and_name(card.get("pipeline_id", ""))
    stages = first((r["stages"] for r in pipelines if r["id"] == pipeline_id), "the deal's pipeline")
    stage_id = first(re.findall(r"(?:^|; )Negotiation \((stg_\w+)\)", stages), "Negotiation stage")
    await agent.call("update_opportunity", {"id": deal, "pipeline_stage_id": stage_id}, words="change deal stage")
    after = truth.get("opportunities", deal) or {}
    return (deal, after.get("pipeline_stage_id")), ("opp_002", "stg_nb_negotiation")


@task("fix a phone number", "Jane Doe's mobile number is now +1 415 555 0199; fix it.")
async def fix_phone(agent: Agent, truth: Truth) -> Check:
    found = await agent.call("search_crm", {"query": "Jane Doe"}, words="search")
    contact = first(ids(found, "con"), "contact")
    await agent.call("update_contact", {"id": contact, "phone_numbers": [{"number": "+1 415 555 0199",
                                                                           "type": "mobile"}]},
                     words="update contact")
    after = truth.get("contacts", contact) or {}
    return [p.get("number") for p in after.get("phone_numbers") or []], ["+1 415 555 0199"]


@task("lead with a note", "Add Grace Hopper of Navy Labs as a lead, with a note that she asked for a demo.")
async def lead_with_note(agent: Agent, truth: Truth) -> Check:
    text = await agent.call("create_lead", {"name": "Grace Hopper", "first_name": "Grace", "last_name": "Hopper",
                                            "company_name": "Navy Labs"}, words="create lead")
    lead_id = re.search(r"\b(lea_\w+)", text)
    assert lead_id, text
    note_text = await agent.call("create_note", {"lead_id": lead_id.group(1), "title": "Demo",
                                                 "content": "Asked for a demo."}, words="add note")
    note_id = re.search(r"\b(not_\w+)", note_text)
    lead = truth.get("leads", lead_id.group(1)) or {}
    note = truth.get("notes", note_id.group(1)) if note_id else {}
    return ((lead.get("name"), lead.get("company_name"), (note or {}).get("lead_id")),
            ("Grace Hopper", "Navy Labs", lead_id.group(1)))


@task("delete a note", "Delete the note 'Org change' on Acme.")
async def delete_note(agent: Agent, truth: Truth) -> Check:
    text = await agent.call("get_account_overview", {"company": "com_001"}, words="account overview")
    note = first((r["id"] for r in rows(text) if r.get("title") == "Org change"), "note 'Org change'")
    await agent.call("delete_note", {"id": note}, words="delete note")
    return truth.get("notes", note), None


# ---------------------------------------------------------------------------------------- running


@dataclass
class Outcome:
    task: Task
    calls: int
    tokens: int
    right: bool
    detail: str


async def run_mode(sandbox: SandboxServer, mode: str) -> list[Outcome]:
    consumer = f"agent-{uuid.uuid4().hex[:10]}"
    settings = Settings(api_key="bench-key", app_id="bench-app", consumer_id=consumer, base_url=sandbox.base_url)
    truth = Truth(sandbox.base_url, consumer)
    outcomes: list[Outcome] = []
    try:
        async with Client(build_server(settings, selection=Selection(tool_mode=mode))) as client:
            for item in TASKS:
                agent = Agent(client, mode)
                try:
                    answer, expected = await item.run(agent, truth)
                    right = answer == expected
                    detail = "" if right else f"answer {answer!r} != truth {expected!r}"
                except (TaskFailed, KeyError, AttributeError, ValueError) as exc:
                    right, detail = False, f"{type(exc).__name__}: {exc}"
                outcomes.append(Outcome(item, agent.calls, agent.tokens, right, detail))
    finally:
        truth.close()
    return outcomes


def table(mode: str, outcomes: list[Outcome]) -> Iterator[str]:
    yield f"\nmode: {mode}\n"
    yield "| task | calls | tokens | right |"
    yield "|---|---:|---:|---|"
    for o in outcomes:
        yield f"| {o.task.name} | {o.calls} | {o.tokens:,} | {'right' if o.right else 'WRONG'} |"
    right = sum(o.right for o in outcomes)
    yield (f"| all {len(outcomes)} tasks | {sum(o.calls for o in outcomes)} | "
           f"{sum(o.tokens for o in outcomes):,} | {right}/{len(outcomes)} right |")
    for o in outcomes:
        if not o.right:
            yield f"- {o.task.name} ({o.task.ask}): {o.detail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=MODES, help="one mode only (default: both)")
    args = parser.parse_args(argv)
    modes = [args.mode] if args.mode else list(MODES)

    async def go() -> bool:
        ok = True
        with SandboxServer(db=":memory:") as sandbox:
            for mode in modes:
                outcomes = await run_mode(sandbox, mode)
                print("\n".join(table(mode, outcomes)))
                ok = ok and all(o.right for o in outcomes)
        return ok

    return 0 if anyio.run(go) else 1


if __name__ == "__main__":
    raise SystemExit(main())
