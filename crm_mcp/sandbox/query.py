"""List queries: filters, sort keys, cursors and `fields` selection.

Everything here is derived from the generated operation table and models; nothing names a
resource.

Filter matching rules (a record matches when every given filter matches):

* `*_since` (`updated_since`, `created_since`): the record's `updated_at` / `created_at` is at or
  after the given ISO 8601 timestamp (a date alone means midnight UTC; no zone means UTC).
* `*_id` (`company_id`, `owner_id`, `contact_id`, `primary_contact_id`, ...): exact match.
* `email`: case-insensitive substring of any of the record's `emails[].email`.
* `phone_number`: substring of any of the record's `phone_numbers[].number`, comparing digits
  only (so `415-555` finds `+1 415 555 0101`); a value without digits compares as text.
* `name`: case-insensitive substring of `name`, or of "first_name last_name" when the record
  has no `name`.
* numeric filters (`monetary_amount`, `win_probability`): exact numeric equality.
* `status`, `type`: exact, case-insensitive.
* any other text filter (`first_name`, `last_name`, `title`): case-insensitive substring.

Sorting: by the contract's `sort[by]` field (text case-insensitively, numbers numerically,
timestamps chronologically; a missing value sorts before every present one) then by `id`, in
`sort[direction]` (default `asc`). Without `sort[by]` records come in insertion order.

Cursors are opaque: URL-safe base64 of a small JSON document holding the list's scope
(resource and custom object id), the sort (field and direction), the sort key and id of the
record the page ends at, and the paging direction. Pages are found by keyset search
(`(key, id) > (cursor key, cursor id)`), so a walk returns each record exactly once even while
records are added or deleted between pages.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError

from crm_mcp.operations import OPERATIONS, Operation, model
from crm_mcp.sandbox.errors import INVALID_CURSOR, UNSUPPORTED_FILTERS, UNSUPPORTED_SORT, bad_request

__all__ = [
    "MISSING_NUMBER",
    "Cursor",
    "Predicate",
    "compile_filters",
    "decode_cursor",
    "encode_cursor",
    "parse_fields",
    "parse_sort",
    "parse_timestamp",
    "select_fields",
    "sort_columns",
    "sort_keys",
]

Record = dict[str, Any]
Predicate = Callable[[Record], bool]
MISSING_NUMBER = -math.inf  # the sort key of a missing number: before every present one
DEFAULT_ORDER = "seq"  # insertion order


# --------------------------------------------------------------------------- field helpers


def _annotation_types(annotation: Any) -> set[type]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        out: set[type] = set()
        for arg in typing.get_args(annotation):
            out |= _annotation_types(arg)
        return out
    return {annotation} if isinstance(annotation, type) else set()


def _is_numeric(model_cls: type[BaseModel], field: str) -> bool:
    info = model_cls.model_fields.get(field)
    if info is None:
        return False
    kinds = _annotation_types(info.annotation)
    return bool(kinds & {int, float}) and bool not in kinds


def field_value(record: Record, field: str) -> Any:
    """The value a filter or sort on `field` looks at (`email` falls back to `emails[0].email`,
    `name` to "first_name last_name")."""
    value = record.get(field)
    if value is None and field == "name":
        parts = [record.get("first_name"), record.get("last_name")]
        joined = " ".join(p for p in parts if isinstance(p, str) and p)
        value = joined or None
    if value is None:
        items = record.get(field + "s")
        if isinstance(items, list):
            for item in items:
                if isinstance(item, dict) and item.get(field) is not None:
                    return item[field]
    return value


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 timestamp or date as an aware UTC datetime (ValueError when it is not one)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00
        raise ValueError(f"timestamp out of range: {text!r}") from exc


def _canonical_timestamp(value: Any) -> str:
    if not isinstance(value, str) or not value:
        return ""
    try:
        return parse_timestamp(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return value


# --------------------------------------------------------------------------- sorting


@cache
def sort_columns() -> dict[str, bool]:
    """Every field any list operation can sort by, mapped to whether it sorts numerically."""
    columns: dict[str, bool] = {}
    for op in OPERATIONS:
        if not op.sort_model or op.record_model is None:
            continue
        record_cls = model(op.record_model)
        for name in _sort_choices(op.sort_model):
            columns[name] = columns.get(name, False) or _is_numeric(record_cls, name)
    return columns


@cache
def _sort_choices(sort_model: str) -> tuple[str, ...]:
    info = model(sort_model).model_fields["by"]
    for arg in typing.get_args(info.annotation):
        if typing.get_origin(arg) is typing.Literal:
            return tuple(str(a) for a in typing.get_args(arg))
    return ()


def as_number(value: Any) -> float | None:
    """`value` as a finite float, or None (not a number, a bool, or out of range)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def sort_key(record: Record, field: str) -> Any:
    value = field_value(record, field)
    if sort_columns()[field]:
        number = as_number(value)
        return MISSING_NUMBER if number is None else number
    if field.endswith("_at"):
        return _canonical_timestamp(value)
    return str(value).casefold() if value is not None else ""


def sort_keys(record: Record) -> dict[str, Any]:
    """The stored sort key of `record` for every sortable field."""
    return {field: sort_key(record, field) for field in sort_columns()}


@dataclass(frozen=True, slots=True)
class Sort:
    field: str  # a key of sort_columns(), or DEFAULT_ORDER
    descending: bool

    @property
    def signature(self) -> str:
        return f"{self.field}:{'desc' if self.descending else 'asc'}"


def parse_sort(op: Operation, raw: dict[str, str]) -> Sort:
    """`sort[by]` / `sort[direction]` of a list operation, validated with its sort model."""
    if not raw:
        return Sort(DEFAULT_ORDER, False)
    if op.sort_model is None:
        raise bad_request(f"{op.tool_name} does not support sorting", UNSUPPORTED_SORT)
    choices = _sort_choices(op.sort_model)
    for key in raw:
        if key not in ("by", "direction"):
            raise bad_request(f"Unknown sort parameter 'sort[{key}]'; use sort[by] and sort[direction]")
    by = raw.get("by")
    if by is not None and by not in choices:
        raise bad_request(
            f"Unsupported sort field '{by}' for {op.resource}; sort[by] must be one of: {', '.join(choices)}",
            UNSUPPORTED_SORT,
            {"sort[by]": by, "supported": list(choices)},
        )
    direction = raw.get("direction")
    if direction is not None and direction not in ("asc", "desc"):
        raise bad_request(f"Invalid sort[direction] '{direction}': must be 'asc' or 'desc'")
    try:
        model(op.sort_model).model_validate(raw)
    except ValidationError as exc:  # pragma: no cover - the checks above are stricter
        raise bad_request(f"Invalid sort: {exc.errors()[0]['msg']}") from exc
    return Sort(by or DEFAULT_ORDER, direction == "desc")


# --------------------------------------------------------------------------- filters


def _contains(haystack: Any, needle: str) -> bool:
    return isinstance(haystack, str) and needle.casefold() in haystack.casefold()


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _rule(field: str, value: Any, numeric: bool) -> Predicate:
    if field.endswith("_since"):
        since = parse_timestamp(value)
        stamp_field = field.removesuffix("_since") + "_at"

        def after(record: Record) -> bool:
            stamp = record.get(stamp_field)
            try:
                return isinstance(stamp, str) and parse_timestamp(stamp) >= since
            except ValueError:
                return False

        return after
    if field.endswith("_id"):
        return lambda record: record.get(field) == value
    if numeric:
        target = float(value)
        return lambda record: as_number(record.get(field)) == target
    if field in ("email", "phone_number"):
        item_key = "email" if field == "email" else "number"
        digits = _digits(value) if field == "phone_number" else ""

        def any_item(record: Record) -> bool:
            candidates = [record.get(field)]
            items = record.get(field + "s")
            if isinstance(items, list):
                candidates += [item.get(item_key) for item in items if isinstance(item, dict)]
            for candidate in candidates:
                if not isinstance(candidate, str):
                    continue
                if (digits and digits in _digits(candidate)) or (not digits and _contains(candidate, value)):
                    return True
            return False

        return any_item
    if field in ("status", "type"):
        return lambda record: isinstance(record.get(field), str) and record[field].casefold() == value.casefold()
    return lambda record: _contains(field_value(record, field), value)


def compile_filters(op: Operation, raw: dict[str, str]) -> Predicate | None:
    """A predicate for the `filter[...]` parameters of `op` (None when there are none)."""
    if not raw:
        return None
    if op.filter_model is None:
        raise bad_request(f"{op.tool_name} does not support filters", UNSUPPORTED_FILTERS)
    filter_cls = model(op.filter_model)
    supported = list(filter_cls.model_fields)
    unknown = [key for key in raw if key not in filter_cls.model_fields]
    if unknown:
        raise bad_request(
            f"Unsupported filter {', '.join(f'filter[{k}]' for k in unknown)} for {op.resource}; "
            f"supported filters: {', '.join(supported)}",
            UNSUPPORTED_FILTERS,
            {"unsupported": unknown, "supported": supported},
        )
    try:
        parsed = filter_cls.model_validate(raw, strict=False)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"])
        raise bad_request(
            f"Invalid filter[{name}] {raw.get(name)!r}: {err['msg']}", detail={"filter": name, "rule": err["msg"]}
        ) from exc
    rules: list[Predicate] = []
    for field in raw:
        value = getattr(parsed, field)
        if field.endswith("_since"):
            try:
                parse_timestamp(value)
            except ValueError as exc:
                raise bad_request(
                    f"Invalid filter[{field}] {value!r}: expected an ISO 8601 timestamp such as 2026-01-31T09:00:00Z",
                    detail={"filter": field, "rule": "ISO 8601 timestamp"},
                ) from exc
        rules.append(_rule(field, value, _is_numeric(filter_cls, field)))
    return lambda record: all(rule(record) for rule in rules)


# --------------------------------------------------------------------------- cursors


@dataclass(frozen=True, slots=True)
class Cursor:
    scope: str  # "contacts" or "custom_objects/<object_id>"
    sort: str  # Sort.signature
    key: Any  # the sort key of the record the cursor points at
    id: str
    backward: bool = False  # True: the page *before* (key, id)


def encode_cursor(cursor: Cursor) -> str:
    doc = {"s": cursor.scope, "o": cursor.sort, "k": cursor.key, "i": cursor.id, "b": int(cursor.backward)}
    raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_SQLITE_INT = 2**63 - 1
_SHOWN_CURSOR = 60  # characters of a bad cursor an error message repeats


def _text(value: Any) -> bool:
    """A string SQLite can store (UTF-8: no lone surrogates)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _valid_key(key: Any, sort: Sort) -> bool:
    """Whether `key` can be the sort key of a record in `sort` order (a number for numeric
    fields and insertion order, text otherwise)."""
    numeric = sort.field == DEFAULT_ORDER or sort_columns()[sort.field]
    if not numeric:
        return _text(key)
    if isinstance(key, bool) or not isinstance(key, int | float):
        return False
    return abs(key) <= _SQLITE_INT if isinstance(key, int) else math.isfinite(key) or key == MISSING_NUMBER


def decode_cursor(text: str, scope: str, sort: Sort) -> Cursor:
    """The cursor in `text`, or a 400 (InvalidCursorError) for anything this list did not issue."""
    hint = "use a value from meta.cursors of a previous response of the same list"
    shown = text if len(text) <= _SHOWN_CURSOR else text[:_SHOWN_CURSOR] + "..."
    invalid = bad_request(f"Invalid cursor {shown!r}: {hint}", INVALID_CURSOR)
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        doc = json.loads(raw)
        cursor = Cursor(doc["s"], doc["o"], doc["k"], doc["i"], doc["b"])
    except (binascii.Error, ValueError, UnicodeError, KeyError, TypeError, RecursionError) as exc:
        raise invalid from exc
    fields_ok = _text(cursor.scope) and _text(cursor.sort) and _text(cursor.id) and cursor.backward in (0, 1)
    if not fields_ok:
        raise invalid
    if cursor.scope != scope:
        message = f"Invalid cursor: it belongs to a list of {cursor.scope[:_SHOWN_CURSOR]}, not {scope}; {hint}"
        raise bad_request(message, INVALID_CURSOR)
    if cursor.sort != sort.signature:
        raise bad_request(
            f"Invalid cursor: it was issued for sort {cursor.sort[:_SHOWN_CURSOR]}, this request sorts by "
            f"{sort.signature}; {hint}",
            INVALID_CURSOR,
        )
    if not _valid_key(cursor.key, sort):
        raise invalid
    return Cursor(cursor.scope, cursor.sort, cursor.key, cursor.id, bool(cursor.backward))


# --------------------------------------------------------------------------- fields selection

FieldTree = dict[str, "FieldTree | None"]  # None: the whole value


def parse_fields(op: Operation, raw: str | None, always: Iterable[str] = ("id",)) -> FieldTree | None:
    """`fields=name,emails.email,addresses.city` as a tree; unknown top-level fields are a 400."""
    if raw is None or not raw.strip():
        return None
    record_cls = model(op.record_model) if op.record_model else None
    tree: FieldTree = {}
    for item in raw.split(","):
        path = [part for part in item.strip().split(".") if part]
        if not path:
            continue
        if record_cls is not None and path[0] not in record_cls.model_fields:
            raise bad_request(
                f"Unknown field '{path[0]}' in fields={raw!r}: {op.resource} records have no such field",
                detail={"fields": raw, "unknown": path[0]},
            )
        node = tree
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if part in node and node[part] is None:
                break  # already selected whole
            if last:
                node[part] = None
            else:
                child = node.get(part)
                if child is None:
                    child = node[part] = {}
                node = child
    for name in always:
        tree[name] = None
    return tree


def _select(value: Any, tree: FieldTree | None) -> Any:
    if tree is None:
        return value
    if isinstance(value, list):
        return [_select(item, tree) for item in value]
    if isinstance(value, dict):
        return {key: _select(value[key], sub) for key, sub in tree.items() if key in value}
    return value


def select_fields(record: Record, tree: FieldTree | None) -> Record:
    selected = _select(record, tree)
    assert isinstance(selected, dict)
    return selected
