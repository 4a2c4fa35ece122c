"""The tool registry: every tool this server can offer, each one `Tool` value.

A tool is its name, title, description, argument model, published input and output schema,
annotations, the resources it touches, the OAuth scope it needs, and its handler. Operation tools
are declared here from the contract's operation table; each workflow tool is declared once beside
its handler (`crm_mcp.workflows`). Dispatch, selection, discovery, prompts, confirmation and the
CLI all read `registry()`; nothing else lists tools.

What the tools publish is precomputed by `tools/generate.py` from these declarations into
`crm_mcp/generated/tools.json`: every tool's input schema (building the 50 argument models and
their schemas takes ~0.35 s, which every desktop client would otherwise wait for at start-up),
and the whole published definition of each tool declared in a module of its own (workflows, the
journal's tools), so that start-up does not import those modules (~10 ms): the registry's value
for such a tool loads its module on the tool's first call. A test checks that the file equals
what the declarations derive.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

from crm_mcp.operations import OPERATIONS, Operation

if TYPE_CHECKING:
    from pydantic import BaseModel

    from crm_mcp.runtime import Run, ToolResult

TOOLS_JSON = "tools.json"  # in crm_mcp/generated/, written by tools/generate.py

Scope = Literal["crm:read", "crm:write", "crm:delete"]
WORKFLOWS = "workflows"  # the toolset of the workflow tools; an operation tool's toolset is its resource

# How a tool runs once its arguments are valid: (the call's context, the validated arguments).
Handler = Callable[["Run", Any], Awaitable["ToolResult"]]

# What the operation table cannot say: how an agent uses the resource.
RESOURCE_HINTS: dict[tuple[str, str], str] = {
    ("activities", "create"): "Log a call, meeting, email or task; link contact_id, company_id, opportunity_id.",
    ("notes", "create"): "Attach with contact_id, company_id, opportunity_id or lead_id.",
    ("opportunities", "update"): "Move stage with pipeline_stage_id (see list_pipelines).",
}

_DESCRIPTIONS = {
    "create": "Create {a} {singular}.",
    "update": "Change {a} {singular}; only the fields given change.",
    "delete": "Delete {a} {singular}; undo_change re-creates it.",
}

_TITLES = {"list": "List {plural}", "get": "Get {singular}", "create": "Create {singular}",
           "update": "Update {singular}", "delete": "Delete {singular}"}

_SCOPES: dict[str, Scope] = {"list": "crm:read", "get": "crm:read", "create": "crm:write",
                             "update": "crm:write", "delete": "crm:delete"}

# Annotations true to each kind of operation. The protocol's defaults are readOnlyHint=false,
# destructiveHint=true, idempotentHint=false, openWorldHint=true (every tool here reaches an
# outside CRM, so open-world holds for all), and destructive/idempotent only mean something
# when readOnlyHint is false. Only hints that differ from those defaults are sent: 50 tools
# x 4 hints spelled out would cost ~900 tokens on every turn to say what the defaults say.
_ANNOTATIONS: dict[str, dict[str, bool]] = {
    "list": {"readOnlyHint": True},
    "get": {"readOnlyHint": True},
    "create": {"destructiveHint": False},  # adds a record, changes none; not idempotent
    "update": {"idempotentHint": True},  # overwrites fields: destructive; same call twice = same state
    "delete": {"idempotentHint": True},
}


@dataclass(frozen=True)
class Tool:
    """One tool: what tools/list publishes, what validates and runs a call, what it touches."""

    name: str
    title: str
    description: str
    args: Callable[[], type[BaseModel]]  # the argument model, built on first use
    output_schema: dict[str, Any]
    annotations: dict[str, bool]
    resources: frozenset[str]  # what it reads or writes: --resources keeps it when all are chosen
    scope: Scope  # the OAuth scope a caller needs
    toolset: str  # its resource for an operation tool; WORKFLOWS for a workflow tool
    handler: Handler
    operation: Operation | None = None  # the contract operation an operation tool runs
    input_schema: dict[str, Any] = field(default_factory=dict)  # published: see `registry()`

    @property
    def kind(self) -> str:
        """list | get | create | update | delete, or workflow."""
        return self.operation.action if self.operation is not None else "workflow"

    @property
    def writes(self) -> bool:
        """Whether calling it can change the CRM."""
        return self.scope != "crm:read"

    def to_wire(self) -> dict[str, Any]:
        """The tool's JSON as tools/list returns it."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "inputSchema": self.input_schema,
            "outputSchema": self.output_schema,
            "annotations": self.annotations,
        }


def derive_input_schema(tool: Tool) -> dict[str, Any]:
    """The input schema `tool` publishes: the compaction of its argument model."""
    from crm_mcp.schema_compact import compact_schema

    schema = tool.args().model_json_schema(by_alias=True)
    return compact_schema(schema)


def _nouns(op: Operation) -> dict[str, str]:
    from crm_mcp.operations import resource

    plural = op.resource.replace("_", " ")
    singular = resource(op.resource).singular.replace("_", " ")
    return {"plural": plural, "singular": singular, "a": "an" if singular[0] in "aeio" else "a"}  # "a user"


def describe_operation(op: Operation) -> str:
    """What the tool does, from what it really takes: a list without filters is not "filterable"."""
    nouns = _nouns(op)
    if op.action == "list":
        ways = [w for w, p in (("filter", op.filter_model), ("sort", op.sort_model)) if p]
        if "cursor" in op.query_params:
            ways.append("page with cursor")
        text = f"Find {nouns['plural']}" + (f": {', '.join(ways)}." if ways else ".")
    elif op.action == "get":
        text = f"One {nouns['singular']} by id: " + (
            'key fields; fields=["*"] for all.' if "fields" in op.query_params else "all fields."
        )
    else:
        text = _DESCRIPTIONS[op.action].format(**nouns)
    hint = RESOURCE_HINTS.get((op.resource, op.action))
    return f"{text} {hint}" if hint else text


def operation_tool(op: Operation) -> Tool:
    """The declaration of the tool that runs `op` (its input schema is published by `registry()`)."""
    from crm_mcp.render import output_schema  # render owns the result shapes
    from crm_mcp.tool_args import args_model

    async def handler(run: Run, args: Any) -> ToolResult:
        from crm_mcp.run_operation import run_operation  # on the first call (start-up need not load it)

        return await run_operation(run, op, args)

    return Tool(
        name=op.tool_name,
        title=_TITLES[op.action].format(**_nouns(op)).capitalize(),
        description=describe_operation(op),
        args=lambda: args_model(op),
        output_schema=output_schema(op.action),
        annotations=dict(_ANNOTATIONS[op.action]),
        resources=frozenset({op.resource}),
        scope=_SCOPES[op.action],
        toolset=op.resource,
        handler=handler,
        operation=op,
    )


# Where the tools that are not operations are declared, beside their handlers, in registry
# order: "module:attribute", the attribute a Tool or a tuple of them.
DECLARED_IN = (
    "crm_mcp.workflows.search:search_crm",
    "crm_mcp.workflows.overview:get_account_overview",
    "crm_mcp.workflows.log_interaction:log_interaction",
    "crm_mcp.changes_tools:CHANGE_TOOLS",
)


def _declared(where: str) -> tuple[Tool, ...]:
    module, _, attribute = where.partition(":")
    value = getattr(importlib.import_module(module), attribute)
    return value if isinstance(value, tuple) else (value,)


def declarations() -> tuple[Tool, ...]:
    """Every tool, unpublished: the 50 operation tools in the contract's order, the workflows, then
    the write journal's tools (undo_change, list_changes, crm_changes)."""
    return (*(operation_tool(op) for op in OPERATIONS), *(t for where in DECLARED_IN for t in _declared(where)))


def tools_json() -> str:
    """What `tools/generate.py` writes: by tool name, its published input schema; for a tool
    declared in a module of its own, also the rest of its published definition and where it is
    declared (`DECLARED_IN`)."""
    rows: dict[str, dict[str, Any]] = {
        op.tool_name: {"inputSchema": derive_input_schema(operation_tool(op))} for op in OPERATIONS
    }
    for where in DECLARED_IN:
        for t in _declared(where):
            rows[t.name] = {
                "declaredIn": where, "title": t.title, "description": t.description,
                "outputSchema": t.output_schema, "annotations": t.annotations,
                "resources": sorted(t.resources), "scope": t.scope, "toolset": t.toolset,
                "inputSchema": derive_input_schema(t),
            }
    return json.dumps(rows, indent=1, ensure_ascii=False) + "\n"


def _declared_tool(name: str, row: dict[str, Any]) -> Tool:
    """The registry's value for a tool declared in a module of its own, from its published row:
    its argument model and handler are the declaration's, its module imported on first use."""

    @cache
    def declaration() -> Tool:
        return next(t for t in _declared(row["declaredIn"]) if t.name == name)

    async def handler(run: Run, args: Any) -> ToolResult:
        return await declaration().handler(run, args)

    return Tool(
        name=name, title=row["title"], description=row["description"], args=lambda: declaration().args(),
        output_schema=row["outputSchema"], annotations=row["annotations"], resources=frozenset(row["resources"]),
        scope=row["scope"], toolset=row["toolset"], handler=handler, input_schema=row["inputSchema"],
    )


@cache
def registry() -> tuple[Tool, ...]:
    """Every tool this server knows, published (stable order; the selection narrows it)."""
    text = resources.files("crm_mcp.generated").joinpath(TOOLS_JSON).read_text(encoding="utf-8")
    rows: dict[str, dict[str, Any]] = json.loads(text)
    operations = (replace(operation_tool(op), input_schema=rows[op.tool_name]["inputSchema"]) for op in OPERATIONS)
    return (*operations, *(_declared_tool(name, row) for name, row in rows.items() if "declaredIn" in row))


def by_name() -> dict[str, Tool]:
    return {t.name: t for t in registry()}


def operation_tools() -> tuple[Tool, ...]:
    """The 50 operation tools, in the contract's order."""
    return tuple(t for t in registry() if t.operation is not None)
