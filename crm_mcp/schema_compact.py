"""Compact JSON Schemas for tools/list: what an agent needs to write a call, in few tokens.

pydantic's schemas are written for people reading docs: titles on every property,
`anyOf: [X, {type: null}]` for optional values, `default: null`, `$defs` indirection. An agent
pays for every one of those tokens on every turn, and the server validates every call with the
full pydantic model anyway (a wrong value comes back as an error naming the field and the rule).
So the published schema keeps names, non-string types, top-level enums, bounds and required
fields, and leaves out:

- `"type": "string"`: a property with no type takes a string (the server's instructions say so);
- string constraints (lengths, patterns) and formats: checked on the server;
- enums of nested objects and the ISO 4217 currency list: checked on the server, whose error
  lists the allowed values;
- `"type": "object"` / `"type": "array"` where `properties` / `items` already say it;
- nested fields the contract weighs `low` or `edge-case` (e.g. an address's `line4`): accepted
  and validated, just not advertised; top-level fields are always all named.
"""

from __future__ import annotations

from typing import Any

from crm_mcp.generated.operations import WEIGHTS

_DROP = {
    "title", "default", "additionalProperties", "examples", "format", "maxLength", "minLength", "pattern", "maxItems",
}
_NESTED_KEEP = {"critical", "high"}
_COLLAPSE = {"PassThroughBodyInput"}  # connector-specific extensions: advertised as a bare array
_BIG_ENUM = 40  # enums longer than this (currencies) are left to server-side validation


def compact_schema(schema: dict[str, Any], *, keep_descriptions: set[str] | None = None) -> dict[str, Any]:
    """A compact copy of a pydantic model's JSON Schema, with `$defs` inlined.

    Descriptions are kept only for the top-level properties named in `keep_descriptions`.
    """
    defs = schema.get("$defs", {})
    keep = keep_descriptions or set()
    out: dict[str, Any] = {"type": "object", "properties": {}}
    for name, prop in schema.get("properties", {}).items():
        compacted = _Compactor(defs).node(prop, depth=0)
        if name in keep and prop.get("description"):
            compacted["description"] = prop["description"]
        out["properties"][name] = compacted
    if schema.get("required"):
        out["required"] = list(schema["required"])
    return out


class _Compactor:
    def __init__(self, defs: dict[str, Any]):
        self.defs = defs

    def node(self, node: Any, *, depth: int, def_name: str | None = None, in_array: bool = False) -> Any:
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name in _COLLAPSE:
                return {}
            return self.node(self.defs[name], depth=depth, def_name=name, in_array=in_array)
        options = node.get("anyOf")
        if options is not None:
            non_null = [o for o in options if o.get("type") != "null"]
            if len(non_null) == 1:  # Optional[X] -> X: leaving a field out already means "not set"
                merged = {k: v for k, v in node.items() if k != "anyOf"}
                merged.update(non_null[0])
                return self.node(merged, depth=depth, def_name=def_name, in_array=in_array)
            return {}  # a free-form value (e.g. a custom field's value)
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _DROP or key == "description":
                continue
            if key == "properties":
                out[key] = self.properties(value, depth=depth, def_name=def_name, in_array=in_array)
            elif key == "items":
                out[key] = self.node(value, depth=depth + 1, in_array=True)
            elif key == "required" and depth > 0 and def_name:
                continue  # nested required fields are enforced server-side
            else:
                out[key] = value
        enum = out.get("enum")
        if enum is not None and (in_array or len(enum) > _BIG_ENUM):
            del out["enum"]
        if out.get("type") == "string" or ("enum" in out and out.get("type") == "string"):
            del out["type"]
        if out.get("type") == "object" and "properties" in out:
            del out["type"]  # `properties` says it
        if out.get("type") == "array" and out.get("items") in ({}, {"type": "string"}):
            del out["items"]  # a list of strings (tags, ids) or of free-form values
        elif out.get("type") == "array" and "items" in out:
            del out["type"]  # `items` says it
        return out

    def properties(
        self, props: dict[str, Any], *, depth: int, def_name: str | None, in_array: bool
    ) -> dict[str, Any]:
        weights = WEIGHTS.get((def_name or "").removesuffix("Input"), {})
        keep = _NESTED_KEEP if _NESTED_KEEP & set(weights.values()) else {*_NESTED_KEEP, "medium"}
        out: dict[str, Any] = {}
        for name, prop in props.items():
            if weights and weights.get(name) not in keep and not (name == "name" and def_name == "CustomFieldInput"):
                continue
            out[name] = self.node(prop, depth=depth + 1, in_array=in_array)
        return out
