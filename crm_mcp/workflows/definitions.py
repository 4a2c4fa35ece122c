"""The workflow tools as tools/list shows them.

Input schemas are hand-written in the compact style of `schema_compact` (a test checks that they
equal the compaction of the pydantic models in `args` that validate the calls) so that tools/list
stays cheap to build and small.
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

_MISSING = {"items": {"type": "string"}}

_DEFS: tuple[dict[str, Any], ...] = (
    {
        "name": "search_crm",
        "title": "Search the CRM",
        "description": "Find companies, contacts, leads and opportunities by name, email, phone or title "
        "in one call; best matches first, each with its resource and id.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {"description": "Name, email, phone or title, or part"},
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
            "properties": {"company": {"description": "Company id or name"}},
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
                "type": {"enum": ["call", "meeting", "email"]},
                "title": {},
                "description": {},
                "contact": {"description": "Contact id, name or email"},
                "company_id": {},
                "opportunity_id": {},
                "when": {"description": "ISO 8601; default now"},
                "duration_minutes": {"type": "integer", "maximum": 1440, "minimum": 0},
                "note": {"description": "Also add this note"},
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

