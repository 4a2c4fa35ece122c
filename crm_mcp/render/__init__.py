"""Result shaping: CRM records as compact text for an agent's context window, plus a tiny index.

Pure functions, no I/O. Each returns `Rendered(text, structured)`. `text`, the tool result's text
content, carries the data; `structured`, its `structuredContent`, is a small index (a list's count,
next cursor and how many rows a cut left as bare ids; a record's or a write's id) that validates
against the tool's `output_schema(action)`. The agent pays for both, so no field is written twice.

- `render_list`: a table. A header of field names, then one line per record with the columns
  that matter most (the contract's weights: critical, high, then some medium; ids kept as ids),
  chosen within a per-row token budget; then the count and the next cursor with how to use it.
  `fields=[...]` shows exactly those fields. Every record on the page is at least named by id; a
  cut made to fit `max_tokens` is announced with the way to get the rest.
- `render_record`: `field: value` lines. By default a card of the most important non-empty fields
  within a token budget, then how many were left out and how to see them (`fields=["*"]`: all).
- `render_write`: "Created contact con_0201." and the key fields it stored; an update, each field
  it changed as `old -> new`.

Headers are the records' own field names (those `fields` takes; `unknown_fields` says why one
is not). An id is followed by the name of what it points to when the record carries it or the
caller passes it (`names`, from `crm_mcp.names`).

CRM text is data, not instructions: every result opens with one fixed frame line saying so, and
every CRM string is written inline; one that holds a line break, `|`, a quote, a backslash, or a
control, invisible or bidirectional character is written as a JSON string literal, so no record
content can start a line of its own or pass for the server's words.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crm_mcp.lazy_import import load_attribute

if TYPE_CHECKING:
    from crm_mcp.render.columns import unknown_fields, valid_fields
    from crm_mcp.render.shapes import LIST_OUTPUT_SCHEMA, RECORD_OUTPUT_SCHEMA, WRITE_OUTPUT_SCHEMA, output_schema
    from crm_mcp.render.values import estimate_tokens
    from crm_mcp.render.views import (
        CARD_TOKENS,
        FRAME,
        ROW_TOKENS,
        Rendered,
        render_list,
        render_record,
        render_write,
        table,
    )

# Loaded on first use (PEP 562): start-up declares the tools with their output schemas (`shapes`)
# and leaves the renderer (~6 ms of imports) to the first call.
_FROM = {
    "columns": ("unknown_fields", "valid_fields"),
    "shapes": ("LIST_OUTPUT_SCHEMA", "RECORD_OUTPUT_SCHEMA", "WRITE_OUTPUT_SCHEMA", "output_schema"),
    "values": ("estimate_tokens",),
    "views": ("CARD_TOKENS", "FRAME", "ROW_TOKENS", "Rendered", "render_list", "render_record", "render_write",
              "table"),
}
_MODULE_OF = {name: module for module, names in _FROM.items() for name in names}


def __getattr__(name: str) -> Any:
    return load_attribute(__name__, name, _MODULE_OF, __name__)


__all__ = [
    "CARD_TOKENS",
    "FRAME",
    "LIST_OUTPUT_SCHEMA",
    "RECORD_OUTPUT_SCHEMA",
    "ROW_TOKENS",
    "WRITE_OUTPUT_SCHEMA",
    "Rendered",
    "estimate_tokens",
    "output_schema",
    "render_list",
    "render_record",
    "render_write",
    "table",
    "unknown_fields",
    "valid_fields",
]
