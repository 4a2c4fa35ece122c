"""Custom object schemas and their objects: the field definitions a schema declares, and the
values its objects must then have.

A schema's fields each have a `name` (unique), a `type` (one of the contract's twelve; none means
`string`), optionally `required`, `options` (the allowed values of a `select` or `multiselect`,
which must have some) and a `default_value` (valid for the type). An object of that schema
names only the schema's fields, each once, with a value (always a string, as the contract
says) that its type accepts; a required field must have a non-empty value, and a field left out
of a new object gets its default value.

Value rules: `number`/`currency` a decimal number ("1500", "-2.5"); `integer` a whole number;
`boolean` "true" or "false"; `date` YYYY-MM-DD; `datetime` an ISO 8601 date and time; `email`
name@domain; `phone` digits with + ( ) . - and spaces; `reference` a non-empty id; `select` one
option's value; `multiselect` option values separated by ";"; `string` anything.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import date
from typing import Any

from crm_mcp.sandbox.errors import invalid
from crm_mcp.sandbox.query import parse_timestamp

__all__ = ["check_object", "check_schema"]

Record = dict[str, Any]
MULTISELECT_SEPARATOR = ";"
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"\+?[0-9 ().\-]+")


def _number(value: str) -> bool:
    return bool(_NUMBER.fullmatch(value)) and math.isfinite(float(value))


def _date(value: str) -> bool:
    try:
        return bool(_DATE.fullmatch(value)) and bool(date.fromisoformat(value))
    except ValueError:
        return False


def _datetime(value: str) -> bool:
    if "T" not in value:
        return False
    try:
        parse_timestamp(value)
    except ValueError:
        return False
    return True


def _phone(value: str) -> bool:
    return bool(_PHONE.fullmatch(value)) and sum(ch.isdigit() for ch in value) >= 3


# type -> (accepts a value, what the type expects, as an error message says it)
_SIMPLE: dict[str, tuple[Callable[[str], bool], str]] = {
    "string": (lambda value: True, "text"),
    "reference": (lambda value: bool(value.strip()), "a non-empty id"),
    "number": (_number, "a number such as 1500 or 2.5"),
    "currency": (_number, "an amount such as 1500 or 1500.50"),
    "integer": (lambda value: bool(_INTEGER.fullmatch(value)), "a whole number"),
    "boolean": (lambda value: value in ("true", "false"), "true or false"),
    "date": (_date, "a date YYYY-MM-DD"),
    "datetime": (_datetime, "an ISO 8601 date and time such as 2026-01-31T09:00:00Z"),
    "email": (lambda value: bool(_EMAIL.fullmatch(value)), "an email address"),
    "phone": (_phone, "a phone number"),
}


def _options(field: Record) -> list[str]:
    return [o["value"] for o in field.get("options") or [] if isinstance(o, dict) and isinstance(o.get("value"), str)]


def value_problem(field: Record, value: str) -> str | None:
    """Why `value` does not suit the schema field `field` (None when it does)."""
    kind = field.get("type") or "string"
    name = field.get("name")
    if kind in ("select", "multiselect"):
        options = _options(field)
        chosen = value.split(MULTISELECT_SEPARATOR) if kind == "multiselect" else [value]
        wrong = [item for item in chosen if item.strip() not in options]
        if not wrong:
            return None
        how = f" (several separated by '{MULTISELECT_SEPARATOR}')" if kind == "multiselect" else ""
        return f"'{name}' is a {kind}: {wrong[0]!r} is not one of its options {options}{how}"
    accepts, expected = _SIMPLE[kind]
    if accepts(value):
        return None
    return f"'{name}' is a {kind} field: expected {expected}, got {value!r}"


def check_schema(schema: Record) -> None:
    """A 400 naming every field definition of `schema` that objects could not satisfy."""
    errors: list[dict[str, str]] = []
    seen: set[str] = set()
    for index, field in enumerate(schema.get("fields") or []):
        where = f"fields.{index}"
        name = field.get("name")
        if not isinstance(name, str) or not name.strip():
            errors.append({"field": where, "rule": "required", "message": f"'{where}.name' is required"})
            continue
        if name in seen:
            errors.append({"field": where, "rule": "unique", "message": f"field name '{name}' is given more than once"})
        seen.add(name)
        kind = field.get("type") or "string"
        if kind in ("select", "multiselect") and not _options(field):
            message = f'\'{name}\' is a {kind} field: give its options ([{{"value": ..., "label": ...}}])'
            errors.append({"field": f"{where}.options", "rule": "required", "message": message})
            continue
        default = field.get("default_value")
        if isinstance(default, str) and (problem := value_problem(field, default)):
            errors.append({"field": f"{where}.default_value", "rule": kind, "message": f"default value: {problem}"})
    if errors:
        raise invalid("custom object schema", errors)


def check_object(schema: Record, record: Record, *, new: bool) -> Record:
    """`record` (a custom object of `schema`) with defaults filled in when `new`; a 400 naming
    every field that breaks the schema."""
    defined = {f["name"]: f for f in schema.get("fields") or [] if isinstance(f, dict) and f.get("name")}
    given = [f for f in record.get("fields") or [] if isinstance(f, dict)]
    errors: list[dict[str, str]] = []
    seen: set[str] = set()
    for index, item in enumerate(given):
        where = f"fields.{index}"
        name = item.get("name")
        if not isinstance(name, str) or name not in defined:
            known = ", ".join(defined) or "none"
            message = f"'{name}' is not a field of custom object schema '{schema['id']}' (its fields: {known})"
            errors.append({"field": f"{where}.name", "rule": "unknown field", "message": message})
            continue
        if name in seen:
            errors.append({"field": where, "rule": "unique", "message": f"field '{name}' is given more than once"})
        seen.add(name)
        value = item.get("value")
        if isinstance(value, str) and value != "" and (problem := value_problem(defined[name], value)):
            rule = defined[name].get("type") or "string"
            errors.append({"field": f"{where}.value", "rule": rule, "message": problem})
    defaults = [
        {"name": name, "value": field["default_value"]}
        for name, field in defined.items()
        if new and name not in seen and isinstance(field.get("default_value"), str)
    ]
    filled = {item.get("name") for item in [*given, *defaults] if isinstance(item.get("value"), str) and item["value"]}
    for name, field in defined.items():
        if field.get("required") and name not in filled:
            message = f"'{name}' is required by custom object schema '{schema['id']}'"
            errors.append({"field": "fields", "rule": "required", "message": message})
    if errors:
        raise invalid("custom object", errors)
    return {**record, "fields": [*given, *defaults]} if defaults else record
