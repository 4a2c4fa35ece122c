"""One MCP tool per operation of the contract: names, titles, descriptions, schemas, annotations.

Everything here is derived from the generated operation table; nothing is written per
resource except a one-line hint where the contract's names alone don't tell an agent how the
resource is used (how notes attach, how an opportunity changes stage).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from crm_mcp.operations import OPERATIONS, Operation, operation

TOOLS_JSON = "tools.json"  # in crm_mcp/generated/, written by tools/generate.py

KINDS = ("list", "get", "create", "update", "delete")

# What the operation table cannot say: how an agent uses the resource.
RESOURCE_HINTS: dict[tuple[str, str], str] = {
    ("activities", "create"): "Log a call, meeting, email or task; link contact_id, company_id, opportunity_id.",
    ("notes", "create"): "Attach with contact_id, company_id, opportunity_id or lead_id.",
    ("opportunities", "update"): "Move stage with pipeline_stage_id (see list_pipelines).",
}

_DESCRIPTIONS = {
    "list": "Find {plural}: filter, sort, page with cursor.",
    "get": "One {singular} by id: key fields; fields=[\"*\"] for all.",
    "create": "Create {a} {singular}.",
    "update": "Change {a} {singular}; only the fields given change.",
    "delete": "Delete {a} {singular} by id. Cannot be undone.",
}

_TITLES = {"list": "List {plural}", "get": "Get {singular}", "create": "Create {singular}",
           "update": "Update {singular}", "delete": "Delete {singular}"}

# Annotations true to each kind of operation. The protocol's defaults are readOnlyHint=false,
# destructiveHint=true, idempotentHint=false, openWorldHint=true (every tool here reaches an
# outside CRM, so open-world holds for all), and destructive/idempotent only mean something
# when readOnlyHint is false. Only hints that differ from those defaults are sent: 50 tools
# x 4 hints spelled out would cost ~900 tokens on every turn to say what the defaults say.
ANNOTATION_DEFAULTS = {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": True}
_ANNOTATIONS: dict[str, dict[str, bool]] = {
    "list": {"readOnlyHint": True},
    "get": {"readOnlyHint": True},
    "create": {"destructiveHint": False},  # adds a record, changes none; not idempotent
    "update": {"idempotentHint": True},  # overwrites fields: destructive; same call twice = same state
    "delete": {"idempotentHint": True},
}


@dataclass(frozen=True)
class ToolDef:
    """A tool as tools/list publishes it, with the operation it runs (None for workflow tools)."""

    name: str
    title: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    annotations: dict[str, bool]
    kind: str  # list | get | create | update | delete | workflow
    operation: Operation | None = None

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


def _nouns(op: Operation) -> dict[str, str]:
    plural = op.resource.replace("_", " ")
    singular = plural[:-3] + "y" if plural.endswith("ies") else plural.removesuffix("s")
    return {"plural": plural, "singular": singular, "a": "an" if singular[0] in "aeio" else "a"}  # "a user"


def build_operation_tool(op: Operation) -> ToolDef:
    """The tool for `op`, computed from the models (~7 ms each; see `operation_tools`)."""
    from crm_mcp.render import output_schema  # render owns the result shapes
    from crm_mcp.schema_compact import compact_schema
    from crm_mcp.tool_args import args_model

    nouns = _nouns(op)
    description = _DESCRIPTIONS[op.action].format(**nouns)
    hint = RESOURCE_HINTS.get((op.resource, op.action))
    if hint:
        description += " " + hint
    schema = compact_schema(args_model(op).model_json_schema(by_alias=True))
    return ToolDef(
        name=op.tool_name,
        title=_TITLES[op.action].format(**nouns).capitalize(),
        description=description,
        input_schema=schema,
        output_schema=output_schema(op.action),
        annotations=dict(_ANNOTATIONS[op.action]),
        kind=op.action,
        operation=op,
    )


def build_operation_tools() -> tuple[ToolDef, ...]:
    """All 50 operation tools computed afresh, in the contract's order."""
    return tuple(build_operation_tool(op) for op in OPERATIONS)


def tools_json(tools: tuple[ToolDef, ...]) -> str:
    """The precomputed tool list that `tools/generate.py` writes to crm_mcp/generated/tools.json."""
    rows = [{**t.to_wire(), "kind": t.kind} for t in tools]
    return json.dumps(rows, indent=1, ensure_ascii=False) + "\n"


@cache
def operation_tools() -> tuple[ToolDef, ...]:
    """All 50 operation tools, in the contract's order (stable across runs).

    Read from the list precomputed at generation time: building the 50 argument models and
    their schemas takes ~0.35 s, which every desktop client would otherwise wait for at start-up
    (a test checks that the file equals what `build_operation_tools` computes)."""
    text = resources.files("crm_mcp.generated").joinpath(TOOLS_JSON).read_text(encoding="utf-8")
    return tuple(
        ToolDef(
            name=row["name"],
            title=row["title"],
            description=row["description"],
            input_schema=row["inputSchema"],
            output_schema=row["outputSchema"],
            annotations=row["annotations"],
            kind=row["kind"],
            operation=operation(row["name"]),
        )
        for row in json.loads(text)
    )
