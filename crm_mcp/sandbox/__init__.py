"""The embedded sandbox CRM: a local HTTP server that obeys the Apideck CRM contract.

`create_app` builds the ASGI app (routing from the generated operation table, auth, envelopes,
errors), `Store` keeps the records in SQLite, `FaultPlan` injects faults for tests, and
`SandboxServer` / `run_sandbox` run it under uvicorn. Imports are lazy so that importing the
package (for example for `seed`) costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crm_mcp.sandbox.app import create_app
    from crm_mcp.sandbox.faults import FaultPlan
    from crm_mcp.sandbox.server import SandboxServer, default_db_path, run_sandbox
    from crm_mcp.sandbox.store import Store

__all__ = ["FaultPlan", "SandboxServer", "Store", "create_app", "default_db_path", "run_sandbox"]

_WHERE = {
    "create_app": "crm_mcp.sandbox.app",
    "FaultPlan": "crm_mcp.sandbox.faults",
    "SandboxServer": "crm_mcp.sandbox.server",
    "default_db_path": "crm_mcp.sandbox.server",
    "run_sandbox": "crm_mcp.sandbox.server",
    "Store": "crm_mcp.sandbox.store",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        from importlib import import_module

        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'crm_mcp.sandbox' has no attribute {name!r}")
