"""Bad input, for every one of the 50 tools, through a real MCP client session against the sandbox.

Hypothesis draws arguments from each tool's argument model (the published input schema is its
compacted form): valid ones, and invalid ones made by one mutation (unknown argument, required one
left out, wrong type, out of bounds, hostile id or header value). Every call answers a result, never
a protocol error or a crash; no result shows a traceback or internals; every invalid call is an
error result that names the offending field; the server answers normally afterwards."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from mcp_support import text_of
from security_support import (
    BlockingSession,
    assert_serving,
    blocking_session,
    full_schema,
    internal_details,
    invalid_arguments,
    names_field,
    new_consumer,
    operation_of,
    result_blob,
    settings_for,
    tools,
    valid_arguments,
)
from sweeps import split_sweep

TOOLS = tools()
FAST = settings(
    max_examples=5,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure here is reproducible, not flaky
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def session(sandbox_server: Any) -> Iterator[BlockingSession]:
    with blocking_session(settings_for(sandbox_server.base_url, new_consumer("sec-input"))) as s:
        yield s


def test_strategies_cover_the_published_schema() -> None:
    """The strategies draw from the argument model; it must have exactly the published arguments."""
    assert len(TOOLS) == 50
    for tool in TOOLS:
        model_schema = full_schema(operation_of(tool))
        assert set(tool.input_schema["properties"]) == set(model_schema["properties"]), tool.name
        assert set(tool.input_schema.get("required", [])) == set(model_schema.get("required", [])), tool.name


def _no_internals(tool: str, arguments: dict[str, Any], result: Any) -> None:
    leaked = internal_details(result_blob(result))
    assert not leaked, f"{tool}({arguments!r}) showed internals {leaked}: {result_blob(result)[:500]}"


# contacts' tools in the inner loop, every tool with the slow tests (the fast run still calls every
# tool with invalid arguments in test_secrets)
@pytest.mark.parametrize("tool", split_sweep(TOOLS, fast=lambda t: operation_of(t).resource == "contacts",
                                             ids=lambda t: t.name))
def test_invalid_arguments_are_error_results_naming_the_field(
    session: BlockingSession, tool: Any, caplog: pytest.LogCaptureFixture
) -> None:
    op = operation_of(tool)
    caplog.set_level(logging.INFO, logger="crm_mcp")

    @FAST
    @given(invalid_arguments(op))
    def check(case: tuple[dict[str, Any], str]) -> None:
        arguments, field = case
        result = session.call(tool.name, arguments)
        text = text_of(result)
        assert result.is_error, f"{tool.name}({arguments!r}) was accepted: {text[:300]}"
        _no_internals(tool.name, arguments, result)
        assert names_field(text, field), f"{tool.name}({arguments!r}): the error does not name {field!r}: {text}"
        assert "failed inside the server" not in text

    check()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "an invalid call logged an error"
    assert_serving(session)


@pytest.mark.slow  # 50 tools of generated calls; the fast run calls every tool validly in test_secrets too
@pytest.mark.parametrize("tool", TOOLS, ids=[t.name for t in TOOLS])
def test_valid_arguments_get_an_answer_not_a_crash(
    session: BlockingSession, tool: Any, caplog: pytest.LogCaptureFixture
) -> None:
    op = operation_of(tool)
    caplog.set_level(logging.INFO, logger="crm_mcp")
    published = jsonschema.Draft202012Validator(tool.input_schema)

    @FAST
    @given(valid_arguments(op))
    def check(arguments: dict[str, Any]) -> None:
        # what the model accepts, the published schema must accept too (a client may check it first)
        published.validate(arguments)
        result = session.call(tool.name, arguments)
        text = text_of(result)
        if result.is_error:  # a success echoes the CRM's data, which may hold any text an earlier example wrote
            _no_internals(tool.name, arguments, result)
        assert text.strip(), f"{tool.name}({arguments!r}) answered no text"
        assert "failed inside the server" not in text, f"{tool.name}({arguments!r}): {text}"
        if result.is_error:  # the API may refuse it (unknown id, ...), but our validation must not
            assert not text.startswith(f"Invalid arguments for {tool.name}"), f"{arguments!r}: {text}"

    check()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("crm_mcp")]
    assert_serving(session)


def test_not_an_object_and_unknown_tools_do_not_break_the_session(session: BlockingSession) -> None:
    from mcp.shared.exceptions import MCPError

    with pytest.raises(MCPError) as raised:
        session.call("no_such_tool", {})
    assert "no_such_tool" in str(raised.value)
    assert not internal_details(str(raised.value))
    for arguments in ({"limit": None, "cursor": None}, {"filter": "email=x"}, {"sort": []}, {"fields": "*"}):
        result = session.call("list_contacts", arguments)
        _no_internals("list_contacts", arguments, result)
    assert_serving(session)


@pytest.mark.parametrize(
    ("tool", "arguments", "field"),
    [
        ("list_contacts", {"filter": {"name": "x" * 100_000}}, "filter"),
        ("list_contacts", {"filter": {"email": "é" * 3000}}, "filter"),  # short, but three times longer encoded
        ("list_companies", {"pass_through": {"q": "y" * 100_000}}, "pass_through"),
        ("list_leads", {"pass_through": {"a": "z" * 9000}}, "pass_through"),
    ],
)
def test_over_long_query_values_get_a_specific_error(
    session: BlockingSession, tool: str, arguments: dict[str, Any], field: str
) -> None:
    result = session.call(tool, arguments)
    text = text_of(result)
    assert result.is_error
    assert text.startswith(f"Invalid argument `{field}` for `{tool}`: is too long:"), text
    assert "characters once encoded, and the whole query may be at most 8000; use shorter values" in text
    assert "Nothing was sent" in text and "failed inside the server" not in text
    _no_internals(tool, arguments, result)
    assert_serving(session)
