"""Helpers of the journal tests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from crm_mcp.client import ApideckClient
from crm_mcp.journal.store import Change, Scope
from crm_mcp.journal.writes import PendingWrite, WriteJournal
from crm_mcp.operations import missing_required, operation, sibling

RETENTION = timedelta(days=7)


async def journaled_write(
    journal: WriteJournal,
    client: ApideckClient,
    scope: Scope,
    tool: str,
    path_params: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> Change:
    """A write as the call pipeline makes it: before_write, the API call, after_write."""
    op = operation(tool)
    pending = await journal.before_write(client, op, scope=scope, path_params=path_params, body=body,
                                         allow_duplicate=True)  # fmt: skip
    assert isinstance(pending, PendingWrite)
    sent = body
    if op.action == "update" and body is not None:  # the pipeline sends the required fields along
        missing = missing_required(op, body)
        if missing:
            current = (await client.call(sibling(op, "get"), path_params=path_params)).body["data"]
            sent = {**{k: current[k] for k in missing if k in current}, **body}
    response = await client.call(op, path_params=path_params, body=sent)
    return await journal.after_write(pending, response)
