"""The sandbox as the contract says: the fields it allows, `_raw`, the required fields of an
update body, custom object schemas and their objects, stage changes, and ids like the seed's.

Every response goes through the contract check of `sandbox_client`."""

from __future__ import annotations

import re
from typing import Any

import httpx2

from .helpers import CUSTOM_SCHEMA, create

PROJECTS = f"/crm/custom-objects/{CUSTOM_SCHEMA}"


def data(response: httpx2.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()["data"]


def errors(response: httpx2.Response) -> list[dict[str, str]]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type_name"] == "RequestValidationError"
    return list(body["detail"]["errors"])


# --------------------------------------------------------------------------- fields the contract allows


def test_a_user_body_may_carry_properties_the_contract_does_not_name(sandbox_client: httpx2.Client) -> None:
    body = {"name": "Ada Lovelace", "first_name": "Ada", "emails": [{"email": "ada@test.example"}]}
    user = data(sandbox_client.get(f"/crm/users/{create(sandbox_client, 'users', body)}"))
    assert user["first_name"] == "Ada" and user["emails"] == [{"email": "ada@test.example"}]
    assert "name" not in user  # accepted, not a field of the unified User
    # where the contract says additionalProperties: false, an unknown field is still refused
    response = sandbox_client.post("/crm/companies", json={"name": "X", "colour": "red"})
    assert errors(response) == [
        {"field": "colour", "rule": "unknown field", "message": "'colour' is not a field of CompanyInput"}
    ]
    response = sandbox_client.post("/crm/users", json={"name": "X", "emails": [{"email": "a@b.example", "x": 1}]})
    assert [e["field"] for e in errors(response)] == ["emails.0.x"]


def test_a_custom_object_schema_field_may_carry_more_than_the_contract_names(sandbox_client: httpx2.Client) -> None:
    field = {"name": "serial", "type": "string", "placeholder": "SN-0000"}
    schema_id = create(sandbox_client, "custom_object_schemas", {"name": "asset", "fields": [field]})
    assert data(sandbox_client.get(f"/crm/custom-object-schemas/{schema_id}"))["fields"] == [field]


# --------------------------------------------------------------------------- _raw


def test_raw_true_adds_what_the_store_holds(sandbox_client: httpx2.Client) -> None:
    plain = sandbox_client.get("/crm/companies/com_001", params={"fields": "name"}).json()
    assert "_raw" not in plain and plain["data"] == {"id": "com_001", "name": "Acme Corporation"}
    raw = sandbox_client.get("/crm/companies/com_001", params={"fields": "name", "raw": "true"}).json()
    assert raw["data"] == plain["data"]
    whole = data(sandbox_client.get("/crm/companies/com_001"))
    assert raw["_raw"] == {"record": whole} and whole["owner_id"] == "usr_02"

    page = sandbox_client.get("/crm/users", params={"limit": 2, "raw": "true", "fields": "first_name"}).json()
    assert [(u["id"], u["first_name"], "last_name" in u) for u in page["data"]] == [
        ("usr_01", "Olivia", False),
        ("usr_02", "Marcus", False),
    ]
    assert [r["last_name"] for r in page["_raw"]["records"]] == ["Bennett", "Reid"]

    created = sandbox_client.post("/crm/notes", params={"raw": "true"}, json={"title": "raw note"}).json()
    assert created["_raw"]["record"]["id"] == created["data"]["id"]
    assert created["_raw"]["record"]["title"] == "raw note"
    updated = sandbox_client.patch("/crm/notes/not_001", params={"raw": "true"}, json={"title": "retitled"}).json()
    assert updated["data"] == {"id": "not_001"} and updated["_raw"]["record"]["title"] == "retitled"
    deleted = sandbox_client.delete("/crm/notes/not_002", params={"raw": "true"}).json()
    assert deleted["_raw"] == {"deleted": {"id": "not_002"}}
    assert "_raw" not in sandbox_client.delete("/crm/notes/not_003").json()


# --------------------------------------------------------------------------- update bodies


def test_an_update_body_needs_the_fields_the_contract_requires(sandbox_client: httpx2.Client) -> None:
    before = data(sandbox_client.get("/crm/companies/com_001"))
    response = sandbox_client.patch("/crm/companies/com_001", json={"description": "no name given"})
    assert errors(response) == [{"field": "name", "rule": "required", "message": "'name' is required"}]
    assert data(sandbox_client.get("/crm/companies/com_001")) == before
    response = sandbox_client.patch("/crm/users/usr_02", json={"title": "Director"})
    assert [e["field"] for e in errors(response)] == ["emails"]
    body = {"name": "Acme Corporation", "description": "name given"}
    assert data(sandbox_client.patch("/crm/companies/com_001", json=body)) == {"id": "com_001"}
    assert data(sandbox_client.get("/crm/companies/com_001"))["description"] == "name given"


# --------------------------------------------------------------------------- custom objects


def test_custom_objects_obey_their_schema(sandbox_client: httpx2.Client) -> None:
    # cos_projects: company_id (reference, required), status (select, required, default
    # "planned"), start_date/end_date (date), budget (currency), opportunity_id (reference)
    response = sandbox_client.post(PROJECTS, json={"name": "No company"})
    assert errors(response) == [
        {
            "field": "fields",
            "rule": "required",
            "message": "'company_id' is required by custom object schema 'cos_projects'",
        }
    ]
    bad = [
        {"name": "company_id", "value": "com_001"},
        {"name": "budget", "value": "a lot"},
        {"name": "start_date", "value": "2026-02-30"},
        {"name": "status", "value": "finished"},
        {"name": "colour", "value": "red"},
    ]
    found = errors(sandbox_client.post(PROJECTS, json={"name": "Bad", "fields": bad}))
    assert [(e["field"], e["rule"]) for e in found] == [
        ("fields.1.value", "currency"),
        ("fields.2.value", "date"),
        ("fields.3.value", "select"),
        ("fields.4.name", "unknown field"),
    ]
    expected = "'budget' is a currency field: expected an amount such as 1500 or 1500.50, got 'a lot'"
    assert found[0]["message"] == expected
    assert (
        "'finished' is not one of its options ['planned', 'in_progress', 'completed', 'on_hold']"
        in (found[2]["message"])
    )
    assert "'colour' is not a field of custom object schema 'cos_projects'" in found[3]["message"]

    good = [{"name": "company_id", "value": "com_001"}, {"name": "budget", "value": "12500.50"}]
    new_id = create(sandbox_client, "custom_objects", {"name": "Good", "fields": good})
    record = data(sandbox_client.get(f"{PROJECTS}/{new_id}"))
    assert record["fields"] == [*good, {"name": "status", "value": "planned"}]  # the schema's default

    # an update that drops a required field is refused; the stored object stays
    response = sandbox_client.patch(f"{PROJECTS}/{new_id}", json={"fields": [{"name": "budget", "value": "1"}]})
    assert [e["message"] for e in errors(response)] == [
        "'company_id' is required by custom object schema 'cos_projects'",
        "'status' is required by custom object schema 'cos_projects'",
    ]
    assert data(sandbox_client.get(f"{PROJECTS}/{new_id}")) == record


def test_every_field_type_checks_its_value(sandbox_client: httpx2.Client) -> None:
    kinds = ["number", "integer", "boolean", "datetime", "email", "phone", "multiselect"]
    fields: list[dict[str, Any]] = [{"name": kind, "type": kind} for kind in kinds]
    fields[-1]["options"] = [{"value": "red"}, {"value": "blue"}]
    schema_id = create(sandbox_client, "custom_object_schemas", {"name": "kinds", "fields": fields})
    url = f"/crm/custom-objects/{schema_id}"
    good = ["-2.5", "42", "true", "2026-01-31T09:00:00Z", "a@b.example", "+1 (415) 555-0101", "red;blue"]
    bad = ["2,5", "4.2", "yes", "2026-01-31", "a@b", "call me", "red;green"]
    body = {"fields": [{"name": k, "value": v} for k, v in zip(kinds, good, strict=True)]}
    create(sandbox_client, "custom_objects", body, object_id=schema_id)
    for kind, value in zip(kinds, bad, strict=True):
        found = errors(sandbox_client.post(url, json={"fields": [{"name": kind, "value": value}]}))
        assert [(e["field"], e["rule"]) for e in found] == [("fields.0.value", kind)], (kind, value)


def test_custom_object_schemas_define_usable_fields(sandbox_client: httpx2.Client) -> None:
    fields = [
        {"name": "stage", "type": "select"},
        {"name": "size", "type": "integer", "default_value": "big"},
        {"name": "size", "type": "string"},
        {"type": "string"},
    ]
    found = errors(sandbox_client.post("/crm/custom-object-schemas", json={"name": "bad", "fields": fields}))
    assert [(e["field"], e["rule"]) for e in found] == [
        ("fields.0.options", "required"),
        ("fields.1.default_value", "integer"),
        ("fields.2", "unique"),
        ("fields.3", "required"),
    ]
    assert found[0]["message"].startswith("'stage' is a select field: give its options")
    # an update is held to the same rules
    response = sandbox_client.patch(f"/crm/custom-object-schemas/{CUSTOM_SCHEMA}", json={"fields": fields[:1]})
    assert [e["field"] for e in errors(response)] == ["fields.0.options"]


# --------------------------------------------------------------------------- opportunities


def test_a_stage_change_stamps_the_time_and_takes_the_stage_probability(sandbox_client: httpx2.Client) -> None:
    before = data(sandbox_client.get("/crm/opportunities/opp_003"))
    assert before["pipeline_stage_id"] == "stg_nb_discovery" and before["win_probability"] == 25
    body = {"title": before["title"], "pipeline_stage_id": "stg_nb_negotiation"}
    sandbox_client.patch("/crm/opportunities/opp_003", json=body).raise_for_status()
    after = data(sandbox_client.get("/crm/opportunities/opp_003"))
    assert after["stage_last_changed_at"] == after["updated_at"] > before["stage_last_changed_at"]
    assert after["win_probability"] == 75
    assert after["expected_revenue"] == round(before["monetary_amount"] * 0.75, 2)

    # the same stage again is no change; a probability the body gives wins over the stage's
    body = {**body, "win_probability": 70}
    sandbox_client.patch("/crm/opportunities/opp_003", json=body).raise_for_status()
    again = data(sandbox_client.get("/crm/opportunities/opp_003"))
    assert again["stage_last_changed_at"] == after["stage_last_changed_at"] < again["updated_at"]
    assert again["win_probability"] == 70

    created = create(
        sandbox_client, "opportunities", {"title": "New", "pipeline_id": "pip_2", "pipeline_stage_id": "stg_rn_renewed"}
    )
    new = data(sandbox_client.get(f"/crm/opportunities/{created}"))
    assert new["win_probability"] == 100 and new["stage_last_changed_at"] == new["created_at"]


# --------------------------------------------------------------------------- ids


def test_created_ids_have_the_seeds_prefixes(sandbox_client: httpx2.Client) -> None:
    seeded = [u["id"] for u in data(sandbox_client.get("/crm/users"))]
    assert seeded[:2] == ["usr_01", "usr_02"]
    user_id = create(sandbox_client, "users", {"emails": [{"email": "new@test.example"}]})
    assert re.fullmatch(r"usr_[0-9a-f]{16}", user_id), user_id
    pipeline_id = create(sandbox_client, "pipelines", {"name": "Partners", "stages": [{"name": "Intro"}]})
    (stage,) = data(sandbox_client.get(f"/crm/pipelines/{pipeline_id}"))["stages"]
    assert re.fullmatch(r"stg_[0-9a-f]{16}", stage["id"]), stage
