"""Discovery mode (`--tool-mode discover`): three meta-tools instead of the whole tool list.

An agent that uses a few CRM tools per conversation need not pay for 53 definitions on every turn.
In discover mode tools/list offers only:

- `find_tools(query?, resource?)`: the tools that match some words ("log a call", "deal stage") or
  a resource, one line each (name: description); with neither, every tool, grouped by resource;
- `describe_tool(name)`: one tool's input schema, exactly the compact schema tools/list would
  publish (`crm_mcp.schema_compact`), and its read-only hint;
- `call_tool(name, arguments)`: run it. The named tool is looked up in the registry and run
  through the same pipeline as a direct call (`crm_mcp.runtime.call_tool`: validation,
  confirmation, progress, logging, redaction), so discover mode changes what is listed, never
  what a call does. Only the answer's text is passed on: it carries everything the structured
  content would.

Only the tools the selection offers (--read-only, --resources, --tools, --workflows) are found,
described and run; a withheld tool answers with the same isError text as a direct call. The
meta-tools and what they can reach are fixed when the server is built. Under OAuth, `find_tools`
and `describe_tool` show a caller only the tools its token's scopes allow, as tools/list does
(`crm_mcp.auth.scopes`); describing another names the scope it needs.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crm_mcp.auth.scopes import allows, granted_scopes, scope_refusal
from crm_mcp.runtime import validation_message
from crm_mcp.selection import ToolSet
from crm_mcp.tools import WORKFLOWS, Tool

META_NAMES = ("find_tools", "describe_tool", "call_tool")
MAX_FOUND = 8  # tools find_tools lists for a query

# run(ctx, params, tool, arguments): `tool` through the pipeline, for the request of `params`
Dispatch = Callable[[Any, types.CallToolRequestParams, Tool, dict[str, Any] | None], Awaitable[Any]]

# Words an agent may use for a kind of operation or a resource, mapped to the words of the tools.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "find": ("list", "search"), "search": ("list",), "lookup": ("list", "search"), "all": ("list",),
    "browse": ("list",), "show": ("list", "get"), "fetch": ("get",), "read": ("get", "list"),
    "detail": ("get",), "add": ("create",), "new": ("create",), "make": ("create",), "log": ("create",),
    "record": ("create", "log"), "edit": ("update",), "change": ("update",), "modify": ("update",),
    "set": ("update",), "move": ("update",), "rename": ("update",), "remove": ("delete",), "erase": ("delete",),
    "person": ("contact",), "people": ("contact",), "deal": ("opportunity",), "account": ("company", "overview"),
    "organization": ("company",), "organisation": ("company",), "org": ("company",), "business": ("company",),
    "call": ("activity", "interaction"), "meeting": ("activity", "interaction"), "task": ("activity",),
    "event": ("activity",), "email": ("activity", "interaction"), "comment": ("note",), "stage": ("pipeline",),
    "prospect": ("lead",), "rep": ("user",), "owner": ("user",), "team": ("user",), "summary": ("overview",),
}
# What a query asks for: a question ranks the tools that read (and the workflows that answer
# questions) first, an action the tools that write.
QUESTION_WORDS = frozenset({"what", "who", "which", "show", "how", "when", "where", "list", "find", "get", "is",
                            "are", "do", "does", "did", "many", "much", "search", "lookup"})
ACTION_WORDS = frozenset({"log", "add", "create", "new", "move", "delete", "remove", "update", "change", "edit",
                          "set", "fix", "rename", "record", "make", "erase", "modify", "assign", "mark"})
STOPWORDS = frozenset({"a", "an", "the", "to", "of", "for", "by", "with", "and", "or", "in", "on", "at", "my", "our",
                       "all", "any", "from", "into", "this", "that",
                       # words that say a query is a question, not what it is about (so "what" does
                       # not match a description that happens to start with "What")
                       "what", "who", "which", "how", "when", "where", "is", "are", "do", "does", "did",
                       "many", "much", "have", "has", "we", "us", "i"})


def _stem(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def _words(text: str) -> set[str]:
    return {_stem(w) for w in re.findall(r"[a-z0-9]+", text.lower())}


class FindArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    query: str | None = Field(None, max_length=200)
    resource: str | None = None


class DescribeArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(max_length=128)


class CallArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(max_length=128)
    arguments: dict[str, Any] | None = None


_ARG_MODELS: dict[str, type[BaseModel]] = {"find_tools": FindArgs, "describe_tool": DescribeArgs, "call_tool": CallArgs}


@dataclass(frozen=True)
class _Entry:
    tool: Tool
    name_words: frozenset[str]
    resource_words: frozenset[str]
    text_words: frozenset[str]
    resources: frozenset[str]


def meta_definitions(resources: Iterable[str], *, read_only: bool) -> list[dict[str, Any]]:
    """The three meta-tools as tools/list publishes them (no outputSchema: find and describe answer
    in text; call_tool answers with whatever the called tool answers)."""
    found_hint = {"readOnlyHint": True, "openWorldHint": False}
    return [
        {
            "name": "find_tools",
            "title": "Find tools",
            "description": "Find this server's CRM tools by words (e.g. \"log a call\") or resource. "
            "No arguments: all tools by resource.",
            "inputSchema": {
                "type": "object",
                "properties": {"query": {"type": "string"}, "resource": {"type": "string", "enum": list(resources)}},
            },
            "annotations": found_hint,
        },
        {
            "name": "describe_tool",
            "title": "Describe a tool",
            "description": "A tool's arguments as JSON Schema.",
            "inputSchema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
            "annotations": found_hint,
        },
        {
            "name": "call_tool",
            "title": "Call a tool",
            "description": "Run a CRM tool by name with its arguments.",
            "inputSchema": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "arguments": {"type": "object"}},
                "required": ["name"],
            },
            "annotations": {"readOnlyHint": True} if read_only else {},
        },
    ]


def _wire(row: Mapping[str, Any]) -> types.Tool:
    hints = row["annotations"]
    return types.Tool(
        name=row["name"],
        title=row["title"],
        description=row["description"],
        input_schema=row["inputSchema"],
        annotations=types.ToolAnnotations(
            read_only_hint=hints.get("readOnlyHint"), open_world_hint=hints.get("openWorldHint")
        ) if hints else None,
    )


class Discovery:
    """The meta-tools of one server: what they find, describe and run is the `toolset`'s offer."""

    def __init__(self, toolset: ToolSet, dispatch: Dispatch, *, read_only: bool = False):
        self.offered = {t.name: t for t in toolset.offered}
        self.withheld = dict(toolset.withheld)
        self._dispatch = dispatch
        self._entries = [self._entry(t) for t in toolset.offered]
        self._withheld_entries = [self._entry(t) for t in _known_tools() if t.name in self.withheld]
        self.resources = tuple(dict.fromkeys(r for e in self._entries for r in sorted(e.resources)))
        resource_order = _resource_order()
        self.resources = tuple(sorted(self.resources, key=lambda r: resource_order.get(r, 99)))
        self.definitions = meta_definitions(self.resources, read_only=read_only)
        self.tools = [_wire(d) for d in self.definitions]
        self.names = frozenset(META_NAMES)

    @staticmethod
    def _entry(tool: Tool) -> _Entry:
        resources = tool.resources
        resource_words = set()
        for r in resources if tool.toolset != WORKFLOWS else ():
            resource_words |= _words(r.replace("_", " "))
        return _Entry(
            tool,
            frozenset(_words(tool.name.replace("_", " "))),
            frozenset(resource_words),
            frozenset(_words(f"{tool.title} {tool.description}")),
            frozenset(resources),
        )

    # ---------------------------------------------------------------------------------- calls

    async def call(self, ctx: Any, params: types.CallToolRequestParams) -> Any:
        """Answer a call of one of the meta-tools."""
        model = _ARG_MODELS[params.name]
        try:
            args: Any = model.model_validate(dict(params.arguments or {}))
        except ValidationError as exc:
            return _result(validation_message(params.name, exc), error=True)
        request = getattr(ctx, "request", None)  # OAuth: its token's scopes narrow what is found and described
        if params.name == "find_tools":
            return self.find(args.query, args.resource, request)
        if params.name == "describe_tool":
            return self.describe(args.name, request)
        return await self.run(ctx, params, args.name, args.arguments)

    def find(self, query: str | None, resource: str | None, request: Any = None) -> types.CallToolResult:
        """`request`: the MCP request's HTTP request (OAuth: tools its token does not allow are not found)."""
        if resource is not None and resource not in self.resources:
            return _result(f"Unknown resource {json.dumps(resource)}. Resources: {', '.join(self.resources)}.",
                           error=True)
        entries = [e for e in self._visible(granted_scopes(request)) if resource is None or resource in e.resources]
        words = [w for w in re.findall(r"[a-z0-9]+", (query or "").lower()) if w not in STOPWORDS]
        if not words:
            if resource is not None:
                return self._lines(entries, f"{len(entries)} {resource} tools")
            return self._index(entries)
        scored = [(self._score(e, words), i, e) for i, e in enumerate(entries)]
        off_scored = [(self._score(e, words), i, e) for i, e in enumerate(self._withheld_entries)
                      if resource is None or resource in e.resources]
        best = max((s for s, _, _ in (*scored, *off_scored)), default=0)
        writes_first = _wants_write(query or "")

        def ranked(rows: list[tuple[int, int, _Entry]]) -> list[_Entry]:
            found = [(s, i, e) for s, i, e in rows if s > 0 and s * 2 > best]
            if writes_first is None:
                order = sorted(found, key=lambda x: (-x[0], x[1]))
            else:  # the kind asked for first, each kind by score
                order = sorted(found, key=lambda x: (x[2].tool.writes != writes_first, -x[0], x[1]))
            return [e for _, _, e in order][:MAX_FOUND]

        hits = ranked(scored)
        off = [e.tool.name for e in ranked(off_scored)]
        if not hits:
            text = f"No tool matches {json.dumps(query)}. find_tools with no arguments lists them all."
            return _result(text + (f"\nNot enabled on this server: {', '.join(off)}." if off else ""))
        return self._lines(hits, f"{len(hits)} tools", off)

    @staticmethod
    def _score(entry: _Entry, words: list[str]) -> int:
        score = 0
        for word in words:
            stem = _stem(word)
            options = {stem, *(_stem(s) for s in SYNONYMS.get(stem, SYNONYMS.get(word, ())))}
            if options & entry.name_words:
                score += 3 if stem in entry.name_words else 2
            elif options & entry.resource_words:
                score += 2
            elif options & entry.text_words:
                score += 1
        return score

    def best_matches(self, words: list[str], limit: int = 3) -> list[str]:
        """The offered tools that score best for `words` (with find_tools' synonyms)."""
        scored = [(self._score(e, words), i, e) for i, e in enumerate(self._entries)]
        best = max((s for s, _, _ in scored), default=0)
        return [e.tool.name for s, _, e in sorted(scored, key=lambda x: (-x[0], x[1])) if s == best > 0][:limit]

    def _lines(self, entries: list[_Entry], head: str, off: list[str] | None = None) -> types.CallToolResult:
        lines = [f"{head} (describe_tool: arguments; call_tool: run):"]
        lines += [f"{e.tool.name}: {e.tool.description}" for e in entries]
        if off:
            lines.append(f"Not enabled on this server: {', '.join(off)}.")
        return _result("\n".join(lines))

    def _visible(self, granted: frozenset[str] | None) -> list[_Entry]:
        return self._entries if granted is None else [e for e in self._entries if allows(granted, e.tool.name)]

    def _index(self, entries: list[_Entry]) -> types.CallToolResult:
        groups: dict[str, list[str]] = {}
        for e in entries:
            key = e.tool.toolset
            groups.setdefault(key, []).append(e.tool.name)
        lines = ["Tools by resource (find_tools with words or resource: descriptions):"]
        lines += [f"{k}: {', '.join(v)}" for k, v in groups.items()]
        if self.withheld:
            lines.append(f"{len(self.withheld)} more tools are not enabled on this server.")
        return _result("\n".join(lines))

    def describe(self, name: str, request: Any = None) -> types.CallToolResult:
        """`request`: the MCP request's HTTP request (OAuth: a tool the token does not allow is refused)."""
        tool = self.offered.get(name)
        if tool is None:
            return self._missing(name)
        refusal = scope_refusal(request, name)
        if refusal is not None:
            return _result(refusal, error=True)
        head = f"{tool.name}: {tool.description}"
        if tool.annotations.get("readOnlyHint"):
            head += " Read-only."
        schema = json.dumps(tool.input_schema, separators=(",", ":"), ensure_ascii=False)
        return _result(f"{head}\narguments: {schema}")

    async def run(
        self, ctx: Any, params: types.CallToolRequestParams, name: str, arguments: dict[str, Any] | None
    ) -> Any:
        """Run tool `name` through the pipeline as if it had come directly: the request's `_meta`
        (progress token) and multi-round-trip fields are those of this call."""
        if name in self.names:
            return _result(f"{name} is a meta-tool: call it directly, not through call_tool.", error=True)
        if name not in self.offered:
            return self._missing(name)
        result = await self._dispatch(ctx, params, self.offered[name], arguments or {})
        if not isinstance(result, types.CallToolResult):
            return result  # the delete confirmation's question (2026-07-28): answered by retrying this call
        # Text only: every value of a tool's structured content is also in its text (a test checks
        # this), call_tool has no output schema for a program to rely on, and discover mode is for
        # agents that count tokens, who would otherwise pay for the ids and cursor twice.
        return result.model_copy(update={"structured_content": None})

    def _missing(self, name: str) -> types.CallToolResult:
        if name in self.withheld:
            return _result(self.withheld[name], error=True)
        words = re.findall(r"[a-z0-9]+", name.lower())
        # a name in other words ("list_deals" -> list_opportunities) first, then a misspelt one
        close = self.best_matches(words) if any(_stem(w) in SYNONYMS or w in SYNONYMS for w in words) else []
        close += [c for c in difflib.get_close_matches(name, list(self.offered), n=3, cutoff=0.6) if c not in close]
        close = close[:3]
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        return _result(f"No tool named {json.dumps(name)} on this server.{hint} find_tools lists them.", error=True)


def _wants_write(query: str) -> bool | None:
    """True when the query asks for an action, False for a question, None when it says neither."""
    words = re.findall(r"[a-z0-9]+", query.lower())
    if "?" in query or (words and words[0] in QUESTION_WORDS) or "how many" in " ".join(words):
        return False
    if ACTION_WORDS & set(words):
        return True
    return None


def _result(text: str, *, error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=error)


def _known_tools() -> tuple[Tool, ...]:
    from crm_mcp.tools import registry

    return registry()


def _resource_order() -> dict[str, int]:
    from crm_mcp.operations import RESOURCES

    return {r.name: i for i, r in enumerate(RESOURCES)}
