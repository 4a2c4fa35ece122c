"""Helpers for the sandbox tests: request bodies from the generated models, cursor walks."""

from __future__ import annotations

import types
import typing
from typing import Any

import httpx2
from pydantic import BaseModel

from crm_mcp.operations import OPERATIONS, Operation, model, operation, resource

CUSTOM_SCHEMA = "cos_projects"  # a seeded custom object schema


def list_operations(with_: str | None = None) -> list[Operation]:
    ops = [op for op in OPERATIONS if op.action == "list"]
    if with_ == "filter":
        ops = [op for op in ops if op.filter_model and "filter" in op.query_params]
    if with_ == "sort":
        ops = [op for op in ops if op.sort_model and "sort" in op.query_params]
    return ops


def op_for(resource_name: str, action: str) -> Operation:
    (op,) = [op for op in OPERATIONS if op.resource == resource_name and op.action == action]
    return op


def _example(annotation: Any, name: str) -> Any:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _example(args[0], name)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return typing.get_args(annotation)[0]
    if origin is list:
        return [_example(typing.get_args(annotation)[0], name)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return minimal(annotation) or {
            key: _example(f.annotation, key) for key, f in list(annotation.model_fields.items())[:1]
        }
    if annotation is bool:
        return True
    if annotation is int:
        return 1
    if annotation is float:
        return 1.5
    if name == "email":
        return "someone@test.example"
    return f"test {name}"


def minimal(model_cls: type[BaseModel]) -> dict[str, Any]:
    return {key: _example(f.annotation, key) for key, f in model_cls.model_fields.items() if f.is_required()}


def minimal_body(resource_name: str) -> dict[str, Any]:
    """The smallest valid create (and update) body for a resource: its required fields, with
    plain values; a custom object gets the fields its schema (`CUSTOM_SCHEMA`) requires."""
    if resource_name == "custom_objects":
        return {"fields": [{"name": "company_id", "value": "com_001"}, {"name": "status", "value": "planned"}]}
    return minimal(model(resource(resource_name).input_model))


def text_field(resource_name: str) -> str:
    """A writable plain-string field of a resource (for update tests)."""
    input_cls = model(resource(resource_name).input_model)
    for preferred in ("description", "title", "name", "content", "username"):
        info = input_cls.model_fields.get(preferred)
        if info is not None and _example(info.annotation, preferred) == f"test {preferred}":
            return preferred
    raise AssertionError(f"no plain text field on {resource_name}")


def path_for(op: Operation, **params: str) -> str:
    path = op.path
    for key, value in params.items():
        path = path.replace("{" + key + "}", value)
    return path


def scope_params(op: Operation) -> dict[str, str]:
    return {"object_id": CUSTOM_SCHEMA} if "object_id" in op.path_params else {}


def create(
    client: httpx2.Client, resource_name: str, body: dict[str, Any] | None = None, *, object_id: str | None = None
) -> str:
    op = op_for(resource_name, "create")
    path = {"object_id": object_id} if object_id else scope_params(op)
    response = client.post(path_for(op, **path), json=body if body is not None else minimal_body(resource_name))
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["id"])


def walk(client: httpx2.Client, url: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every record of a list, following meta.cursors.next."""
    params = dict(params or {})
    records: list[dict[str, Any]] = []
    for _ in range(1000):
        response = client.get(url, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        records += body["data"]
        assert body["meta"]["items_on_page"] == len(body["data"])
        cursor = body["meta"]["cursors"]["next"]
        if cursor is None:
            return records
        params["cursor"] = cursor
    raise AssertionError("the walk did not end")


def list_path(tool_name: str) -> str:
    op = operation(tool_name)
    return path_for(op, **scope_params(op))
