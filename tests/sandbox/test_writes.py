"""Creates, updates and deletes: read-only fields, PATCH merge, body validation, custom objects,
and tenant isolation."""

from __future__ import annotations

import time
from typing import Any

import httpx2
import pytest
from sweeps import split_sweep

from crm_mcp.operations import RESOURCES
from crm_mcp.sandbox.server import SandboxServer

from .helpers import CUSTOM_SCHEMA, create, minimal_body, op_for, path_for, scope_params


def get(client: httpx2.Client, resource_name: str, id_: str) -> dict[str, Any]:
    op = op_for(resource_name, "get")
    response = client.get(path_for(op, id=id_, **scope_params(op)))
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


def test_create_sets_the_read_only_fields(sandbox_client: httpx2.Client) -> None:
    new_id = create(sandbox_client, "contacts", {"first_name": "Ada", "last_name": "Lovelace"})
    record = get(sandbox_client, "contacts", new_id)
    assert record["id"] == new_id and new_id.startswith("con_")
    assert record["created_at"] == record["updated_at"]
    assert record["created_at"].endswith("Z") and len(record["created_at"]) == 24
    note = get(sandbox_client, "notes", create(sandbox_client, "notes", {"title": "hello"}))
    assert note["created_by"] == note["updated_by"] == "usr_01"


def read_only_cases() -> list[Any]:
    # one field per resource in the inner loop, every field with the slow tests
    firsts = {(res.name, res.read_only_fields[0]) for res in RESOURCES if res.read_only_fields}
    return split_sweep([(res.name, field) for res in RESOURCES for field in res.read_only_fields],
                       fast=lambda case: case in firsts, ids=lambda case: f"{case[0]}-{case[1]}")


@pytest.mark.parametrize(("resource_name", "field"), read_only_cases())
def test_read_only_fields_are_rejected(sandbox_client: httpx2.Client, resource_name: str, field: str) -> None:
    op = op_for(resource_name, "create")
    scope = scope_params(op)
    response = sandbox_client.post(path_for(op, **scope), json={**minimal_body(resource_name), field: "x"})
    assert response.status_code == 400
    body = response.json()
    assert body["type_name"] == "RequestValidationError"
    assert f"'{field}' is read-only" in body["message"]
    assert body["detail"]["errors"][0]["field"] == field
    record_id = create(sandbox_client, resource_name)
    update = op_for(resource_name, "update")
    response = sandbox_client.patch(path_for(update, id=record_id, **scope), json={field: "x"})
    assert response.status_code == 400 and f"'{field}' is read-only" in response.json()["message"]


def test_patch_merges_top_level_fields(sandbox_client: httpx2.Client) -> None:
    before = get(sandbox_client, "contacts", "con_0001")
    time.sleep(0.002)
    response = sandbox_client.patch("/crm/contacts/con_0001", json={"title": "COO", "tags": ["vip"]})
    assert response.status_code == 200 and response.json()["data"] == {"id": "con_0001"}
    after = get(sandbox_client, "contacts", "con_0001")
    assert after["title"] == "COO" and after["tags"] == ["vip"]
    unchanged = {k: v for k, v in before.items() if k not in ("title", "tags", "updated_at")}
    assert {k: after[k] for k in unchanged} == unchanged
    assert after["created_at"] == before["created_at"] and after["updated_at"] > before["updated_at"]
    # the contract requires an opportunity's title in an update body too
    response = sandbox_client.patch("/crm/opportunities/opp_001", json={"description": "x"})
    assert response.status_code == 400 and response.json()["detail"]["errors"] == [
        {"field": "title", "rule": "required", "message": "'title' is required"}
    ]
    assert get(sandbox_client, "opportunities", "opp_001")["description"] != "x"
    # null clears a nullable field
    assert sandbox_client.patch("/crm/contacts/con_0001", json={"title": None}).status_code == 200
    assert get(sandbox_client, "contacts", "con_0001")["title"] is None


@pytest.mark.parametrize(
    ("url", "body", "message"),
    [
        ("/crm/contacts", b"{not json", "Malformed JSON body: Expecting property name enclosed in double quotes"),
        ("/crm/contacts", b"", "Request body is required"),
        ("/crm/contacts", b"[1, 2]", "must be a JSON object, not an array"),
        ("/crm/contacts", b'{"first_name": NaN}', "Malformed JSON body"),
        ("/crm/contacts", b'{"first_name": 5}', "'first_name': Input should be a valid string (got 5)"),
        ("/crm/contacts", b'{"active": "yes"}', "'active': Input should be a valid boolean"),
        ("/crm/contacts", b'{"emails": [{"email": 7}]}', "'emails.0.email': Input should be a valid string"),
        ("/crm/contacts", b'{"gender": "robot"}', "'gender': Input should be 'male', 'female' or 'unisex'"),
        ("/crm/contacts", b'{"colour": "red"}', "'colour' is not a field of ContactInput"),
        ("/crm/contacts", b'{"emails": [{"email": "a@b.example", "colour": 1}]}', "'emails.0.colour' is not a field"),
        ("/crm/opportunities", b'{"description": "no title"}', "'title' is required"),
        ("/crm/opportunities", b'{"title": ""}', "'title': '' should be non-empty"),
        ("/crm/opportunities", b'{"title": "x", "close_date": "soon"}', "'close_date': 'soon' is not a 'date'"),
        ("/crm/opportunities", b'{"title": "x", "monetary_amount": "many"}', "'monetary_amount': Input should be a"),
        ("/crm/companies", b'{"name": "x", "emails": null}', "'emails': None is not of type 'array'"),
    ],
)
def test_bad_bodies(sandbox_client: httpx2.Client, url: str, body: bytes, message: str) -> None:
    response = sandbox_client.post(url, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["type_name"] == "RequestValidationError"
    assert message in response.json()["message"]


def test_bad_patch_body(sandbox_client: httpx2.Client) -> None:
    response = sandbox_client.patch("/crm/contacts/con_0001", content=b'{"first_name": }')
    assert response.status_code == 400 and "Malformed JSON body" in response.json()["message"]
    response = sandbox_client.patch("/crm/leads/lea_001", json={"monetary_amount": "a lot"})
    assert response.status_code == 400 and "'monetary_amount'" in response.json()["message"]


def test_write_only_fields_are_accepted_but_never_returned(sandbox_client: httpx2.Client) -> None:
    body = {
        "emails": [{"email": "new.user@test.example"}],
        "password": "hunter2",
        "pass_through": [{"service_id": "x", "extend_object": {"a": 1}}],
    }
    user = get(sandbox_client, "users", create(sandbox_client, "users", body))
    assert "password" not in user and "pass_through" not in user


def test_pipeline_stages_get_ids_and_a_given_pipeline_id_is_kept(sandbox_client: httpx2.Client) -> None:
    body = {"id": "pip_custom", "name": "Partners", "stages": [{"name": "Intro"}, {"name": "Signed"}]}
    assert create(sandbox_client, "pipelines", body) == "pip_custom"
    stages = get(sandbox_client, "pipelines", "pip_custom")["stages"]
    assert [s["name"] for s in stages] == ["Intro", "Signed"] and all(s["id"] for s in stages)
    again = sandbox_client.post("/crm/pipelines", json=body)
    assert again.status_code == 422 and "already exists" in again.json()["message"]


def test_delete_is_final(sandbox_client: httpx2.Client) -> None:
    assert sandbox_client.delete("/crm/contacts/con_0002").status_code == 200
    assert sandbox_client.delete("/crm/contacts/con_0002").status_code == 404
    ids = [r["id"] for r in sandbox_client.get("/crm/contacts", params={"limit": 200}).json()["data"]]
    assert "con_0002" not in ids and len(ids) == 199


# --------------------------------------------------------------------------- custom objects


def test_custom_objects(sandbox_client: httpx2.Client) -> None:
    base = f"/crm/custom-objects/{CUSTOM_SCHEMA}"
    seeded = sandbox_client.get(base).json()["data"]
    assert seeded and all("object_id" not in r for r in seeded)
    new_id = create(sandbox_client, "custom_objects", {"name": "Rollout", **minimal_body("custom_objects")})
    record = sandbox_client.get(f"{base}/{new_id}").json()["data"]
    assert record["name"] == "Rollout" and record["owner_id"] == "usr_01"
    patch = {"name": "Rollout 2", **minimal_body("custom_objects")}
    assert sandbox_client.patch(f"{base}/{new_id}", json=patch).status_code == 200
    assert sandbox_client.get(f"{base}/{new_id}").json()["data"]["name"] == "Rollout 2"
    assert sandbox_client.delete(f"{base}/{new_id}").status_code == 200
    assert sandbox_client.get(f"{base}/{new_id}").status_code == 404


def test_custom_objects_of_an_unknown_schema_are_404(sandbox_client: httpx2.Client) -> None:
    for method, url in [
        ("GET", "/crm/custom-objects/cos_nope"),
        ("POST", "/crm/custom-objects/cos_nope"),
        ("GET", "/crm/custom-objects/cos_nope/cob_001"),
        ("PATCH", "/crm/custom-objects/cos_nope/cob_001"),
        ("DELETE", "/crm/custom-objects/cos_nope/cob_001"),
    ]:
        response = sandbox_client.request(method, url, json={"name": "x"} if method in ("POST", "PATCH") else None)
        assert response.status_code == 404, (method, url)
        assert response.json()["type_name"] == "EntityNotFoundError"
        assert "custom object schema with id 'cos_nope' not found" in response.json()["message"]


def test_custom_objects_live_in_their_schema(
    sandbox_client: httpx2.Client, sandbox_server: SandboxServer, sandbox_headers: dict[str, str]
) -> None:
    schema_id = create(sandbox_client, "custom_object_schemas", {"name": "ticket"})
    object_id = create(sandbox_client, "custom_objects", {"name": "T-1"}, object_id=schema_id)
    assert sandbox_client.get(f"/crm/custom-objects/{CUSTOM_SCHEMA}/{object_id}").status_code == 404
    assert [r["id"] for r in sandbox_client.get(f"/crm/custom-objects/{schema_id}").json()["data"]] == [object_id]
    assert sandbox_client.delete(f"/crm/custom-object-schemas/{schema_id}").status_code == 200
    assert sandbox_client.get(f"/crm/custom-objects/{schema_id}").status_code == 404
    assert sandbox_server.store is not None  # the objects went with their schema
    assert sandbox_server.store.count(sandbox_headers["x-apideck-consumer-id"], "custom_objects", schema_id) == 0


# --------------------------------------------------------------------------- tenants


def test_consumers_are_isolated(sandbox_client: httpx2.Client, sandbox_headers: dict[str, str]) -> None:
    new_id = create(sandbox_client, "companies", {"name": "Only Mine Ltd"})
    assert sandbox_client.delete("/crm/contacts/con_0003").status_code == 200
    other = {**sandbox_headers, "x-apideck-consumer-id": sandbox_headers["x-apideck-consumer-id"] + "-other"}
    for method in ("GET", "PATCH", "DELETE"):
        url = f"/crm/companies/{new_id}"
        response = sandbox_client.request(method, url, headers=other, json={"name": "x"} if method == "PATCH" else None)
        assert response.status_code == 404
    theirs = sandbox_client.get("/crm/companies", headers=other, params={"limit": 200}).json()["data"]
    names = [c["name"] for c in theirs]
    assert "Only Mine Ltd" not in names and len(names) == 50  # the other consumer has the full seed
    assert sandbox_client.get("/crm/contacts/con_0003", headers=other).status_code == 200
    assert sandbox_client.get(f"/crm/companies/{new_id}").json()["data"]["name"] == "Only Mine Ltd"
