"""Workflow tools: one call for what would otherwise take an agent several tool calls and turns.

- `search_crm(query, limit?)`: one query across companies, contacts, leads and opportunities,
  through the list endpoints' own filters, run concurrently; best matches first.
- `get_account_overview(company)`: a company (by id or name) with its contacts, open
  opportunities (stage name from the pipelines, amount), latest activities and notes.
- `log_interaction(type, ...)`: a call, meeting or email logged as an activity linked to the right
  contact, company and opportunity, plus an optional note.

Each runs its independent API calls concurrently (an anyio task group) and answers in one compact
result: text framed as CRM data (as `render` does; every CRM string through `quote`) and a small
structured index that matches the tool's output schema. A fan-out in which some calls fail still
answers with the rest and says what is missing and why; a write that is half done (activity
created, note not) is reported exactly as such, as an error naming the id that was created.

Each tool is declared once, on its handler: `@workflow_tool(...)` over `async def <tool name>(client,
args)`, whose docstring is the tool's description; its argument model (`args`) is the only source
of its input schema. Validation, logging and redaction are the
pipeline's (`crm_mcp.runtime.call_tool`), as for every tool. Modules: `args` (the argument
models), `common` (what the tools share), one module per tool (`search`, `overview`,
`log_interaction`, with `links` for the records an interaction is linked to).
"""

from crm_mcp.workflows.common import FRAME
from crm_mcp.workflows.overview import ACTIVITY_SCAN, NOTE_PAGE, NOTE_PAGES
from crm_mcp.workflows.search import EXACT, PREFIX, SEARCH_PAGE, SUBSTRING, WORD, grade, searches_for

__all__ = [
    "ACTIVITY_SCAN", "EXACT", "FRAME", "NOTE_PAGE", "NOTE_PAGES", "PREFIX", "SEARCH_PAGE", "SUBSTRING",
    "WORD", "grade", "searches_for",
]
