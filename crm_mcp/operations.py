"""Lookups over the generated operation table.

The table itself (`crm_mcp.generated.operations`) names models by string so that it is cheap
to import; `model()` resolves a name to its pydantic class, importing and building only that
class's module and what it uses, on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from crm_mcp.generated.operations import OPERATIONS, RESOURCES, SPEC_VERSION, Operation, Resource

__all__ = [
    "OPERATIONS",
    "RESOURCES",
    "SPEC_VERSION",
    "Operation",
    "Resource",
    "missing_required",
    "model",
    "operation",
    "operation_by_id",
    "resource",
    "sibling",
    "spec_path",
]

_BY_TOOL = {op.tool_name: op for op in OPERATIONS}
_BY_ID = {op.operation_id: op for op in OPERATIONS}
_RESOURCES = {res.name: res for res in RESOURCES}
_BY_ACTION: dict[tuple[str, str], Operation] = {(op.resource, op.action): op for op in OPERATIONS}


def operation(tool_name: str) -> Operation:
    """The operation behind a tool name such as `list_contacts` (KeyError when unknown)."""
    return _BY_TOOL[tool_name]


def sibling(op: Operation, action: str) -> Operation:
    """The operation of the same resource that does `action`, e.g. the get of an update."""
    return _BY_ACTION[(op.resource, action)]


def missing_required(op: Operation, body: Mapping[str, Any]) -> list[str]:
    """The fields the contract requires in `op`'s request body that `body` leaves out. An update
    sends them along with their current values, so that it changes only what it meant to (e.g. an
    opportunity's title, a user's emails)."""
    if not op.body_model:
        return []
    return [
        info.alias or name for name, info in model(op.body_model).model_fields.items()
        if info.is_required() and (info.alias or name) not in body
    ]


def operation_by_id(operation_id: str) -> Operation:
    return _BY_ID[operation_id]


def resource(name: str) -> Resource:
    return _RESOURCES[name]


@cache
def model(name: str) -> type[BaseModel]:
    """The generated pydantic class called `name` (e.g. "ContactInput"), complete: its module is
    imported and the class built on first use (the generated classes defer both)."""
    from crm_mcp.generated import models

    cls = getattr(models, name)
    if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
        raise KeyError(name)
    cls.model_rebuild()  # resolves its forward references (defined later in its module, or imported)
    return cls


def spec_path() -> Path:
    """Path of the vendored OpenAPI document inside the installed package."""
    return Path(str(importlib_resources.files("crm_mcp") / "spec" / "apideck-crm-openapi.yml"))
