"""The OAuth scopes of the CRM tools, and which one a call needs.

`crm:read` (list, get, search, overview, and the resource `crm://pipelines`), `crm:write`
(create, update, log_interaction), `crm:delete` (delete). Discovery mode's meta-tools need none of
their own: `find_tools` and `describe_tool` only show what the server offers, and `call_tool`
needs the scope of the tool it runs. The `crm://fields/...` resources describe the contract, not
anyone's CRM data, and need none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from crm_mcp.tenants import OAUTH_CALLER

READ, WRITE, DELETE = "crm:read", "crm:write", "crm:delete"
SCOPES = (READ, WRITE, DELETE)
BASELINE = READ  # what a 401 asks a client to request first; writes and deletes are stepped up to


@cache
def _scopes_by_name() -> dict[str, str]:
    from crm_mcp.tools import registry

    return {t.name: t.scope for t in registry()}  # each registry entry declares its scope


def scope_for_tool(name: str) -> str | None:
    """The scope the tool called `name` needs; None for a meta-tool or a name we do not know."""
    return _scopes_by_name().get(name)


def scope_for_call(name: str, arguments: Mapping[str, Any] | None) -> str | None:
    """The scope a tools/call of `name` with `arguments` needs: discovery mode's `call_tool`
    needs the scope of the tool it runs."""
    if name == "call_tool" and isinstance(arguments, Mapping) and isinstance(arguments.get("name"), str):
        return scope_for_tool(arguments["name"])
    return scope_for_tool(name)


def scope_for_request(method: str, params: Mapping[str, Any]) -> str | None:
    """The scope a JSON-RPC request needs (None: any valid token may make it)."""
    from crm_mcp.mcp_resources import PIPELINES_URI  # the server imports its resources module lazily too

    if method == "tools/call" and isinstance(params.get("name"), str):
        return scope_for_call(params["name"], params.get("arguments"))
    if method == "resources/read" and params.get("uri") == PIPELINES_URI:
        return READ
    return None


def allows(granted: Iterable[str], name: str) -> bool:
    """Whether a token with the scopes `granted` may see and call the tool `name`."""
    needed = scope_for_tool(name)
    return needed is None or needed in set(granted)


def granted_scopes(request: Any) -> frozenset[str] | None:
    """The scopes of the access token an MCP request came with (None when it did not come through
    OAuth: stdio, or HTTP without it)."""
    scope = getattr(request, "scope", None) or {}
    if OAUTH_CALLER not in scope:
        return None
    auth = scope.get("auth")
    return frozenset(auth.scopes if auth is not None else ())


def scope_refusal(request: Any, name: str) -> str | None:
    """Why the caller of `request` may not run tool `name` (None when it may)."""
    granted = granted_scopes(request)
    if granted is None or allows(granted, name):
        return None
    return (f"{name} needs the OAuth scope {scope_for_tool(name)}, which your access token does not carry. "
            "Authorize again with that scope.")


def allowed_tools(tools: list[Any], granted: frozenset[str]) -> list[Any]:
    """The tools (anything with a `name`) a token with the scopes `granted` may see."""
    return [t for t in tools if allows(granted, t.name)]
