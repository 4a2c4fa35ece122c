"""Request body validation: the generated `XInput` model, then the contract's own schema.

The strict pydantic model gives the field-by-field messages (unknown and read-only fields,
types); the contract's request schema, checked with an OpenAPI 3.0 validator, adds what the
models do not carry (nullability, `minLength`, `format: date`/`date-time`), so whatever the
sandbox stores also validates when it is read back.

The generated models forbid unknown fields everywhere; the contract does not (a `User` body,
for example, may carry other properties). An unknown field where the contract allows one is
accepted, and not stored at the top level. An update (PATCH) body is held to the same schema as a
create body: the contract requires its required fields in it too (the MCP server fills them from
the stored record).
"""

from __future__ import annotations

import json
import math
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from crm_mcp.operations import Operation, model, resource, spec_path
from crm_mcp.sandbox.errors import bad_request, invalid

if TYPE_CHECKING:
    from referencing import Registry

# The contract and its validators (yaml, openapi-schema-validator, jsonschema, referencing: ~60-90 ms
# to import) are loaded on the first request body to check: a sandbox that only serves reads,
# as on an MCP session's first call, never loads them.

__all__ = ["load_spec", "validate_body"]


@cache
def load_spec() -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(spec_path(), encoding="utf-8") as fh:
        spec: dict[str, Any] = yaml.load(fh, Loader=loader)
    return spec


@cache
def _registry() -> Registry:
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    return Registry().with_resource("spec", Resource.from_contents(load_spec(), default_specification=DRAFT4))


@cache
def _schema_validator(path: str, method: str) -> Any:
    body = load_spec()["paths"][path][method.lower()]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    from openapi_schema_validator import OAS30WriteValidator, oas30_format_checker

    return OAS30WriteValidator({"$ref": f"spec{ref}"}, registry=_registry(), format_checker=oas30_format_checker)


def _loc(parts: Any) -> str:
    return ".".join(str(p) for p in parts)


class _NotFinite(ValueError):
    pass


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _NotFinite(text)
    return number


def _no_constant(text: str) -> float:
    raise _NotFinite(text)  # NaN, Infinity, -Infinity are not JSON


def parse_json_object(raw: bytes, op: Operation) -> dict[str, Any]:
    if not raw.strip():
        raise bad_request(f"Request body is required: a JSON object with the fields of {op.body_model}")
    try:
        body = json.loads(raw, parse_float=_finite_float, parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise bad_request("Malformed JSON body: not UTF-8 text") from exc
    except RecursionError as exc:
        raise bad_request("Malformed JSON body: nested too deeply") from exc
    except _NotFinite as exc:
        raise bad_request(f"Malformed JSON body: the number {exc} is out of range") from exc
    except json.JSONDecodeError as exc:
        raise bad_request(
            f"Malformed JSON body: {exc.msg} at line {exc.lineno} column {exc.colno}",
            detail={"line": exc.lineno, "column": exc.colno, "error": exc.msg},
        ) from exc
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise bad_request(f"Malformed JSON body: {exc}") from exc
    if not isinstance(body, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(body), "a number")
        raise bad_request(f"Request body must be a JSON object, not {kind}")
    return body


def _resolve(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = load_spec()["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _alternatives(node: Any) -> list[dict[str, Any]]:
    node = _resolve(node)
    if not isinstance(node, dict):
        return []
    out = [node]
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in node.get(key, []):
            out += _alternatives(sub)
    return out


@cache
def _allows_unknown(path: str, method: str, parent: tuple[str, ...], key: str) -> bool:
    """Whether the contract lets the request body of (path, method) carry the undeclared
    property `key` in the object at `parent` (list indexes written as "[]")."""
    body = load_spec()["paths"][path][method.lower()]["requestBody"]["content"]["application/json"]["schema"]
    nodes = _alternatives(body)
    for part in parent:
        step = [n.get("items") if part == "[]" else (n.get("properties") or {}).get(part) for n in nodes]
        nodes = [alt for node in step if node is not None for alt in _alternatives(node)]
    objects = [n for n in nodes if n.get("type") == "object" or "properties" in n]
    declared = any(key in (n.get("properties") or {}) for n in objects)
    return bool(objects) and not declared and all(n.get("additionalProperties") is not False for n in objects)


def _model_errors(op: Operation, body: dict[str, Any]) -> list[dict[str, str]]:
    assert op.body_model is not None
    try:
        model(op.body_model).model_validate(body)
    except ValidationError as exc:
        errors = exc.errors()
    else:
        return []
    read_only = set(resource(op.resource).read_only_fields)
    out: list[dict[str, str]] = []
    for err in errors:
        field = _loc(err["loc"])
        if err["type"] == "extra_forbidden":
            parent = tuple("[]" if isinstance(p, int) else str(p) for p in err["loc"][:-1])
            if _allows_unknown(op.path, op.method, parent, str(err["loc"][-1])):
                continue
        if err["type"] == "missing":
            out.append({"field": field, "rule": "required", "message": f"'{field}' is required"})
        elif err["type"] == "extra_forbidden" and len(err["loc"]) == 1 and field in read_only:
            out.append(
                {
                    "field": field,
                    "rule": "read-only",
                    "message": f"'{field}' is read-only: the sandbox sets it, leave it out of the request body",
                }
            )
        elif err["type"] == "extra_forbidden":
            out.append(
                {"field": field, "rule": "unknown field", "message": f"'{field}' is not a field of {op.body_model}"}
            )
        else:
            got = json.dumps(err.get("input"), default=str)[:60]
            out.append({"field": field, "rule": err["msg"], "message": f"'{field}': {err['msg']} (got {got})"})
    return out


def _schema_errors(op: Operation, body: dict[str, Any]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for err in _schema_validator(op.path, op.method).iter_errors(body):
        field = _loc(err.path) or "(body)"
        out.append({"field": field, "rule": str(err.validator), "message": f"'{field}': {err.message}"})
    return out


def validate_body(op: Operation, raw: bytes) -> dict[str, Any]:
    """The JSON object in `raw`, valid for `op`'s body, or a 400 naming every bad field."""
    body = parse_json_object(raw, op)
    errors = _model_errors(op, body) or _schema_errors(op, body)
    if errors:
        raise invalid("request body", errors)
    return body
