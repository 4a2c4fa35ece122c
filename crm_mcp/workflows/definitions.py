"""The workflow tools as tools/list shows them.

Input schemas are written out as `schema_compact` publishes them (every argument typed; a test
checks that they equal the compaction of the pydantic models in `args` that validate the calls)
so that tools/list stays cheap to build.
"""

from __future__ import annotations

from typing import Any

from crm_mcp.tools import ToolDef

# The resources each workflow reads or writes: a tool selection without them leaves the workflow out.
WORKFLOW_RESOURCES: dict[str, frozenset[str]] = {
    "search_crm": frozenset({"companies", "contacts", "leads", "opportunities"}),
    "get_account_overview": frozenset(
        {"companies", "contacts", "opportunities", "pipelines", "activities", "notes"}
    ),
    "log_interaction": frozenset({"activities", "notes", "contacts", "opportunities"}),
}

_MISSING = {"type": "array", "items": {"type": "string"}}

_DEFS: tuple[dict[str, Any], ...] = (
    {
        "name": "search_crm",
        "title": "Search the CRM",
        "description": "Find companies, contacts, leads and opportunities by name, email, phone or title "
        "in one call; best matches first, each with its resource and id.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "Name, email, phone or title; matched as the connector's "
                          "filters match"},
                "limit": {"type": "integer", "maximum": 50, "minimum": 1},
            },
            "required": ["query"],
        },
        "outputSchema": {
            "type": "object",
            "properties": {"count": {"type": "integer"}, "missing": _MISSING},
        },
        "annotations": {"readOnlyHint": True},
    },
    {
        "name": "get_account_overview",
        "title": "Account overview",
        "description": "A company at a glance: its record, contacts, open opportunities with stage and "
        "amount, latest activities and notes.",
        "inputSchema": {
            "type": "object",
            "properties": {"company": {"type": "string", "description": "Company id or name"}},
            "required": ["company"],
        },
        "outputSchema": {"type": "object", "properties": {"id": {"type": "string"}, "missing": _MISSING}},
        "annotations": {"readOnlyHint": True},
    },
    {
        "name": "log_interaction",
        "title": "Log an interaction",
        "description": "Log a call, meeting or email as an activity linked to its contact, company and open "
        "opportunity (both found from the contact if left out); with note, also add a note. Returns both ids.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "type": {"type": "string", "enum": ["call", "meeting", "email"]},
                "title": {"type": "string"},
                "description": {"type": "string"},
                "contact": {"type": "string", "description": "Contact id, name or email"},
                "company_id": {"type": "string"},
                "opportunity_id": {"type": "string"},
                "when": {"type": "string", "description": "ISO 8601 date or date-time; default now"},
                "duration_minutes": {"type": "integer", "maximum": 1440, "minimum": 0},
                "note": {"type": "string", "description": "Also add this note"},
            },
            "required": ["type"],
        },
        "outputSchema": {
            "type": "object",
            "properties": {
                "activity_id": {"type": "string"}, "note_id": {"type": "string"}, "missing": _MISSING,
            },
        },
        "annotations": {"destructiveHint": False},
    },
)


def workflow_tools() -> tuple[ToolDef, ...]:
    """The workflow tools, in a stable order."""
    return tuple(
        ToolDef(
            name=d["name"],
            title=d["title"],
            description=d["description"],
            input_schema=d["inputSchema"],
            output_schema=d["outputSchema"],
            annotations=dict(d["annotations"]),
            kind="workflow",
        )
        for d in _DEFS
    )


WORKFLOW_NAMES = tuple(d["name"] for d in _DEFS)

