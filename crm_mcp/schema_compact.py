"""Compact JSON Schemas for tools/list: what an agent needs to write a right call, in few tokens.

pydantic's schemas are written for people reading docs: titles on every property,
`anyOf: [X, {type: null}]` for optional values, `default: null`, `$defs` indirection. An agent
pays for every one of those tokens on every turn, and the server validates every call with the
full pydantic model anyway (a wrong value comes back as an error naming the field and the rule).

Every client must load every tool, so the published schema is strict where clients are strict:
- every node has a `type` (strings too), beside `properties` and `items` (Ajv's strict mode),
  or is an `anyOf` of typed options (a custom field's value); every array names its `items`
  (VS Code/Copilot refuses arrays without); every node typed (OpenAPI-subset function
  declarations, e.g. Gemini's, need a type everywhere);
- enums are kept, nested ones too (email, phone and address types), except very long ones (the
  ISO 4217 currency list), which stay a typed string checked on the server;
- `format` is named for dates and date-times (`date`, `date-time`).

And it leaves out what the server checks anyway or what says nothing to an agent:
- titles, defaults, `additionalProperties`, string lengths and patterns, other formats;
- nested `required` lists and nested descriptions (the contract's prose: enforced and explained
  by the server's validation errors);
- nested fields the contract weighs `low` or `edge-case` (e.g. an address's `line4`): accepted
  and validated, just not advertised; top-level fields are always all named;
- connector-specific body extensions (`pass_through`), advertised as an array of objects.

Descriptions are published for top-level properties only: they are the tool's own arguments,
whose short descriptions `crm_mcp.tool_args` (and the workflow argument models) write for agents.
"""

from __future__ import annotations

from typing import Any

from crm_mcp.generated.operations import WEIGHTS

_DROP = {
    "title", "default", "additionalProperties", "examples", "maxLength", "minLength", "pattern", "maxItems",
    "description",
}
_FORMATS = {"date", "date-time"}  # the formats an agent must get right to write a valid value
_NESTED_KEEP = {"critical", "high"}
_COLLAPSE = {"PassThroughBodyInput"}  # connector-specific extensions: advertised as bare objects
_BIG_ENUM = 40  # enums longer than this (currencies) are left to server-side validation


def compact_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A compact copy of a pydantic model's JSON Schema, with `$defs` inlined (see the module doc)."""
    defs = schema.get("$defs", {})
    out: dict[str, Any] = {"type": "object", "properties": {}}
    for name, prop in schema.get("properties", {}).items():
        compacted = _Compactor(defs).node(prop, depth=0)
        if prop.get("description"):
            compacted["description"] = prop["description"]
        out["properties"][name] = compacted
    if schema.get("required"):
        out["required"] = list(schema["required"])
    return out


class _Compactor:
    def __init__(self, defs: dict[str, Any]):
        self.defs = defs

    def node(self, node: Any, *, depth: int, def_name: str | None = None) -> Any:
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name in _COLLAPSE:
                return {"type": "object"}
            return self.node(self.defs[name], depth=depth, def_name=name)
        options = node.get("anyOf")
        if options is not None:
            non_null = [o for o in options if o.get("type") != "null"]
            if len(non_null) == 1:  # Optional[X] -> X: leaving a field out already means "not set"
                merged = {k: v for k, v in node.items() if k != "anyOf"}
                merged.update(non_null[0])
                return self.node(merged, depth=depth, def_name=def_name)
            typed = [self.node(o, depth=depth) for o in non_null]  # e.g. a custom field's value
            if {"type": "number"} in typed and {"type": "integer"} in typed:
                typed.remove({"type": "integer"})  # a number already takes whole numbers
            return {"anyOf": typed}
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _DROP or (key == "format" and value not in _FORMATS):
                continue
            if key == "properties":
                out[key] = self.properties(value, depth=depth, def_name=def_name)
            elif key == "items":
                out[key] = self.node(value, depth=depth + 1)
            elif key == "required" and depth > 0 and def_name:
                continue  # nested required fields are enforced server-side
            else:
                out[key] = value
        if len(out.get("enum", ())) > _BIG_ENUM:
            del out["enum"]
        if "type" not in out:  # pydantic leaves it off an enum; `properties`/`items` imply it
            out["type"] = _implied_type(out)
        if out["type"] == "array" and "items" not in out:
            out["items"] = {"type": "string"}
        return {"type": out.pop("type"), **out}  # type first: easier to read, same tokens

    def properties(self, props: dict[str, Any], *, depth: int, def_name: str | None) -> dict[str, Any]:
        weights = WEIGHTS.get((def_name or "").removesuffix("Input"), {})
        keep = _NESTED_KEEP if _NESTED_KEEP & set(weights.values()) else {*_NESTED_KEEP, "medium"}
        out: dict[str, Any] = {}
        for name, prop in props.items():
            if weights and weights.get(name) not in keep and not (name == "name" and def_name == "CustomFieldInput"):
                continue
            out[name] = self.node(prop, depth=depth + 1)
        return out


def _implied_type(node: dict[str, Any]) -> str:
    if "properties" in node:
        return "object"
    if "items" in node:
        return "array"
    values = node.get("enum") or [node.get("const", "")]
    kinds = {type(v) for v in values}
    if kinds <= {int}:
        return "integer"
    if kinds <= {int, float}:
        return "number"
    return "boolean" if kinds == {bool} else "string"
