"""Schemas every client loads, arguments that explain themselves, and per-call consumer switching.

Every tool a client can see (the 50 operation tools, the workflow tools, the discovery
meta-tools), read through a real MCP client session, is checked against the JSON Schema draft
2020-12 meta-schema and against the strictest clients' rules: every array names its `items`
(VS Code/Copilot refuses the tool otherwise), every parameter is typed, recursively (clients that
translate tools into OpenAPI-subset function declarations, e.g. Gemini), and `type` stands beside
`properties` and `items` (Ajv in strict mode). Per-call `consumer_id` / `service_id` are off by
default (not listed, refused) and on by a setting, optionally limited to a list of consumers.

The strict rules are also checked by a real strict client validator, Ajv 8 in strict mode with
ajv-formats, installed under .ci/ajv (CI does it):
    npm install --prefix .ci/ajv ajv@8 ajv-formats@3
Without it that test skips, unless CRM_MCP_REQUIRE_AJV=1.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from mcp.client import Client
from mcp_support import sandbox_settings, text_of

from crm_mcp.config import ConfigError, Settings, settings_from_env
from crm_mcp.operations import OPERATIONS, model
from crm_mcp.schema_compact import compact_schema
from crm_mcp.selection import Selection
from crm_mcp.server import build_server
from crm_mcp.tokens import json_tokens
from crm_mcp.tool_args import REPLACES_LIST, args_model, switching_model, with_consumer_arguments
from crm_mcp.tools import operation_tools, registry

pytestmark = pytest.mark.anyio

OPERATION_NAMES = [op.tool_name for op in OPERATIONS]
WORKFLOW_NAMES = ["search_crm", "get_account_overview", "log_interaction"]
META_NAMES = ["find_tools", "describe_tool", "call_tool"]
JOURNAL_NAMES = ["undo_change", "list_changes", "crm_changes"]


# ------------------------------------------------------------------------------ the rules


def nodes(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every parameter schema under `schema` (properties, items, anyOf options), with its path."""
    if not isinstance(schema, dict):
        return
    for name, sub in schema.get("properties", {}).items():
        yield f"{path}.{name}", sub
        yield from nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield f"{path}[]", schema["items"]
        yield from nodes(schema["items"], f"{path}[]")
    for i, option in enumerate(schema.get("anyOf", [])):
        yield f"{path}|{i}", option
        yield from nodes(option, f"{path}|{i}")


def typed(node: dict[str, Any]) -> bool:
    """A type, an enum or a const, or an anyOf whose options are all typed."""
    if "type" in node or "enum" in node or "const" in node:
        return True
    options = node.get("anyOf")
    return bool(options) and all(typed(o) for o in options)


def strict_client_violations(schema: dict[str, Any]) -> list[str]:
    """What the strictest clients refuse in a tool's schema."""
    found = []
    if schema.get("type") != "object":
        found.append("root: not type object")
    for path, node in nodes(schema):
        if not typed(node):
            found.append(f"{path}: no type")
        if node.get("type") == "array" and "items" not in node:
            found.append(f"{path}: array without items")
        if "properties" in node and node.get("type") != "object":
            found.append(f"{path}: properties without type object")
        if "items" in node and node.get("type") != "array":
            found.append(f"{path}: items without type array")
    return found


def test_the_rules_catch_what_clients_refuse() -> None:
    """Yesterday's shapes fail the rules (the checker is not vacuous)."""
    old_contact = {"type": "object", "properties": {
        "cursor": {}, "tags": {"type": "array"}, "emails": {"items": {"properties": {"email": {}}}},
        "custom_fields": {"type": "array", "items": {"type": "object", "properties": {"value": {}}}},
    }}
    assert strict_client_violations(old_contact) == [
        ".cursor: no type",
        ".tags: array without items",
        ".emails: no type",
        ".emails: items without type array",
        ".emails[]: no type",
        ".emails[]: properties without type object",
        ".emails[].email: no type",
        ".custom_fields[].value: no type",
    ]
    assert strict_client_violations({"type": "object", "properties": {"v": {"anyOf": [{"type": "string"}, {}]}}}) == [
        ".v: no type", ".v|1: no type",
    ]


# ------------------------------------------------------------------------------ tools/list


@pytest.fixture
async def listed(sandbox_server: Any) -> dict[str, Any]:
    """Every tool a client can be shown: the default tools/list and discover mode's meta-tools."""
    settings = sandbox_settings(sandbox_server)
    async with Client(build_server(settings)) as client:
        tools = (await client.list_tools()).tools
    async with Client(build_server(settings, selection=Selection(tool_mode="discover"))) as client:
        tools += (await client.list_tools()).tools
    return {t.name: t for t in tools}


async def test_every_tool_passes_the_meta_schema_and_the_strictest_clients(listed: dict[str, Any]) -> None:
    assert list(listed) == [*OPERATION_NAMES, *WORKFLOW_NAMES, *JOURNAL_NAMES, *META_NAMES]
    failures = {}
    for name, tool in listed.items():
        jsonschema.Draft202012Validator.check_schema(tool.input_schema)
        if tool.output_schema is not None:
            jsonschema.Draft202012Validator.check_schema(tool.output_schema)
            assert not strict_client_violations(tool.output_schema), name
        if broken := strict_client_violations(tool.input_schema):
            failures[name] = broken
    assert failures == {}


async def test_closed_sets_are_enums_and_dates_name_their_format(listed: dict[str, Any]) -> None:
    def prop(tool: str, *path: str) -> dict[str, Any]:
        node = listed[tool].input_schema
        for step in path:
            node = node["items"] if step == "[]" else node["properties"][step]
        return node

    email_types = ["primary", "secondary", "work", "personal", "billing", "other"]
    assert prop("create_contact", "emails", "[]", "type") == {"type": "string", "enum": email_types}
    assert prop("update_lead", "phone_numbers", "[]", "type")["enum"] == [
        "primary", "secondary", "home", "work", "office", "mobile", "assistant", "fax", "direct-dial-in",
        "personal", "billing", "other",
    ]
    assert prop("create_company", "addresses", "[]", "type")["enum"] == [
        "primary", "secondary", "home", "office", "shipping", "billing", "work", "other",
    ]
    assert prop("create_custom_object_schema", "fields", "[]", "type")["enum"] == [
        "string", "number", "integer", "boolean", "date", "datetime", "currency", "email", "phone", "reference",
        "select", "multiselect",
    ]
    assert prop("create_activity", "type")["enum"][:3] == ["call", "meeting", "email"]
    assert prop("list_contacts", "sort", "by") == {
        "type": "string", "enum": ["created_at", "updated_at", "name", "first_name", "last_name", "email"],
    }
    # the ~180 currency codes stay a typed string (validated on the server), with what it takes
    assert prop("create_opportunity", "currency") == {"type": "string", "description": "ISO 4217 code, e.g. USD"}
    assert "EUR" in str(model("OpportunityInput").model_fields["currency"].annotation)
    # dates and date-times, from the contract's formats or its ISO examples
    assert prop("create_opportunity", "close_date") == {"type": "string", "format": "date"}
    assert prop("create_contact", "birthday") == {"type": "string", "format": "date"}
    assert prop("create_activity", "activity_datetime") == {"type": "string", "format": "date-time"}
    assert prop("create_activity", "end_date") == {"type": "string", "format": "date"}
    assert prop("list_contacts", "filter", "updated_since") == {"type": "string", "format": "date-time"}
    # a custom field's value: any of the contract's typed options
    assert prop("update_contact", "custom_fields", "[]", "value") == {"anyOf": [
        {"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "object"},
        {"type": "array", "items": {"anyOf": [
            {"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "object"},
        ]}},
    ]}


async def test_a_custom_field_takes_numbers_booleans_and_lists(sandbox_server: Any) -> None:
    """What the schema offers, the server takes and the CRM stores (a whole number stays whole)."""
    settings = sandbox_settings(sandbox_server)
    async with Client(build_server(settings)) as client:
        for value in [42, 2.5, True, "gold", ["a", 3]]:
            created = await client.call_tool("create_contact", {
                "first_name": "Typed", "last_name": "Value", "custom_fields": [{"id": "cf_tier", "value": value}],
            })
            assert not created.is_error, text_of(created)
            stored = sandbox_server.store.get(settings.consumer_id, "contacts", "", created.structured_content["id"])
            assert stored["custom_fields"][0]["value"] == value
            assert type(stored["custom_fields"][0]["value"]) is type(value)


async def test_a_custom_objects_text_values_take_numbers_and_booleans(sandbox_server: Any) -> None:
    """The contract stores a custom object's values as text: a number or boolean an agent gives is
    converted to that text (budget 45000 -> "45000"), not refused; a schema's default value too."""
    settings = sandbox_settings(sandbox_server)
    async with Client(build_server(settings)) as client:
        created = await client.call_tool("create_custom_object", {
            "object_id": "cos_projects", "name": "Typed project",
            "fields": [{"name": "company_id", "value": "com_001"}, {"name": "status", "value": "planned"},
                       {"name": "budget", "value": 45000}],
        })
        assert not created.is_error, text_of(created)
        schema = await client.call_tool("create_custom_object_schema", {
            "name": "Flagged", "fields": [{"id": "vip", "name": "vip", "type": "boolean", "default_value": True}],
        })
        assert not schema.is_error, text_of(schema)
    project = sandbox_server.store.get(settings.consumer_id, "custom_objects", "cos_projects",
                                       created.structured_content["id"])
    assert {f["name"]: f["value"] for f in project["fields"]}["budget"] == "45000"
    flagged = sandbox_server.store.get(settings.consumer_id, "custom_object_schemas", "",
                                       schema.structured_content["id"])
    assert flagged["fields"][0]["default_value"] == "true"


AJV_MODULES = Path(__file__).resolve().parents[2] / ".ci" / "ajv" / "node_modules"
# Compiles every schema as a strict client does: strictTypes wants `type` beside `properties` and
# `items`, strictRequired wants required names among the properties, and unknown keywords or
# formats are errors.
AJV_CHECK = """
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats");
const failures = [];
for (const [name, schema] of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))) {
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  addFormats(ajv);
  try { ajv.compile(schema); } catch (e) { failures.push(name + ": " + e.message); }
}
console.log(JSON.stringify(failures));
"""


def ajv_failures(schemas: list[tuple[str, dict[str, Any]]], tmp_path: Path) -> list[str]:
    (tmp_path / "schemas.json").write_text(json.dumps(schemas), encoding="utf-8")
    result = subprocess.run(
        ["node", "-e", AJV_CHECK, str(tmp_path / "schemas.json")], env={**os.environ, "NODE_PATH": str(AJV_MODULES)},
        capture_output=True, text=True, timeout=60, check=True,
    )
    failures: list[str] = json.loads(result.stdout)
    return failures


@pytest.mark.slow  # runs Ajv in a Node.js process (~2.5 s)
async def test_ajv_in_strict_mode_compiles_every_schema(
    listed: dict[str, Any], sandbox_server: Any, tmp_path: Path
) -> None:
    if not (AJV_MODULES / "ajv-formats").exists() or not shutil.which("node"):
        reason = "Ajv not installed; install it with `npm install --prefix .ci/ajv ajv@8 ajv-formats@3`"
        if os.environ.get("CRM_MCP_REQUIRE_AJV") == "1":
            raise RuntimeError(reason)
        pytest.skip(reason)
    async with Client(build_server(switching(sandbox_server))) as client:
        switched = (await client.list_tools()).tools
    schemas = [(f"{t.name} input", t.input_schema) for t in [*listed.values(), *switched]]
    schemas += [(f"{t.name} output", t.output_schema) for t in listed.values() if t.output_schema is not None]
    assert set(listed) >= {t.name for t in switched}  # every tool with switching on too, and the outputs
    assert ajv_failures(schemas, tmp_path) == []
    # and it refuses yesterday's shapes
    old = {"type": "object", "properties": {"filter": {"properties": {"name": {}}}, "tags": {"items": {}}}}
    assert ajv_failures([("old", old)], tmp_path) == [
        'old: strict mode: missing type "object" for keyword "properties" at "#/properties/filter" (strictTypes)',
    ]


# ------------------------------------------------------------------------------ descriptions


def test_arguments_say_what_their_names_do_not() -> None:
    by_name = {t.name: t.input_schema["properties"] for t in operation_tools()}
    for op in OPERATIONS:
        props = by_name[op.tool_name]
        if "cursor" in props:
            assert props["cursor"]["description"] == "next_cursor of the previous page"
            assert props["max_records"]["description"] == "Total to read across pages (≤ 1000)"
        if op.action in ("list", "get") and "fields" in props:
            assert props["fields"]["description"] == 'Fields to return; ["*"]: all'
        for name, prop in props.items():
            is_list = prop.get("type") == "array" and name != "pass_through"
            if op.action == "update" and is_list:  # an update stores the list given, whole
                assert prop["description"] == REPLACES_LIST, (op.tool_name, name)
            elif op.action == "create":
                assert prop.get("description") != REPLACES_LIST, (op.tool_name, name)
    filters = {name: props["filter"]["description"] for name, props in by_name.items() if "filter" in props}
    assert filters == {
        "list_companies": "Text matching (exact, partial, case) depends on the connector; "
                          "updated_since: the record's last edit",
        "list_contacts": "Ids match exactly; text matching (exact, partial, case) depends on the connector; "
                         "updated_since: the record's last edit",
        "list_opportunities": "Ids match exactly; text matching (exact, partial, case) depends on the connector",
        "list_leads": "Text matching (exact, partial, case) depends on the connector",
        "list_activities": "Ids match exactly; updated_since: the record's last edit, not when the activity happened",
    }
    assert by_name["get_custom_object"]["object_id"]["description"] == "Custom object schema id"


async def test_instructions_no_longer_say_untyped_means_string(sandbox_server: Any) -> None:
    settings = sandbox_settings(sandbox_server)
    async with Client(build_server(settings, selection=Selection(tool_mode="discover"))) as client:
        instructions = client.instructions or ""
        describe = next(t for t in (await client.list_tools()).tools if t.name == "describe_tool")
        described = text_of(await client.call_tool("describe_tool", {"name": "list_contacts"}))
    assert "without a type" not in instructions and "Ids come from list_*/get_* results." in instructions
    assert describe.description == "A tool's arguments as JSON Schema."
    assert '"cursor":{"type":"string","description":"next_cursor of the previous page"}' in described


# ------------------------------------------------------------------------------ token budgets


async def test_token_budgets_of_what_clients_load(listed: dict[str, Any]) -> None:
    wire = [listed[name].model_dump(by_alias=True, exclude_none=True) for name in OPERATION_NAMES]
    assert json_tokens(wire) <= 12_500
    assert max(json_tokens(t) for t in wire) <= 750
    meta = [listed[name].model_dump(by_alias=True, exclude_none=True) for name in META_NAMES]
    assert json_tokens(meta) <= 400


# ------------------------------------------------------------------------------ per-call consumers


def other_consumer() -> str:
    return f"other-{uuid.uuid4().hex[:10]}"


def switching(sandbox: Any, allowed: frozenset[str] | None = None) -> Settings:
    base = sandbox_settings(sandbox)
    return Settings(api_key=base.api_key, app_id=base.app_id, consumer_id=base.consumer_id,
                    base_url=base.base_url, per_call_consumer=True, allowed_consumers=allowed)


async def test_per_call_consumer_is_off_by_default_not_listed_and_refused(sandbox_server: Any) -> None:
    other = other_consumer()
    async with Client(build_server(sandbox_settings(sandbox_server))) as client:
        for tool in (await client.list_tools()).tools:
            assert not {"consumer_id", "service_id"} & set(tool.input_schema["properties"]), tool.name
        calls = [("list_contacts", {"limit": 1}), ("delete_note", {"id": "not_001"}), ("search_crm", {"query": "Acme"})]
        for (tool, arguments), argument in itertools.product(calls, ("consumer_id", "service_id")):
            value = other if argument == "consumer_id" else "hubspot"
            result = await client.call_tool(tool, {**arguments, argument: value})
            assert result.is_error
            assert text_of(result) == (
                f"Invalid arguments for {tool}: {argument}: Value error, per-call consumer switching is off "
                "on this server: calls act for its configured consumer and connector (the operator can turn it "
                "on with CRM_MCP_PER_CALL_CONSUMER=1). Leave this argument out. Fix them and call again."
            )
    assert sandbox_server.faults.count(consumer=other) == 0
    assert not sandbox_server.store.knows(other)


async def test_per_call_consumer_on_lists_the_arguments_and_acts_for_that_consumer(sandbox_server: Any) -> None:
    settings, other = switching(sandbox_server), other_consumer()
    async with Client(build_server(settings)) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        for name in [*OPERATION_NAMES, *WORKFLOW_NAMES]:
            props = listed[name].input_schema["properties"]
            assert props["consumer_id"] == {
                "type": "string", "description": "Act for this Apideck consumer instead of the server's",
            }
            assert props["service_id"]["type"] == "string"
        created = await client.call_tool("create_note", {"title": "For the other one", "content": "x",
                                                         "consumer_id": other})
        assert not created.is_error, text_of(created)
        note_id = created.structured_content["id"]
        theirs = await client.call_tool("get_note", {"id": note_id, "consumer_id": other})
        ours = await client.call_tool("get_note", {"id": note_id})
        renamed = await client.call_tool("update_company", {"id": "com_001", "name": "Theirs Only Ltd",
                                                            "consumer_id": other})
        assert not renamed.is_error, text_of(renamed)
        found_theirs = await client.call_tool("search_crm", {"query": "Theirs Only", "consumer_id": other})
        found_ours = await client.call_tool("search_crm", {"query": "Theirs Only"})
    assert not theirs.is_error and "For the other one" in text_of(theirs)
    assert ours.is_error  # the server's own consumer has its own copy of the CRM, without that note
    assert "com_001" in text_of(found_theirs) and "Theirs Only Ltd" in text_of(found_theirs)
    assert "com_001" not in text_of(found_ours)
    assert sandbox_server.store.get(other, "notes", "", note_id)["title"] == "For the other one"
    assert sandbox_server.store.get(settings.consumer_id, "notes", "", note_id) is None


async def test_the_allow_list_limits_which_consumers_a_call_may_name(sandbox_server: Any) -> None:
    allowed, outsider = other_consumer(), other_consumer()
    async with Client(build_server(switching(sandbox_server, frozenset({allowed})))) as client:
        inside = await client.call_tool("list_users", {"limit": 1, "consumer_id": allowed})
        outside = await client.call_tool("list_users", {"limit": 1, "consumer_id": outsider})
        default = await client.call_tool("list_users", {"limit": 1})
    assert not inside.is_error and "usr_01" in text_of(inside)
    assert not default.is_error
    assert outside.is_error
    assert text_of(outside) == (
        "Invalid arguments for list_users: consumer_id: Value error, this consumer is not among the consumers "
        "this server may act for (CRM_MCP_ALLOWED_CONSUMERS); leave consumer_id out to act for the configured "
        "one. Fix them and call again."
    )
    assert sandbox_server.faults.count(consumer=allowed) == 1
    assert sandbox_server.faults.count(consumer=outsider) == 0


async def test_discover_mode_describes_the_consumer_arguments_only_when_on(sandbox_server: Any) -> None:
    discover = Selection(tool_mode="discover")
    for settings, listed in ((sandbox_settings(sandbox_server), False), (switching(sandbox_server), True)):
        async with Client(build_server(settings, selection=discover)) as client:
            text = text_of(await client.call_tool("describe_tool", {"name": "get_contact"}))
        assert ('"consumer_id":' in text) is listed, text


def test_published_consumer_arguments_are_those_the_model_validates() -> None:
    """The server adds the two arguments to the precomputed list (and the workflow tools) at build
    time: exactly what the compaction of the argument models with switching on publishes."""
    for tool in operation_tools():
        assert tool.operation is not None
        on = compact_schema(args_model(tool.operation, True, None).model_json_schema(by_alias=True))
        assert on == with_consumer_arguments(tool.input_schema), tool.name
        off = compact_schema(args_model(tool.operation).model_json_schema(by_alias=True))
        assert off == tool.input_schema, tool.name
    for tool in registry():  # the pipeline's model when switching is on, workflows included
        on = compact_schema(switching_model(tool.args(), None).model_json_schema(by_alias=True))
        assert on == with_consumer_arguments(tool.input_schema), tool.name


def test_settings_turn_switching_on_with_an_optional_list() -> None:
    base = {"APIDECK_API_KEY": "k", "APIDECK_APP_ID": "a", "APIDECK_CONSUMER_ID": "c"}
    off = settings_from_env(base)
    assert (off.per_call_consumer, off.allowed_consumers) == (False, None)
    on = settings_from_env({**base, "CRM_MCP_PER_CALL_CONSUMER": "1"})
    assert (on.per_call_consumer, on.allowed_consumers) == (True, None)
    limited = settings_from_env({**base, "CRM_MCP_PER_CALL_CONSUMER": "true", "CRM_MCP_ALLOWED_CONSUMERS": "a, b,"})
    assert (limited.per_call_consumer, limited.allowed_consumers) == (True, frozenset({"a", "b"}))
    sandbox = settings_from_env({"CRM_MCP_PER_CALL_CONSUMER": "1"})
    assert sandbox.sandbox and sandbox.per_call_consumer
    with pytest.raises(ConfigError, match="set CRM_MCP_PER_CALL_CONSUMER=1 too"):
        settings_from_env({**base, "CRM_MCP_ALLOWED_CONSUMERS": "a"})
    with pytest.raises(ConfigError, match="must be 1 or 0"):
        settings_from_env({**base, "CRM_MCP_PER_CALL_CONSUMER": "maybe"})
    with pytest.raises(ConfigError, match="names no consumer"):
        settings_from_env({**base, "CRM_MCP_PER_CALL_CONSUMER": "1", "CRM_MCP_ALLOWED_CONSUMERS": " , "})
