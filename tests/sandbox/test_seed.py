"""The sandbox seed: deterministic, complete, linked, anchored, and valid against the contract."""

from __future__ import annotations

import copy
import json
import random
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import http_clients
import pytest
import yaml
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from crm_mcp.sandbox.seed import ANCHORS, BASE_TIME, RESOURCES, build_seed

_SPEC_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "crm_mcp" / "spec" / "apideck-crm-openapi.yml",
    Path("/work/shared/spec/apideck-crm-openapi.yml"),
)
SCHEMA_OF = {
    "users": "User",
    "pipelines": "Pipeline",
    "companies": "Company",
    "contacts": "Contact",
    "leads": "Lead",
    "opportunities": "Opportunity",
    "activities": "Activity",
    "notes": "Note",
    "custom_object_schemas": "CustomObjectSchema",
    "custom_objects": "CustomObject",
}
COUNTS = {
    "users": 12,
    "pipelines": 2,
    "companies": 50,
    "contacts": 200,
    "leads": 100,
    "opportunities": 80,
    "activities": 300,
    "notes": 150,
    "custom_object_schemas": 1,
    "custom_objects": 10,
}
ID_PATTERN = {
    "users": r"usr_\d{2}",
    "pipelines": r"pip_\d",
    "companies": r"com_\d{3}",
    "contacts": r"con_\d{4}",
    "leads": r"lea_\d{3}",
    "opportunities": r"opp_\d{3}",
    "activities": r"act_\d{4}",
    "notes": r"not_\d{3}",
    "custom_object_schemas": r"cos_[a-z_]+",
    "custom_objects": r"cob_\d{3}",
}
# every key naming another record -> the resource it points into ("stages": pipeline stages)
LINK_TARGET = {
    "owner_id": "users",
    "user_id": "users",
    "created_by": "users",
    "updated_by": "users",
    "company_id": "companies",
    "contact_id": "contacts",
    "primary_contact_id": "contacts",
    "contact_ids": "contacts",
    "lead_id": "leads",
    "opportunity_id": "opportunities",
    "opportunity_ids": "opportunities",
    "pipeline_id": "pipelines",
    "pipeline_stage_id": "stages",
    "object_id": "custom_object_schemas",
}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TIMESTAMP_KEYS = {
    "created_at",
    "updated_at",
    "last_activity_at",
    "first_call_at",
    "first_email_at",
    "stage_last_changed_at",
    "activity_datetime",
    "start_datetime",
    "end_datetime",
}
PAST_ONLY_KEYS = TIMESTAMP_KEYS - {"activity_datetime", "start_datetime", "end_datetime"}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    path = next((p for p in _SPEC_CANDIDATES if p.exists()), None)
    if path is None:
        pytest.skip("the OpenAPI contract is not available")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=loader)


@pytest.fixture(scope="module")
def seed() -> dict[str, list[dict]]:
    return build_seed()


def validator_for(spec: dict[str, Any], schema_name: str) -> OAS30Validator:
    # "$ref" into a document that carries the spec's components: every nested $ref resolves.
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]}
    return OAS30Validator(schema, format_checker=oas30_format_checker)


def walk(value: Any, path: str = ""):
    """Yield (path, key, value) for every key of every dict inside value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield path, key, item
            yield from walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, f"{path}[{index}]")


def by_id(seed: dict[str, list[dict]], resource: str) -> dict[str, dict]:
    return {record["id"]: record for record in seed[resource]}


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


# --------------------------------------------------------------------------- determinism


def test_two_builds_are_equal_and_independent() -> None:
    first, second = build_seed(), build_seed()
    assert first == second
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    first["companies"][0]["name"] = "changed"
    first["contacts"][0]["emails"].append({"email": "x@y.example"})
    third = build_seed()
    assert third == second


def test_global_random_is_neither_used_nor_disturbed() -> None:
    random.seed(1)
    state = random.getstate()
    one = build_seed()
    assert random.getstate() == state
    random.seed(999)
    assert build_seed() == one


def test_is_json_ready(seed: dict[str, list[dict]]) -> None:
    assert json.loads(json.dumps(seed)) == seed


# --------------------------------------------------------------------------- shape


def test_resources_and_counts(seed: dict[str, list[dict]]) -> None:
    assert tuple(seed) == RESOURCES
    assert {name: len(records) for name, records in seed.items()} == COUNTS


def test_ids_are_unique_and_prefixed(seed: dict[str, list[dict]]) -> None:
    for resource, records in seed.items():
        ids = [record["id"] for record in records]
        assert len(set(ids)) == len(ids), resource
        for record_id in ids:
            assert re.fullmatch(ID_PATTERN[resource], record_id), (resource, record_id)
    stage_ids = [stage["id"] for pipeline in seed["pipelines"] for stage in pipeline["stages"]]
    assert len(set(stage_ids)) == len(stage_ids)


def test_no_null_or_empty_values(seed: dict[str, list[dict]]) -> None:
    for resource, records in seed.items():
        for record in records:
            for path, key, value in walk(record):
                assert value is not None, (resource, record["id"], path, key)
                assert value not in ("", [], {}), (resource, record["id"], path, key)


def test_timestamps_and_dates(seed: dict[str, list[dict]]) -> None:
    earliest = BASE_TIME - timedelta(days=31 * 19)
    latest_future = BASE_TIME + timedelta(days=40)
    for resource, records in seed.items():
        for record in records:
            for path, key, value in walk(record):
                if key in TIMESTAMP_KEYS:
                    assert TIMESTAMP.match(value), (resource, record["id"], path, key, value)
                    moment = parse(value)
                    assert earliest <= moment <= latest_future, (resource, record["id"], key, value)
                    if key in PAST_ONLY_KEYS:
                        assert moment <= BASE_TIME, (resource, record["id"], key, value)
                if key in ("close_date", "birthday"):
                    assert DATE.match(value), (resource, record["id"], key, value)
            if "created_at" in record and "updated_at" in record:
                assert record["created_at"] <= record["updated_at"], (resource, record["id"])


def test_domains_are_reserved_example_domains(seed: dict[str, list[dict]]) -> None:
    for records in seed.values():
        for record in records:
            for _, key, value in walk(record):
                if key in ("email", "email_address"):
                    assert value.endswith(".example") and value.count("@") == 1, value
                if key in ("url", "video_conference_url"):
                    assert re.match(r"^https://[a-z0-9.-]+\.example(/|$)", value), value


# --------------------------------------------------------------------------- links


def test_every_link_points_to_an_existing_record(seed: dict[str, list[dict]]) -> None:
    ids = {resource: {record["id"] for record in records} for resource, records in seed.items()}
    ids["stages"] = {stage["id"] for pipeline in seed["pipelines"] for stage in pipeline["stages"]}
    checked: Counter[str] = Counter()
    for resource, records in seed.items():
        for record in records:
            for path, key, value in walk(record):
                if not (key.endswith(("_id", "_ids")) or key in LINK_TARGET):
                    continue
                assert key in LINK_TARGET, f"unexpected link field {resource}{path}.{key}"
                values = value if isinstance(value, list) else [value]
                for target in values:
                    assert target in ids[LINK_TARGET[key]], (resource, record["id"], path, key, target)
                    checked[key] += 1
    for record in seed["custom_objects"]:  # reference fields of the Project schema
        fields = {field["name"]: field["value"] for field in record["fields"]}
        assert fields["company_id"] in ids["companies"]
        assert fields["opportunity_id"] in ids["opportunities"]
        checked["fields"] += 1
    for key in ("owner_id", "company_id", "contact_id", "opportunity_id", "contact_ids", "pipeline_stage_id"):
        assert checked[key] > 0, key


def test_links_are_consistent(seed: dict[str, list[dict]]) -> None:
    companies = by_id(seed, "companies")
    contacts = by_id(seed, "contacts")
    opportunities = by_id(seed, "opportunities")
    stages = {stage["id"]: (pipeline["id"], stage) for pipeline in seed["pipelines"] for stage in pipeline["stages"]}
    for contact in seed["contacts"]:
        assert contact["name"] == f"{contact['first_name']} {contact['last_name']}"
        assert contact["company_name"] == companies[contact["company_id"]]["name"]
        for opp_id in contact.get("opportunity_ids", []):
            assert contact["id"] in opportunities[opp_id]["contact_ids"]
    for opp in seed["opportunities"]:
        assert opp["company_name"] == companies[opp["company_id"]]["name"]
        assert opp["primary_contact_id"] == opp["contact_ids"][0]
        for contact_id in opp["contact_ids"]:
            assert contacts[contact_id]["company_id"] == opp["company_id"]
            assert opp["id"] in contacts[contact_id]["opportunity_ids"]
        pipeline_id, stage = stages[opp["pipeline_stage_id"]]
        assert pipeline_id == opp["pipeline_id"]
        assert opp["win_probability"] == stage["win_probability"]
        expected = {100: "won", 0: "lost"}.get(stage["win_probability"], "open")
        assert opp["status"] == expected, opp["id"]
        assert 5000 <= opp["monetary_amount"] <= 250000
        assert opp["currency"] == "USD"
    for resource in ("activities", "notes"):
        for record in seed[resource]:
            assert contacts[record["contact_id"]]["company_id"] == record["company_id"]
            if "opportunity_id" in record:
                assert opportunities[record["opportunity_id"]]["company_id"] == record["company_id"]
    for lead in seed["leads"]:
        assert lead["name"] == f"{lead['first_name']} {lead['last_name']}"


def test_opportunities_cover_both_pipelines_and_every_stage(seed: dict[str, list[dict]]) -> None:
    used = Counter(opp["pipeline_stage_id"] for opp in seed["opportunities"])
    for pipeline in seed["pipelines"]:
        for stage in pipeline["stages"]:
            assert used[stage["id"]] >= 3, stage["id"]
    assert len({opp["owner_id"] for opp in seed["opportunities"]}) >= 5
    assert {opp["status"] for opp in seed["opportunities"]} == {"open", "won", "lost"}


def test_activity_mix(seed: dict[str, list[dict]]) -> None:
    types = Counter(activity["type"] for activity in seed["activities"])
    assert set(types) == {"call", "meeting", "email", "task"}
    assert min(types.values()) >= 30
    for activity in seed["activities"]:
        if activity["type"] in ("call", "meeting"):
            assert activity["duration_seconds"] > 0
        if activity["type"] == "meeting":
            start, end = parse(activity["start_datetime"]), parse(activity["end_datetime"])
            assert (end - start).total_seconds() == activity["duration_seconds"]
        if parse(activity["activity_datetime"]) > BASE_TIME:
            assert activity["done"] is False


# --------------------------------------------------------------------------- anchors


def test_anchor_company(seed: dict[str, list[dict]]) -> None:
    acme = by_id(seed, "companies")[ANCHORS["company_id"]]
    assert acme["id"] == "com_001"
    assert acme["name"] == ANCHORS["company_name"] == "Acme Corporation"
    assert ANCHORS["company_domain"] == "acme.example"
    assert acme["websites"][0]["url"] == "https://www.acme.example"
    assert acme["emails"][0]["email"] == "info@acme.example"
    assert acme["owner_id"] == ANCHORS["company_owner_id"]

    def of_acme(resource: str) -> list[dict]:
        return [record for record in seed[resource] if record["company_id"] == "com_001"]

    assert len(of_acme("contacts")) >= 6
    opps = of_acme("opportunities")
    open_stages = {opp["pipeline_stage_id"] for opp in opps if opp["status"] == "open"}
    assert len(open_stages) >= 3
    assert sum(opp["status"] == "won" for opp in opps) >= 1
    assert len(of_acme("activities")) >= 10
    assert len(of_acme("notes")) >= 5
    opportunities = by_id(seed, "opportunities")
    assert opportunities[ANCHORS["open_opportunity_id"]]["status"] == "open"
    assert opportunities[ANCHORS["won_opportunity_id"]]["status"] == "won"
    assert opportunities[ANCHORS["renewal_opportunity_id"]]["pipeline_id"] == ANCHORS["renewals_pipeline_id"]
    for key in ("open_opportunity_id", "won_opportunity_id", "renewal_opportunity_id"):
        assert opportunities[ANCHORS[key]]["company_id"] == "com_001"


def test_anchor_contact_lead_and_others(seed: dict[str, list[dict]]) -> None:
    jane = by_id(seed, "contacts")["con_0001"]
    assert ANCHORS["contact_id"] == "con_0001"
    assert jane["name"] == ANCHORS["contact_name"] == "Jane Doe"
    assert (jane["first_name"], jane["last_name"]) == ("Jane", "Doe")
    assert jane["title"] == ANCHORS["contact_title"] == "VP of Operations"
    assert jane["company_id"] == "com_001"
    assert jane["company_name"] == "Acme Corporation"
    assert jane["emails"][0]["email"] == ANCHORS["contact_email"] == "jane.doe@acme.example"
    assert jane["phone_numbers"][0]["number"] == ANCHORS["contact_phone"] == "+1 415 555 0101"
    assert by_id(seed, "opportunities")[ANCHORS["open_opportunity_id"]]["primary_contact_id"] == "con_0001"

    tom = by_id(seed, "leads")["lea_001"]
    assert ANCHORS["lead_id"] == "lea_001"
    assert tom["name"] == ANCHORS["lead_name"] == "Tom Baker"

    names = [c["name"] for c in seed["contacts"]] + [lead["name"] for lead in seed["leads"]]
    assert names.count("Jane Doe") == 1
    assert names.count("Tom Baker") == 1

    pipelines = by_id(seed, "pipelines")
    assert pipelines[ANCHORS["new_business_pipeline_id"]]["name"] == "New Business"
    assert pipelines[ANCHORS["renewals_pipeline_id"]]["name"] == "Renewals"
    assert len(pipelines[ANCHORS["renewals_pipeline_id"]]["stages"]) == 4
    assert ANCHORS["custom_object_schema_id"] in by_id(seed, "custom_object_schemas")
    project = by_id(seed, "custom_objects")[ANCHORS["custom_object_id"]]
    assert {"name": "company_id", "value": "com_001"} in project["fields"]


def test_anchor_ids_exist(seed: dict[str, list[dict]]) -> None:
    every_id = {record["id"] for records in seed.values() for record in records}
    for key, value in ANCHORS.items():
        if key.endswith("_id"):
            assert value in every_id, key


# --------------------------------------------------------------------------- contract


@pytest.mark.parametrize("resource", RESOURCES)
def test_records_validate_against_the_response_schema(
    spec: dict[str, Any], seed: dict[str, list[dict]], resource: str
) -> None:
    validator = validator_for(spec, SCHEMA_OF[resource])
    failures = []
    for record in seed[resource]:
        body = {key: value for key, value in record.items() if key != "object_id"}
        failures += [f"{record['id']}: {error.json_path}: {error.message}" for error in validator.iter_errors(body)]
    assert not failures, "\n".join(failures[:20])


def test_validation_is_not_vacuous(spec: dict[str, Any], seed: dict[str, list[dict]]) -> None:
    contact = copy.deepcopy(seed["contacts"][0])
    contact["emails"][0]["type"] = "mobile"  # not in the Email.type enum
    contact["favourite_colour"] = "blue"  # additionalProperties: false
    assert len(list(validator_for(spec, "Contact").iter_errors(contact))) == 2
    lead = copy.deepcopy(seed["leads"][0])
    lead["created_at"] = "2026-01-01T00:00:00Z"  # Lead timestamps must carry milliseconds
    assert not validator_for(spec, "Lead").is_valid(lead)
    opportunity = copy.deepcopy(seed["opportunities"][0])
    opportunity["close_date"] = "2026-13-45"  # format: date is checked
    assert not validator_for(spec, "Opportunity").is_valid(opportunity)


# --------------------------------------------------------------------------- dates relative to "now"


def _dated_values(seed: dict[str, list[dict]]) -> list[tuple[str, str, str]]:
    """(resource, path, value) of every timestamp and date in the seed but birthdays."""
    out = []
    for resource, records in seed.items():
        for record in records:
            for path, key, value in walk(record, record["id"]):
                if key == "birthday" or not isinstance(value, str):
                    continue
                if TIMESTAMP.match(value) or DATE.match(value):
                    out.append((resource, f"{path}.{key}", value))
    return out


def test_the_dates_move_with_the_reference_time_and_nothing_else_does(seed: dict[str, list[dict]]) -> None:
    now = datetime(2031, 3, 14, 15, 30, tzinfo=UTC)
    later = build_seed(now)
    shift = timedelta(days=(now - BASE_TIME).days)  # whole days: 1594, so times of day stay
    assert shift == timedelta(days=1594) and build_seed(BASE_TIME) == seed
    before, after = _dated_values(seed), _dated_values(later)
    assert len(before) == len(after) > 2500
    for (resource, path, old), (_, _, new) in zip(before, after, strict=True):
        if TIMESTAMP.match(old):
            assert parse(new) == parse(old) + shift, (resource, path)
        else:
            assert datetime.fromisoformat(new) == datetime.fromisoformat(old) + shift, (resource, path)
    undated = re.compile(r"\d{4}-\d{2}-\d{2}(T[0-9:.]+Z)?")
    plain = json.dumps(seed)
    assert undated.sub("D", plain) == undated.sub("D", json.dumps(later))  # same records, ids, names
    birthdays = [c["birthday"] for c in seed["contacts"] if "birthday" in c]
    assert birthdays and birthdays == [c["birthday"] for c in later["contacts"] if "birthday" in c]
    assert max(a["created_at"] for a in later["activities"]) <= "2031-03-14T15:30:00.000Z"


@pytest.mark.parametrize("days_later", [0, 400])
def test_the_last_30_days_have_a_well_defined_answer(days_later: int) -> None:
    now = BASE_TIME + timedelta(days=days_later)
    seed = build_seed(now)
    since = now - timedelta(days=30)
    recent = [a for a in seed["activities"] if since <= parse(a["activity_datetime"]) <= now]
    assert len(recent) == 64 and len({a["company_id"] for a in recent}) == 28
    acme = [a for a in seed["activities"] if a.get("company_id") == ANCHORS["company_id"]]
    assert [a["id"] for a in acme if a in recent] == ["act_0223", "act_0232", "act_0250", "act_0286"]
    assert len([a for a in acme if parse(a["activity_datetime"]) < since]) == 13
    upcoming = [a for a in acme if parse(a["activity_datetime"]) > now]
    assert len(upcoming) == 1 and upcoming[0]["done"] is False
    open_deals = [o for o in seed["opportunities"] if o["status"] == "open"]
    assert open_deals and all(datetime.fromisoformat(o["close_date"]).date() > now.date() for o in open_deals)


def test_a_store_dates_each_new_consumer_from_the_clock_unless_pinned() -> None:
    from crm_mcp.sandbox.store import Store

    pinned_at = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
    for store_now, reference in ((None, datetime.now(UTC)), (pinned_at, pinned_at)):
        store = Store(":memory:", now=store_now)
        try:
            store.ensure_consumer("c")
            activity = store.get("c", "activities", "", "act_0286")
            expected = next(a for a in build_seed(reference)["activities"] if a["id"] == "act_0286")
            assert activity == expected
            latest = max(parse(a["created_at"]) for a in build_seed(reference)["activities"])
            assert reference - timedelta(days=2) < latest <= reference
        finally:
            store.close()


def test_a_sandbox_server_serves_the_seed_of_its_pinned_time() -> None:

    from crm_mcp.sandbox.server import SandboxServer

    pinned_at = datetime(2029, 2, 3, 10, 0, tzinfo=UTC)
    headers = {"Authorization": "Bearer k", "x-apideck-app-id": "a", "x-apideck-consumer-id": "c"}
    with SandboxServer(db=":memory:", now=pinned_at) as server:
        served = http_clients.get(f"{server.base_url}/crm/activities/act_0286", headers=headers).json()["data"]
    assert served == next(a for a in build_seed(pinned_at)["activities"] if a["id"] == "act_0286")
    assert served["activity_datetime"] == "2029-01-31T14:45:00.000Z"  # 2026-10-29T14:45 in BASE_TIME dates
