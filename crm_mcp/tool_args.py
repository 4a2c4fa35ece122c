"""Input models of the operation tools, built from the operation table and the generated models.

Each tool's arguments are flat: path ids, then the query parameters of a list (`limit`, `cursor`,
`filter`, `sort`, `fields`, `pass_through`) or the writable fields of the record for a create or
an update. The same pydantic model validates a call and, compacted by `crm_mcp.schema_compact`,
is the tool's input schema; the descriptions written here are the ones agents see (the contract's
own field descriptions stay in the generated models), so each is short and says what the name
does not.

Per-call `consumer_id` / `service_id` overrides exist only when the operator turns per-call
consumer switching on (`Settings.per_call_consumer`, optionally limited to
`Settings.allowed_consumers`): with the server's own credentials, a `consumer_id` argument reaches
any consumer of the operator's Apideck application. When off, the arguments are not listed and a
call that gives one is refused.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema, create_model
from pydantic.json_schema import SkipJsonSchema

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

PER_CALL_CONSUMER_OFF = (
    "per-call consumer switching is off on this server: calls act for its configured consumer and "
    "connector (the operator can turn it on with CRM_MCP_PER_CALL_CONSUMER=1). Leave this argument out"
)
_CONSUMER_DESCRIPTIONS = {
    "consumer_id": "Act for this Apideck consumer instead of the server's",
    "service_id": "Connector to use, e.g. salesforce, hubspot",
}


def _refuse_switching(value: Any) -> Any:
    raise ValueError(PER_CALL_CONSUMER_OFF)


# When switching is off: not in the schema, and refused with a message that says why.
SwitchingOff = SkipJsonSchema[Annotated[Any, AfterValidator(_refuse_switching)]]


def consumer_fields(per_call_consumer: bool, allowed_consumers: Collection[str] | None) -> dict[str, Any]:
    """The `consumer_id` / `service_id` arguments as the server's settings make them."""
    if not per_call_consumer:
        return {name: (SwitchingOff, Field(None)) for name in _CONSUMER_DESCRIPTIONS}
    consumer: Any = ConsumerId
    if allowed_consumers is not None:
        allowed = frozenset(allowed_consumers)

        def check_allowed(value: str) -> str:
            if value not in allowed:
                raise ValueError(
                    "this consumer is not among the consumers this server may act for "
                    "(CRM_MCP_ALLOWED_CONSUMERS); leave consumer_id out to act for the configured one"
                )
            return value

        consumer = Annotated[ConsumerId, AfterValidator(check_allowed)]
    return {
        "consumer_id": (consumer | None, Field(None, description=_CONSUMER_DESCRIPTIONS["consumer_id"])),
        "service_id": (ConsumerId | None, Field(None, description=_CONSUMER_DESCRIPTIONS["service_id"])),
    }


def with_consumer_arguments(input_schema: dict[str, Any]) -> dict[str, Any]:
    """A tool's published input schema (computed with switching off, as the precomputed tool list
    is) with the `consumer_id` / `service_id` arguments listed: what the server publishes when
    per-call consumer switching is on."""
    listed = {name: {"type": "string", "description": text} for name, text in _CONSUMER_DESCRIPTIONS.items()}
    return {**input_schema, "properties": {**input_schema["properties"], **listed}}


LIST_FIELDS: dict[str, Any] = {
    "limit": (PageSize | None, Field(None)),
    "max_records": (
        RecordCount | None,
        Field(None, description=f"Total to read across pages (≤ {MAX_RECORDS})"),
    ),
    "cursor": (str | None, Field(None, max_length=4096, description="next_cursor of the previous page")),
    "fields": (
        list[Annotated[str, StringConstraints(pattern=r"^([A-Za-z0-9_.]+|\*)$")]] | None,
        Field(None, max_length=100, description='Fields to return; ["*"]: all'),
    ),
    "pass_through": (PassThroughQuery | None, Field(None, description="Connector query parameters, sent as is")),
}



def parse_moment(value: str) -> datetime:
    """An ISO 8601 date or date-time as a UTC moment (a date is its midnight, no zone is UTC)."""
    moment = datetime.fromisoformat(value.strip().replace("z", "Z"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def check_moment(value: str) -> str:
    """A validator: `value` unchanged when `parse_moment` reads it."""
    try:
        parse_moment(value)
    except ValueError:
        raise ValueError("must be an ISO 8601 date or date-time, e.g. 2026-10-01 or 2026-10-01T09:00:00Z") from None
    return value


def _moment(description: str) -> Any:
    schema = {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]}
    return (Annotated[str, StringConstraints(max_length=64), AfterValidator(check_moment), WithJsonSchema(schema)]
            | None, Field(None, description=description))


# A time window on an activity's own date (activity_datetime), which the contract can neither
# filter nor sort by: the server walks the pages and keeps what falls in it (crm_mcp.large_reads).
WINDOW_FIELDS: dict[str, Any] = {
    "after": _moment("On or after this activity_datetime"),
    "before": _moment("Before this activity_datetime"),
}

# What a body field's name does not say. Update tools send arrays as they are: the API stores the
# list given, so an agent adding one phone number must send the others too.
REPLACES_LIST = "Replaces the whole list"
BODY_DESCRIPTIONS: dict[str, str] = {
    "currency": "ISO 4217 code, e.g. USD",  # the ~180 codes are checked on the server, not listed
}
_NOT_STORED = {"pass_through"}  # connector extensions sent with a write, not a list the record keeps


class ToolArgs(BaseModel):
    """Base of every tool's arguments: unknown arguments are errors, types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


def filter_description(op: Operation) -> str | None:
    """How the filters of a list match, from the filter's fields: ids exactly, text as the
    connector matches it (the API does not define it: the sandbox's rule is not the API's), and
    which date `updated_since` compares."""
    names = list(model(op.filter_model).model_fields) if op.filter_model else []
    parts = []
    if any(n.endswith("_id") for n in names):
        parts.append("ids match exactly")
    if {"name", "first_name", "last_name", "title", "email", "phone_number"} & set(names):
        parts.append("text matching (exact, partial, case) depends on the connector")
    if "updated_since" in names:
        edited = ", not when the activity happened" if op.resource == "activities" else ""
        parts.append(f"updated_since: the record's last edit{edited}")
    text_ = "; ".join(parts)
    return text_[:1].upper() + text_[1:] or None


def path_fields(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in op.path_params:
        out[name] = (RecordId, Field(description="Custom object schema id") if name == "object_id" else Field())
    return out


def body_fields(op: Operation, *, partial: bool) -> dict[str, Any]:
    """The writable fields of the operation's request body; all optional when `partial` (an update)."""
    if not op.body_model:
        return {}
    body = model(op.body_model)
    out: dict[str, Any] = {}
    for name, info in body.model_fields.items():
        if name in op.path_params:  # e.g. a pipeline's writable `id` on update: the path id wins
            continue
        annotation: Any = info.annotation
        description = BODY_DESCRIPTIONS.get(name)
        if partial and description is None and name not in _NOT_STORED and _is_list(annotation):
            description = REPLACES_LIST
        # json_schema_extra: a date's or date-time's format, which the published schema names
        kept: dict[str, Any] = {
            "alias": info.alias, "description": description, "json_schema_extra": info.json_schema_extra,
        }
        if partial or not info.is_required():
            out[name] = (annotation | None, Field(None, **kept))
        else:
            out[name] = (annotation, Field(**kept))
    return out


def _is_list(annotation: Any) -> bool:
    return any(getattr(arg, "__origin__", None) is list for arg in (annotation, *getattr(annotation, "__args__", ())))


# Issue 13 (crm_mcp.journal): every write can be previewed; the creates that look for likely
# duplicates first can be told to go on. Undescribed: the names say it and the budget is tight.
WRITE_ACTIONS = ("create", "update", "delete")
DUPLICATE_CHECKED = ("contacts", "companies", "leads")  # crm_mcp.journal.duplicates.CRITERIA
JOURNAL_ARGUMENTS = ("dry_run", "allow_duplicate")  # not sent to the API


def journal_fields(op: Operation) -> dict[str, Any]:
    """`dry_run` on every write; `allow_duplicate` on the creates checked for duplicates."""
    if op.action not in WRITE_ACTIONS:
        return {}
    out: dict[str, Any] = {"dry_run": (bool, Field(False))}
    if op.action == "create" and op.resource in DUPLICATE_CHECKED:
        out["allow_duplicate"] = (bool, Field(False))
    return out


def query_fields(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if op.action == "list":
        paged = "cursor" in op.query_params  # max_records follows the cursors: paged lists only
        out.update({k: v for k, v in LIST_FIELDS.items() if k in op.query_params or (k == "max_records" and paged)})
        if op.filter_model:
            out["filter"] = (model(op.filter_model) | None, Field(None, description=filter_description(op)))
        if op.sort_model:
            out["sort"] = (model(op.sort_model) | None, Field(None))
        if op.resource == "activities":
            out.update(WINDOW_FIELDS)
    elif op.action == "get" and "fields" in op.query_params:
        out["fields"] = LIST_FIELDS["fields"]
    return out


@cache
def args_model(
    op: Operation, per_call_consumer: bool = False, allowed_consumers: frozenset[str] | None = None
) -> type[ToolArgs]:
    """The pydantic model of a tool's arguments (built once per operation and consumer setting)."""
    fields: dict[str, Any] = {
        **path_fields(op),
        **query_fields(op),
        **body_fields(op, partial=op.action == "update"),
        **journal_fields(op),
        **consumer_fields(per_call_consumer, allowed_consumers),
    }
    name = "".join(part.title() for part in op.tool_name.split("_")) + "Args"
    return create_model(name, __base__=ToolArgs, **fields)


@cache
def switching_model(base: type[BaseModel], allowed_consumers: frozenset[str] | None) -> type[BaseModel]:
    """`base` (a tool's argument model, switching off) taking `consumer_id` / `service_id`: the
    model a server with per-call consumer switching on validates calls with."""
    return create_model(base.__name__, __base__=base, **consumer_fields(True, allowed_consumers))


def split_arguments(op: Operation, args: ToolArgs) -> tuple[dict[str, str], dict[str, Any], dict[str, Any] | None]:
    """Path params, query and body of a validated call, as the API client takes them."""
    data = args.model_dump(mode="json", by_alias=True, exclude_unset=True)
    path = {name: data.pop(name) for name in op.path_params}
    data.pop("consumer_id", None)
    data.pop("service_id", None)
    for local in ("max_records", *WINDOW_FIELDS, *JOURNAL_ARGUMENTS):  # the runtime's and the pipeline's, not the API's
        data.pop(local, None)
    if op.action in ("list", "get"):
        query = dict(data)
        fields = query.pop("fields", None)
        if fields and "*" not in fields:  # "*" (all fields) is the API's default: nothing to send
            query["fields"] = ",".join(fields)
        return path, query, None
    if op.action == "delete":
        return path, {}, None
    return path, {}, data
