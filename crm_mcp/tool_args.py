"""Input models of the operation tools, built from the operation table and the generated models.

Each tool's arguments are flat: path ids, then the query parameters of a list (`limit`, `cursor`,
`filter`, `sort`, `fields`, `pass_through`) or the writable fields of the record for a create or
an update, plus optional per-call `consumer_id` / `service_id` overrides. The same pydantic
model validates a call and, compacted by `crm_mcp.schema_compact`, is the tool's input schema.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema, create_model

from crm_mcp.operations import Operation, model

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_id(value: str) -> str:
    """An id travels as one URL path segment: refuse what could change the path."""
    if value in (".", "..") or "/" in value or "\\" in value or _CONTROL.search(value):
        raise ValueError("must be a record id: no '/', '\\', control characters, and not '.' or '..'")
    return value


def _check_header_value(value: str) -> str:
    """Consumer and service ids travel in headers: refuse CR, LF and other control characters."""
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


RecordId = Annotated[str, StringConstraints(min_length=1, max_length=256), AfterValidator(_check_id)]
ConsumerId = Annotated[
    str, StringConstraints(min_length=1, max_length=256), AfterValidator(_check_header_value)
]
PassThroughQuery = dict[str, str | int | float | bool]

# How many records one list call may gather across pages (`max_records`); a larger value is
# accepted and capped at this, which the result says (crm_mcp.large_reads).
MAX_RECORDS = 1000

# Published schemas of the paging arguments, set exactly (validation keeps the full bounds): a
# count's lower bound of 1 goes without saying, and `max_records` is capped rather than refused,
# so its schema is the bare type. Saves ~4 tokens on each of the 10 list tools.
PageSize = Annotated[int, Field(ge=1, le=200), WithJsonSchema({"type": "integer", "maximum": 200})]
RecordCount = Annotated[int, Field(ge=1), WithJsonSchema({"type": "integer"})]

# Names that are not fields of a record but arguments of every tool of a kind.
COMMON_FIELDS: dict[str, Any] = {
    "consumer_id": (ConsumerId | None, Field(None, description="Act for this consumer instead of the default")),
    "service_id": (ConsumerId | None, Field(None, description="Connector to use, e.g. salesforce, hubspot")),
}

LIST_FIELDS: dict[str, Any] = {
    "limit": (PageSize | None, Field(None, description="Records per page, 1-200 (default 20)")),
    "max_records": (
        RecordCount | None,
        Field(None, description=f"Read up to this many records across pages (at most {MAX_RECORDS})"),
    ),
    "cursor": (str | None, Field(None, max_length=4096, description="next_cursor of the previous page")),
    "fields": (
        list[Annotated[str, StringConstraints(pattern=r"^([A-Za-z0-9_.]+|\*)$")]] | None,
        Field(None, max_length=100, description='Only these fields, e.g. ["name","addresses.city"]; ["*"]: all'),
    ),
    "pass_through": (PassThroughQuery | None, Field(None, description="Connector query parameters, passed as is")),
}


class ToolArgs(BaseModel):
    """Base of every tool's arguments: unknown arguments are errors, types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


def path_fields(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in op.path_params:
        what = "Custom object schema id" if name == "object_id" else f"{op.resource.replace('_', ' ')} record id"
        out[name] = (RecordId, Field(description=what[:1].upper() + what[1:]))
    return out


def body_fields(op: Operation, *, partial: bool) -> dict[str, Any]:
    """The writable fields of the operation's request body; all optional when `partial`."""
    if not op.body_model:
        return {}
    body = model(op.body_model)
    out: dict[str, Any] = {}
    for name, info in body.model_fields.items():
        if name in op.path_params:  # e.g. a pipeline's writable `id` on update: the path id wins
            continue
        annotation: Any = info.annotation
        if partial or not info.is_required():
            out[name] = (annotation | None, Field(None, alias=info.alias, description=info.description))
        else:
            out[name] = (annotation, Field(alias=info.alias, description=info.description))
    return out


def query_fields(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if op.action == "list":
        paged = "cursor" in op.query_params  # max_records follows the cursors: paged lists only
        out.update({k: v for k, v in LIST_FIELDS.items() if k in op.query_params or (k == "max_records" and paged)})
        if op.filter_model:
            out["filter"] = (model(op.filter_model) | None, Field(None))
        if op.sort_model:
            out["sort"] = (model(op.sort_model) | None, Field(None))
    elif op.action == "get" and "fields" in op.query_params:
        out["fields"] = LIST_FIELDS["fields"]
    return out


@cache
def args_model(op: Operation) -> type[ToolArgs]:
    """The pydantic model of a tool's arguments (built once per operation, on first use)."""
    fields: dict[str, Any] = {
        **path_fields(op),
        **query_fields(op),
        **body_fields(op, partial=op.action == "update"),
        **COMMON_FIELDS,
    }
    name = "".join(part.title() for part in op.tool_name.split("_")) + "Args"
    return create_model(name, __base__=ToolArgs, **fields)


def split_arguments(op: Operation, args: ToolArgs) -> tuple[dict[str, str], dict[str, Any], dict[str, Any] | None]:
    """Path params, query and body of a validated call, as the API client takes them."""
    data = args.model_dump(mode="json", by_alias=True, exclude_unset=True)
    path = {name: data.pop(name) for name in op.path_params}
    data.pop("consumer_id", None)
    data.pop("service_id", None)
    data.pop("max_records", None)  # not an API parameter: the runtime follows the cursors
    if op.action in ("list", "get"):
        query = dict(data)
        fields = query.pop("fields", None)
        if fields and "*" not in fields:  # "*" (all fields) is the API's default: nothing to send
            query["fields"] = ",".join(fields)
        return path, query, None
    if op.action == "delete":
        return path, {}, None
    return path, {}, data
