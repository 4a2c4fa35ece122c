"""Every tool of the catalogue needs exactly one of the three scopes, consistent with what its
annotations promise: read-only tools need crm:read, deletes crm:delete, every other write crm:write."""

from __future__ import annotations

from crm_mcp.auth.scopes import DELETE, READ, WRITE, scope_for_call, scope_for_request, scope_for_tool
from crm_mcp.tools import registry


def test_each_tool_needs_the_scope_its_annotations_imply() -> None:
    tools = registry()
    for tool in tools:
        if tool.annotations.get("readOnlyHint"):
            expected = READ
        elif tool.kind == "delete":
            expected = DELETE
        else:
            expected = WRITE
        assert scope_for_tool(tool.name) == tool.scope == expected, tool.name
    writes = {t.name for t in tools if scope_for_tool(t.name) == WRITE}
    assert writes >= {"log_interaction", "create_note", "update_contact"}


def test_call_tool_needs_the_scope_of_the_tool_it_runs_and_meta_tools_none() -> None:
    assert scope_for_call("call_tool", {"name": "delete_lead", "arguments": {"id": "lea_001"}}) == DELETE
    assert scope_for_call("call_tool", {"name": "no_such_tool"}) is None
    assert scope_for_call("find_tools", {"query": "delete a lead"}) is None
    assert scope_for_request("resources/read", {"uri": "crm://pipelines"}) == READ
    assert scope_for_request("resources/read", {"uri": "crm://fields/contacts"}) is None
    assert scope_for_request("tools/list", {}) is None
