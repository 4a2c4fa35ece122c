"""The five actions (list, get, create, update, delete) over the store, for any resource.

Synchronous: the app runs each one in a worker thread. Every function takes the consumer the
request belongs to, so one consumer never sees another's records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crm_mcp.operations import OPERATIONS, resource
from crm_mcp.sandbox import rules
from crm_mcp.sandbox.errors import INVALID_STATE, ApiError, not_found
from crm_mcp.sandbox.query import Cursor, Predicate, Sort, encode_cursor
from crm_mcp.sandbox.records import apply_update, build_record, public_fields
from crm_mcp.sandbox.store import Row, Store

__all__ = ["PARENT", "Page", "Scope", "create", "delete", "get", "list_page", "update"]

Record = dict[str, Any]
PARENT = "custom_object_schemas"  # the resource whose id is the `object_id` of the others
CHILDREN = frozenset(op.resource for op in OPERATIONS if "object_id" in op.path_params)


@dataclass(frozen=True, slots=True)
class Scope:
    consumer: str
    resource: str
    object_id: str = ""

    @property
    def name(self) -> str:
        return f"{self.resource}/{self.object_id}" if self.object_id else self.resource


@dataclass
class Page:
    records: list[Record]
    next: str | None
    previous: str | None


def _label(resource_name: str) -> str:
    return resource(resource_name).singular.replace("_", " ")


def public(resource: str, record: Record) -> Record:
    allowed = public_fields(resource)
    return {key: value for key, value in record.items() if key in allowed}


def check_parent(store: Store, scope: Scope) -> None:
    """404 when the custom object schema named by the path does not exist (for this consumer)."""
    if scope.resource in CHILDREN and store.get(scope.consumer, PARENT, "", scope.object_id) is None:
        raise ApiError(
            404,
            "EntityNotFoundError",
            f"custom object schema with id '{scope.object_id}' not found",
            {"object_id": scope.object_id, "resource": PARENT},
        )


def list_page(
    store: Store,
    scope: Scope,
    *,
    sort: Sort,
    cursor: Cursor | None,
    predicate: Predicate | None,
    limit: int,
) -> Page:
    """One page of whole records (the app applies any `fields` selection)."""
    check_parent(store, scope)
    args = (scope.consumer, scope.resource, scope.object_id, sort)

    def mark(row: Row, backward: bool = False) -> str:
        return encode_cursor(Cursor(scope.name, sort.signature, row[0], row[1], backward))

    next_: str | None
    previous: str | None
    if cursor is not None and cursor.backward:
        rows = store.scan(*args, start=(cursor.key, cursor.id), backward=True, predicate=predicate, limit=limit + 1)
        more_before = len(rows) > limit
        rows = rows[:limit][::-1]
        previous = mark(rows[0], True) if more_before else None
        next_ = mark(rows[-1]) if rows else None
    else:
        start = (cursor.key, cursor.id) if cursor is not None else None
        rows = store.scan(*args, start=start, predicate=predicate, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        next_ = mark(rows[-1]) if more else None
        previous = None
        if cursor is not None and rows:
            before = store.scan(*args, start=(rows[0][0], rows[0][1]), backward=True, predicate=predicate, limit=1)
            previous = mark(rows[0], True) if before else None
    return Page([public(scope.resource, record) for _, _, record in rows], next_, previous)


def get(store: Store, scope: Scope, id_: str) -> Record:
    check_parent(store, scope)
    record = store.get(scope.consumer, scope.resource, scope.object_id, id_)
    if record is None:
        raise not_found(_label(scope.resource), id_)
    return public(scope.resource, record)


def create(store: Store, scope: Scope, body: Record) -> Record:
    check_parent(store, scope)
    for _ in range(5):
        record = rules.on_write(store, scope, None, build_record(scope.resource, body), body)
        if store.insert(scope.consumer, scope.resource, scope.object_id, record):
            return public(scope.resource, record)
        if record["id"] == body.get("id"):
            raise ApiError(
                422,
                INVALID_STATE,
                f"A {_label(scope.resource)} with id '{body['id']}' already exists",
                {"id": body["id"]},
            )
    raise RuntimeError("could not allocate a free id")  # pragma: no cover


def update(store: Store, scope: Scope, id_: str, body: Record) -> Record:
    check_parent(store, scope)
    record = store.update(
        scope.consumer,
        scope.resource,
        scope.object_id,
        id_,
        lambda old: rules.on_write(store, scope, old, apply_update(scope.resource, old, body), body),
    )
    if record is None:
        raise not_found(_label(scope.resource), id_)
    return public(scope.resource, record)


def delete(store: Store, scope: Scope, id_: str) -> None:
    check_parent(store, scope)
    cascade = next(iter(CHILDREN)) if scope.resource == PARENT and CHILDREN else None
    if not store.delete(scope.consumer, scope.resource, scope.object_id, id_, cascade=cascade):
        raise not_found(_label(scope.resource), id_)
