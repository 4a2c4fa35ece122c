"""The API's envelope, read in one place: a page of records with its next cursor, a record, and
one walk over the pages of a list within limits.

An answer is `{"data": ..., "meta": {"cursors": {"next": ...}}}` by the contract; upstreams (and
connectors behind Apideck) do not always keep to it. Whatever the shape (`meta` a list, `cursors`
a string, `data` an object where a list was expected), these functions answer with what can be
used and never raise on it: records are the objects of `data`, the next cursor is a non-empty
string or None. No other module reads `data` or `meta.cursors` of an answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crm_mcp.operations import Operation, operation


@dataclass(frozen=True)
class Page:
    """One page of a list: its records (the objects of `data`) and the cursor of the next page."""

    records: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None
    status: int | str = "-"
    request_id: str | None = None


def _body(response: Any) -> Mapping[str, Any]:
    body = getattr(response, "body", response)
    return body if isinstance(body, Mapping) else {}


def page_of(response: Any) -> Page:
    """The page an API response (or a response body) carries."""
    body = _body(response)
    data = body.get("data")
    records = [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
    meta = body.get("meta")
    cursors = meta.get("cursors") if isinstance(meta, Mapping) else None
    nxt = cursors.get("next") if isinstance(cursors, Mapping) else None
    return Page(
        records,
        nxt if isinstance(nxt, str) and nxt else None,
        getattr(response, "status", "-"),
        getattr(response, "request_id", None),
    )


def record_of(response: Any) -> dict[str, Any]:
    """The record an API response (or a response body) carries; {} when `data` is no object."""
    data = _body(response).get("data")
    return data if isinstance(data, dict) else {}


def _op(tool: str | Operation) -> Operation:
    return operation(tool) if isinstance(tool, str) else tool


async def read_page(client: Any, tool: str | Operation, query: Mapping[str, Any] | None = None,
                    path: Mapping[str, str] | None = None, **overrides: Any) -> Page:
    """One page of the list operation `tool` (a tool name, or the operation)."""
    response = await client.call(_op(tool), path_params=dict(path or {}), query=dict(query or {}), body=None,
                                 **overrides)
    return page_of(response)


async def read_record(client: Any, tool: str | Operation, *, path: Mapping[str, str] | None = None,
                      body: Mapping[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """The record a get, create or update answers with ({} when it answers none)."""
    response = await client.call(_op(tool), path_params=dict(path or {}), query={},
                                 body=dict(body) if body is not None else None, **overrides)
    return record_of(response)


class PageWalk:
    """The pages of a list, in order, from `query["cursor"]` (if any). Each `next(limit)` reads one
    page; after it, `stopped` says why there is no page after it (the last page, a cursor the API
    had returned before, an empty page with a cursor), and `cursor` is where to go on from."""

    def __init__(self, client: Any, op: Operation, query: Mapping[str, Any] | None = None,
                 path: Mapping[str, str] | None = None, **overrides: Any):
        self._client = client
        self._op = op
        self._query = dict(query or {})
        self._path = dict(path or {})
        self._overrides = overrides
        self.cursor: str | None = self._query.get("cursor") or None
        self._seen: set[str] = {self.cursor} if self.cursor else set()
        self.pages = 0
        self.stopped: str | None = None

    async def next(self, limit: int) -> Page:
        """The next page, of at most `limit` records. Raises the API's error (a CrmError)."""
        assert self.stopped is None, "the walk is over"
        query = {**self._query, "limit": limit}
        if self.cursor:
            query["cursor"] = self.cursor
        page = await read_page(self._client, self._op, query, self._path, **self._overrides)
        self.pages += 1
        nxt = page.next_cursor
        if nxt is None:
            self.cursor, self.stopped = None, "that was the last page"
        else:
            self.cursor = nxt
            if nxt in self._seen:
                self.stopped = "the API returned a cursor it had returned before"
            elif not page.records:
                self.stopped = "the API returned an empty page with a next cursor"
            self._seen.add(nxt)
        return page


async def read_pages(client: Any, tool: str, query: Mapping[str, Any], *, limit: int,
                     max_pages: int) -> tuple[list[dict[str, Any]], str | None]:
    """The records of up to `max_pages` pages of `limit`, and the cursor to go on from when that
    bound stopped the walk before the last page (else None)."""
    walk = PageWalk(client, operation(tool), query)
    records: list[dict[str, Any]] = []
    while walk.stopped is None and walk.pages < max_pages:
        records += (await walk.next(limit)).records
    return records, walk.cursor if walk.stopped is None else None
