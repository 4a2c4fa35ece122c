"""Reading and comparing CRM records for the journal: the operation of a resource, a record as
it is now, its writable fields, its label, and value comparison that tolerates what a server
adds (nested ids, defaults) to what was written."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from pydantic_core import to_jsonable_python

from crm_mcp.client import ApiResponse
from crm_mcp.errors import NotFoundError
from crm_mcp.operations import OPERATIONS, Operation, resource

LABEL_FIELDS = ("title", "subject", "username")  # after `name` and first + last name (a contact's title is a job)
# Fields the journal never stores, whatever the resource (a user's password).
SECRET_FIELDS = frozenset({"password"})
# Sent with a write but not a field of the record (connector pass-through): never compared or restored.
NOT_RECORD_FIELDS = frozenset({"pass_through"})
# Writable in the contract but not a copy of the record's content: left out of a re-create.
_NOT_RECREATED = frozenset({"id"}) | NOT_RECORD_FIELDS


class CrmCaller(Protocol):
    """What the journal needs of an API client: `ApideckClient` or a per-tenant `TenantClient`."""

    async def call(self, op: Operation, /, **kwargs: Any) -> ApiResponse: ...


def operation_for(resource_name: str, action: str) -> Operation:
    for op in OPERATIONS:
        if op.resource == resource_name and op.action == action:
            return op
    raise KeyError(f"{resource_name} has no {action} operation")


def as_json(value: Any) -> Any:
    """A body as the client would send it: plain JSON types."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return to_jsonable_python(value)


async def read_record(
    client: CrmCaller, resource_name: str, path_params: Mapping[str, str], call_options: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The record as it is now (one GET), or None when it does not exist."""
    op = operation_for(resource_name, "get")
    params = {name: path_params[name] for name in op.path_params}
    try:
        response = await client.call(op, path_params=params, **call_options)
    except NotFoundError:
        return None
    data = response.body.get("data")
    return dict(data) if isinstance(data, Mapping) else None


def created_id(response: ApiResponse) -> str | None:
    data = response.body.get("data")
    value = data.get("id") if isinstance(data, Mapping) else None
    return None if value is None else str(value)


def recreatable_fields(resource_name: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `record` a create accepts: its writable fields, without id and secrets."""
    writable = set(resource(resource_name).writable_fields) - _NOT_RECREATED - SECRET_FIELDS
    return {key: value for key, value in record.items() if key in writable and value is not None}


def label(record: Mapping[str, Any] | None) -> str:
    """A person's name for a record ("Jane Doe"), or "" when it has none."""
    if not record:
        return ""
    name = record.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    full = " ".join(str(record.get(k) or "").strip() for k in ("first_name", "last_name")).strip()
    if full:
        return full
    for key in LABEL_FIELDS:
        value = record.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def same_value(written: Any, current: Any) -> bool:
    """Whether `current` still holds what `written` set: objects match on the keys written (a
    server may add ids or defaults), numbers numerically, a missing value equals null."""
    if isinstance(written, Mapping):
        if not isinstance(current, Mapping):
            return False
        return all(same_value(v, current.get(k)) for k, v in written.items())
    if isinstance(written, list):
        if not isinstance(current, list) or len(written) != len(current):
            return False
        return all(same_value(w, c) for w, c in zip(written, current, strict=True))
    if isinstance(written, int | float) and not isinstance(written, bool):
        return isinstance(current, int | float) and not isinstance(current, bool) and float(written) == float(current)
    if written is None or written == "":
        return current is None or current == "" or current == [] or current == {}
    return bool(written == current)
