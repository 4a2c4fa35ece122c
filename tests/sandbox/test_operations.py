"""Every one of the contract's 50 operations, over HTTP, with the contract's envelopes.

(Every response in these tests is also checked against the contract by the client's hook.)
"""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from openapi_core.exceptions import OpenAPIError
from sweeps import split_sweep

from crm_mcp.operations import OPERATIONS, Operation
from crm_mcp.sandbox.server import SandboxServer

from .contract import check_response
from .helpers import create, minimal_body, op_for, path_for, scope_params, text_field

OPERATION_NAMES = {"list": "all", "get": "one", "create": "add", "update": "update", "delete": "delete"}


def test_the_contract_has_fifty_operations() -> None:
    assert len(OPERATIONS) == 50


def check_envelope(response: httpx2.Response, op: Operation) -> dict:
    assert response.status_code == op.success_status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status_code"] == op.success_status
    assert body["status"] == ("Created" if op.success_status == 201 else "OK")
    assert body["service"] == "sandbox"
    assert body["resource"] == op.resource.replace("_", "-")
    assert body["operation"] == OPERATION_NAMES[op.action]
    return body


# contacts' operations in the inner loop, every resource's with the slow tests
@pytest.mark.parametrize("op", split_sweep(OPERATIONS, fast=lambda op: op.resource == "contacts",
                                           ids=lambda op: op.tool_name))
def test_operation(sandbox_client: httpx2.Client, op: Operation) -> None:
    scope = scope_params(op)
    if op.action == "list":
        body = check_envelope(sandbox_client.get(path_for(op, **scope)), op)
        assert isinstance(body["data"], list) and body["data"], "the seed has records of every resource"
        assert set(body["meta"]) == {"items_on_page", "cursors"}
        assert set(body["meta"]["cursors"]) == {"previous", "current", "next"}
        assert body["links"]["current"].startswith("http://127.0.0.1:")
        return
    if op.action == "create":
        body = check_envelope(sandbox_client.post(path_for(op, **scope), json=minimal_body(op.resource)), op)
        new_id = body["data"]["id"]
        got = sandbox_client.get(path_for(op_for(op.resource, "get"), id=new_id, **scope))
        assert got.status_code == 200 and got.json()["data"]["id"] == new_id
        return
    record_id = create(sandbox_client, op.resource)
    url = path_for(op, id=record_id, **scope)
    if op.action == "get":
        body = check_envelope(sandbox_client.get(url), op)
        assert body["data"]["id"] == record_id
        assert body["data"]["created_at"] == body["data"]["updated_at"]
    elif op.action == "update":
        field = text_field(op.resource)
        patch = {**minimal_body(op.resource), field: "changed by the test"}
        body = check_envelope(sandbox_client.patch(url, json=patch), op)
        assert body["data"] == {"id": record_id}
        after = sandbox_client.get(path_for(op_for(op.resource, "get"), id=record_id, **scope)).json()["data"]
        assert after[field] == "changed by the test"
    else:
        body = check_envelope(sandbox_client.delete(url), op)
        assert body["data"] == {"id": record_id}
        gone = sandbox_client.get(path_for(op_for(op.resource, "get"), id=record_id, **scope))
        assert gone.status_code == 404
        assert gone.json()["type_name"] == "EntityNotFoundError"


@pytest.mark.parametrize("action", ["get", "update", "delete"])
@pytest.mark.parametrize("resource_name", sorted({op.resource for op in OPERATIONS}))
def test_unknown_id_is_404(sandbox_client: httpx2.Client, resource_name: str, action: str) -> None:
    op = op_for(resource_name, action)
    url = path_for(op, id="no_such_id", **scope_params(op))
    body = {**minimal_body(resource_name), text_field(resource_name): "x"} if action == "update" else None
    response = sandbox_client.request(op.method, url, json=body)
    assert response.status_code == 404
    body = response.json()
    assert body["type_name"] == "EntityNotFoundError"
    assert body["status_code"] == 404 and body["error"] == "Not Found"
    assert "'no_such_id' not found" in body["message"]


def test_unknown_endpoint_and_method(sandbox_client: httpx2.Client) -> None:
    response = sandbox_client.get("/crm/widgets")
    assert response.status_code == 404 and response.json()["type_name"] == "NotFoundError"
    assert sandbox_client.get("/crm/contacts/").status_code == 404  # no redirect
    response = sandbox_client.put("/crm/contacts/con_0001", json={})
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, PATCH"
    assert "PUT is not allowed" in response.json()["message"]


def test_custom_object_schema_create_answers_the_schema(sandbox_client: httpx2.Client) -> None:
    response = sandbox_client.post(
        "/crm/custom-object-schemas",
        json={
            "name": "ticket",
            "fields": [
                {"id": "f1", "name": "severity", "type": "select", "required": True, "options": [{"value": "high"}]}
            ],
        },
    )
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["name"] == "ticket" and data["id"].startswith("cos_") and data["created_at"]


def test_the_contract_check_catches_broken_responses(sandbox_client: httpx2.Client) -> None:
    response = sandbox_client.get("/crm/contacts/con_0001")
    good = response.json()
    broken_bodies = [
        {**good, "status_code": "two hundred"},
        {**good, "data": {**good["data"], "colour": "red"}},  # the contract forbids unknown fields
        {**good, "data": {**good["data"], "created_at": "yesterday"}},
        {k: v for k, v in good.items() if k != "service"},
    ]
    for body in broken_bodies:
        broken = httpx2.Response(200, json=body, request=response.request)
        with pytest.raises(OpenAPIError):
            check_response(broken)
    check_response(httpx2.Response(200, json=good, request=response.request))


def test_an_internal_error_is_a_contract_500(
    sandbox_client: httpx2.Client, sandbox_server: SandboxServer, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(sandbox_server.store, "get", broken)
    response = sandbox_client.get("/crm/contacts/con_0001")
    assert response.status_code == 500
    body = response.json()
    assert body["type_name"] == "UnexpectedError" and "disk on fire" not in response.text
    assert "disk on fire" in caplog.text  # logged on the server, not leaked to the client
