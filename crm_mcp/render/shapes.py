"""The shape of each result's structured content: the outputSchema of a list, a get and a write tool.

Apart from the renderer, so that declaring the tools (at start-up) does not load it.
"""

from __future__ import annotations

from typing import Any

# The records themselves are in the text content; these index it. tools/list carries one schema
# per tool (50 tools, every turn), so they stay tiny: a list's count, cursor and how many rows a cut
# left as bare ids; a record's id. A write's structured content is `{"id": ...}` too, but its schema
# is the bare object: 30 write tools, and the id is in the text ("Created contact con_0201.").
LIST_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"count": {"type": "integer"}, "next_cursor": {"type": "string"}, "ids_only": {"type": "integer"}},
}
RECORD_OUTPUT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"id": {"type": "string"}}}
WRITE_OUTPUT_SCHEMA: dict[str, Any] = {"type": "object"}
_SCHEMAS = {"list": LIST_OUTPUT_SCHEMA, "get": RECORD_OUTPUT_SCHEMA}


def output_schema(action: str) -> dict[str, Any]:
    """The outputSchema of a tool of kind list, get, create, update or delete."""
    return _SCHEMAS.get(action, WRITE_OUTPUT_SCHEMA)
