"""Building stored records from request bodies, and shaping them for responses.

The sandbox sets every read-only field it can: `id`, `created_at`/`updated_at`,
`created_by`/`updated_by`, and a read-only `owner_id` (custom objects). Nested list items that
have an `id` in the response shape but not in the request shape (pipeline stages) get one too.
Write-only fields (`pass_through`, a user's `password`) are accepted and never stored.
"""

from __future__ import annotations

import secrets
import types
import typing
from datetime import UTC, datetime
from functools import cache
from typing import Any

from pydantic import BaseModel

from crm_mcp.operations import model, resource

__all__ = ["SANDBOX_USER_ID", "apply_update", "build_record", "new_id", "now_iso", "public_fields"]

Record = dict[str, Any]
SANDBOX_USER_ID = "usr_01"  # the seed's first user stands for whoever holds the API key
# the prefixes of the seed's ids ("usr_01", "stg_nb_proposal", ...); other resources use their
# first three letters ("com_001", "con_0001", ...)
_ID_PREFIX = {"users": "usr", "stages": "stg", "custom_object_schemas": "cos", "custom_objects": "cob"}


def now_iso() -> str:
    """Now, as the contract writes timestamps: `YYYY-MM-DDTHH:MM:SS.mmmZ`."""
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def new_id(resource_name: str) -> str:
    return f"{_ID_PREFIX.get(resource_name, resource_name[:3])}_{secrets.token_hex(8)}"


@cache
def public_fields(resource_name: str) -> frozenset[str]:
    """The keys a record of this resource may have in a response."""
    record_cls = model(resource(resource_name).record_model)
    return frozenset(f.alias or name for name, f in record_cls.model_fields.items())


def _list_item_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        for arg in typing.get_args(annotation):
            found = _list_item_model(arg)
            if found is not None:
                return found
        return None
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return item
    return None


@cache
def _nested_id_fields(resource_name: str) -> tuple[str, ...]:
    res = resource(resource_name)
    record_cls, input_cls = model(res.record_model), model(res.input_model)
    out = []
    for name, info in input_cls.model_fields.items():
        if name not in record_cls.model_fields:
            continue
        item_in = _list_item_model(info.annotation)
        item_out = _list_item_model(record_cls.model_fields[name].annotation)
        if item_in and item_out and "id" in item_out.model_fields and "id" not in item_in.model_fields:
            out.append(name)
    return tuple(out)


def _writable(resource_name: str, body: Record) -> Record:
    allowed = public_fields(resource_name)
    data = {key: value for key, value in body.items() if key in allowed}
    for name in _nested_id_fields(resource_name):
        items = data.get(name)
        if isinstance(items, list):
            data[name] = [
                {"id": new_id(name), **item} if isinstance(item, dict) and "id" not in item else item for item in items
            ]
    return data


def build_record(resource_name: str, body: Record, *, actor: str = SANDBOX_USER_ID) -> Record:
    """A new record from a validated create body."""
    read_only = set(resource(resource_name).read_only_fields)
    fields = public_fields(resource_name)
    stamp = now_iso()
    given = body.get("id")  # only where the contract lets a client choose the id (pipelines)
    record: Record = {"id": given if isinstance(given, str) and given else new_id(resource_name)}
    record.update({key: value for key, value in _writable(resource_name, body).items() if key != "id"})
    for name, value in (("created_at", stamp), ("updated_at", stamp), ("created_by", actor), ("updated_by", actor)):
        if name in fields:
            record[name] = value
    if "owner_id" in read_only:
        record["owner_id"] = actor
    return record


def apply_update(resource_name: str, record: Record, body: Record, *, actor: str = SANDBOX_USER_ID) -> Record:
    """`record` with the top-level fields of a validated update body merged in."""
    changes = _writable(resource_name, body)
    changes.pop("id", None)  # the path names the record
    merged = {**record, **changes}
    fields = public_fields(resource_name)
    if "updated_at" in fields:
        merged["updated_at"] = now_iso()
    if "updated_by" in fields:
        merged["updated_by"] = actor
    return merged
