"""Lists: cursor pagination, every filter and sort of every resource, fields selection, and the
400s of bad list parameters."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from typing import Any

import httpx2
import pytest
from sweeps import split_sweep

from crm_mcp.operations import Operation, model

from .helpers import create, list_operations, list_path, walk

# --------------------------------------------------------------------------- reference rules


def value_of(record: dict[str, Any], field: str) -> Any:
    """What a filter or sort on `field` looks at (the documented rules)."""
    value = record.get(field)
    if value is None and field == "name":
        value = " ".join(p for p in (record.get("first_name"), record.get("last_name")) if p) or None
    if value is None and isinstance(record.get(field + "s"), list) and record[field + "s"]:
        value = record[field + "s"][0].get(field)
    return value


def stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def filter_case(field: str, records: list[dict[str, Any]], numeric: bool) -> tuple[str, Any]:
    """A filter value taken from the data, and the reference predicate it should apply."""
    if field.endswith("_since"):
        at = field.removesuffix("_since") + "_at"
        stamps = sorted(stamp(r[at]) for r in records if r.get(at))
        since = stamps[len(stamps) // 2]
        return since.isoformat(), lambda r: bool(r.get(at)) and stamp(r[at]) >= since
    if field == "email":
        sample = next(r["emails"][0]["email"] for r in records if r.get("emails"))
        part = sample.split("@")[1][:8].upper()
        return part, lambda r: any(part.casefold() in e.get("email", "").casefold() for e in r.get("emails") or [])
    if field == "phone_number":
        sample = next(r["phone_numbers"][0]["number"] for r in records if r.get("phone_numbers"))
        digits = re.sub(r"\D", "", sample)[-7:]
        query = f"{digits[:3]}-{digits[3:]}"
        numbers = lambda r: [re.sub(r"\D", "", p.get("number", "")) for p in r.get("phone_numbers") or []]  # noqa: E731
        return query, lambda r: any(digits in number for number in numbers(r))
    sample = next(r for r in records if value_of(r, field) not in (None, ""))
    value = value_of(sample, field)
    if field.endswith("_id"):
        return value, lambda r: r.get(field) == value
    if numeric:
        return str(value), lambda r: r.get(field) is not None and float(r[field]) == float(value)
    if field in ("status", "type"):
        return value.upper(), lambda r: (r.get(field) or "").casefold() == value.casefold()
    part = value[1:5].upper() if len(value) > 5 else value.upper()
    return part, lambda r: part.casefold() in (value_of(r, field) or "").casefold()


def filter_params() -> list[Any]:
    out, firsts = [], set()  # each list's first filter field in the inner loop, all with the slow tests
    for op in list_operations("filter"):
        assert op.filter_model is not None
        fields = list(model(op.filter_model).model_fields)
        out += [(op, field) for field in fields]
        firsts.add((op.tool_name, fields[0]))
    return split_sweep(out, fast=lambda case: (case[0].tool_name, case[1]) in firsts,
                       ids=lambda case: f"{case[0].tool_name}-{case[1]}")


def sort_params() -> list[Any]:
    out = []
    for op in list_operations("sort"):
        assert op.sort_model is not None
        annotation = model(op.sort_model).model_fields["by"].annotation
        choices = re.findall(r"'(\w+)'", str(annotation))
        for by in choices:
            for direction in ("asc", "desc"):
                out.append(pytest.param(op, by, direction, id=f"{op.tool_name}-{by}-{direction}"))
    return out


# --------------------------------------------------------------------------- filters and sorts


def test_every_filter_and_sort_is_covered() -> None:
    assert len(filter_params()) == 3 + 9 + 7 + 5 + 5  # companies, contacts, opportunities, leads, activities
    assert len(sort_params()) == 2 * (3 + 6 + 6 + 6 + 2)


@pytest.mark.parametrize(("op", "field"), filter_params())
def test_filter(sandbox_client: httpx2.Client, op: Operation, field: str) -> None:
    url = list_path(op.tool_name)
    everything = walk(sandbox_client, url, {"limit": 200})
    assert op.filter_model is not None
    numeric = "float" in str(model(op.filter_model).model_fields[field].annotation)
    value, predicate = filter_case(field, everything, numeric)
    expected = [r["id"] for r in everything if predicate(r)]
    assert expected, f"the seed should have matches for filter[{field}]={value!r}"
    found = walk(sandbox_client, url, {f"filter[{field}]": value, "limit": 50})
    assert [r["id"] for r in found] == expected
    if not field.endswith("_since"):
        assert len(expected) < len(everything), "a filter that keeps everything proves nothing"


def test_filters_combine(sandbox_client: httpx2.Client) -> None:
    found = walk(sandbox_client, "/crm/contacts", {"filter[company_id]": "com_001", "filter[first_name]": "JANE"})
    assert [r["id"] for r in found] == ["con_0001"]
    by_phone = walk(sandbox_client, "/crm/contacts", {"filter[phone_number]": "(415) 555-0101"})
    assert "con_0001" in [r["id"] for r in by_phone]


def sort_key(record: dict[str, Any], field: str) -> tuple:
    value = value_of(record, field)
    if value is None:
        return (0, "")
    if isinstance(value, int | float):
        return (1, float(value))
    if field.endswith("_at"):
        return (1, stamp(value).isoformat())
    return (1, str(value).casefold())


# every sortable field both ways, each walked to its end and checked against the contract (~4 s);
# test_sort_direction_defaults_to_ascending keeps a sort in the fast tests
@pytest.mark.slow
@pytest.mark.parametrize(("op", "by", "direction"), sort_params())
def test_sort(sandbox_client: httpx2.Client, op: Operation, by: str, direction: str) -> None:
    url = list_path(op.tool_name)
    found = walk(sandbox_client, url, {"sort[by]": by, "sort[direction]": direction, "limit": 37})
    ids = [r["id"] for r in found]
    assert len(ids) == len(set(ids))
    expected = sorted(found, key=lambda r: (sort_key(r, by), r["id"]), reverse=direction == "desc")
    assert ids == [r["id"] for r in expected]
    assert len({sort_key(r, by) for r in found}) > 1


def test_sort_direction_defaults_to_ascending(sandbox_client: httpx2.Client) -> None:
    plain = sandbox_client.get("/crm/companies", params={"sort[by]": "name", "limit": 200}).json()["data"]
    names = [r["name"].casefold() for r in plain]
    assert names == sorted(names)
    newest = sandbox_client.get("/crm/companies", params={"sort[direction]": "desc", "limit": 200}).json()["data"]
    assert [r["id"] for r in newest] == [r["id"] for r in walk(sandbox_client, "/crm/companies", {"limit": 200})][::-1]


# --------------------------------------------------------------------------- pagination


def test_default_limit_and_walk(sandbox_client: httpx2.Client) -> None:
    first = sandbox_client.get("/crm/contacts").json()
    assert first["meta"]["items_on_page"] == 20 and first["meta"]["cursors"]["previous"] is None
    single = sandbox_client.get("/crm/contacts", params={"limit": 200}).json()["data"]
    walked = walk(sandbox_client, "/crm/contacts", {"limit": 7})
    assert [r["id"] for r in walked] == [r["id"] for r in single]
    assert len(walked) == 200 and len({r["id"] for r in walked}) == 200


def test_links_are_absolute_and_walkable(sandbox_client: httpx2.Client) -> None:
    response = sandbox_client.get("/crm/leads", params={"limit": 30, "filter[name]": "a", "sort[by]": "email"})
    body = response.json()
    assert body["links"]["current"] == str(response.request.url)
    seen = [r["id"] for r in body["data"]]
    while body["links"]["next"]:
        assert body["links"]["next"].startswith(f"{sandbox_client.base_url}/crm/leads?")
        body = sandbox_client.get(body["links"]["next"]).json()
        seen += [r["id"] for r in body["data"]]
    expected = walk(sandbox_client, "/crm/leads", {"limit": 200, "filter[name]": "a", "sort[by]": "email"})
    assert seen == [r["id"] for r in expected]


@pytest.mark.slow  # three full walks with writes between pages (~1 s)
@pytest.mark.parametrize("sort", [{}, {"sort[by]": "name"}, {"sort[by]": "created_at", "sort[direction]": "desc"}])
def test_walk_while_records_are_added(sandbox_client: httpx2.Client, sort: dict[str, str]) -> None:
    before = {r["id"] for r in walk(sandbox_client, "/crm/contacts", {"limit": 200, **sort})}
    params: dict[str, Any] = {"limit": 15, **sort}
    seen: list[str] = []
    added: list[str] = []
    n = 0
    while True:
        body = sandbox_client.get("/crm/contacts", params=params).json()
        seen += [r["id"] for r in body["data"]]
        for _ in range(3):  # new records land before, inside and after the walk's position
            n += 1
            added.append(create(sandbox_client, "contacts", {"name": f"{'AZM'[n % 3]}dded {n}"}))
        if not body["meta"]["cursors"]["next"]:
            break
        params["cursor"] = body["meta"]["cursors"]["next"]
    assert len(seen) == len(set(seen)), "a record came twice"
    assert before <= set(seen), "a record was skipped"
    assert set(seen) <= before | set(added)
    if not sort:  # insertion order: everything added during the walk comes after it, so it is seen
        assert set(seen) == before | set(added[:-3])


def test_previous_and_current_cursors(sandbox_client: httpx2.Client) -> None:
    params: dict[str, Any] = {"limit": 5, "sort[by]": "last_name"}
    page1 = sandbox_client.get("/crm/contacts", params=params).json()
    assert page1["meta"]["cursors"]["current"] is None and page1["links"]["previous"] is None
    cursor2 = page1["meta"]["cursors"]["next"]
    page2 = sandbox_client.get("/crm/contacts", params={**params, "cursor": cursor2}).json()
    assert page2["meta"]["cursors"]["current"] == cursor2
    back = sandbox_client.get("/crm/contacts", params={**params, "cursor": page2["meta"]["cursors"]["previous"]}).json()
    assert [r["id"] for r in back["data"]] == [r["id"] for r in page1["data"]]
    assert back["meta"]["cursors"]["previous"] is None
    again = sandbox_client.get("/crm/contacts", params={**params, "cursor": back["meta"]["cursors"]["next"]}).json()
    assert [r["id"] for r in again["data"]] == [r["id"] for r in page2["data"]]
    page3 = sandbox_client.get("/crm/contacts", params={**params, "cursor": page2["meta"]["cursors"]["next"]}).json()
    back2 = sandbox_client.get("/crm/contacts", params={**params, "cursor": page3["meta"]["cursors"]["previous"]})
    assert [r["id"] for r in back2.json()["data"]] == [r["id"] for r in page2["data"]]
    assert back2.json()["meta"]["cursors"]["previous"] is not None


def test_empty_list(sandbox_client: httpx2.Client) -> None:
    body = sandbox_client.get("/crm/contacts", params={"filter[email]": "nobody-at-all"}).json()
    assert body["data"] == [] and body["meta"]["items_on_page"] == 0
    assert body["meta"]["cursors"] == {"previous": None, "current": None, "next": None}


# --------------------------------------------------------------------------- fields selection


def test_fields_selection_with_nested_paths(sandbox_client: httpx2.Client) -> None:
    body = sandbox_client.get("/crm/contacts", params={"fields": "name, addresses.city,emails.email,", "limit": 50})
    records = body.json()["data"]
    assert all(set(r) <= {"id", "name", "addresses", "emails"} and "id" in r for r in records)
    assert any(r.get("addresses") for r in records)
    for record in records:
        assert all(set(a) <= {"city"} for a in record.get("addresses", []))
        assert all(set(e) == {"email"} for e in record.get("emails", []))
    one = sandbox_client.get("/crm/contacts/con_0001", params={"fields": "title"}).json()["data"]
    assert one == {"id": "con_0001", "title": "VP of Operations"}


def test_fields_selection_keeps_what_the_contract_requires(sandbox_client: httpx2.Client) -> None:
    companies = sandbox_client.get("/crm/companies", params={"fields": "addresses.city"}).json()["data"]
    assert all(set(c) <= {"id", "name", "addresses"} and "name" in c for c in companies)


def test_unknown_field_in_fields_is_400(sandbox_client: httpx2.Client) -> None:
    response = sandbox_client.get("/crm/contacts", params={"fields": "name,colour"})
    assert response.status_code == 400
    assert "Unknown field 'colour'" in response.json()["message"]


# --------------------------------------------------------------------------- bad list parameters


@pytest.mark.parametrize("limit", ["0", "201", "-1", "abc", "1.5", ""])
def test_bad_limit(sandbox_client: httpx2.Client, limit: str) -> None:
    response = sandbox_client.get("/crm/contacts", params={"limit": limit})
    assert response.status_code == 400
    body = response.json()
    assert body["type_name"] == "RequestValidationError"
    assert body["message"].startswith("Invalid limit") and "200" in body["message"]


def test_limit_bounds(sandbox_client: httpx2.Client) -> None:
    assert len(sandbox_client.get("/crm/contacts", params={"limit": 1}).json()["data"]) == 1
    assert len(sandbox_client.get("/crm/contacts", params={"limit": 200}).json()["data"]) == 200


def _cursor(doc: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


def test_bad_cursors(sandbox_client: httpx2.Client) -> None:
    by_name = sandbox_client.get("/crm/contacts", params={"limit": 2, "sort[by]": "name"}).json()
    companies = sandbox_client.get("/crm/companies", params={"limit": 2}).json()
    cases = {
        "garbage": ("not a cursor!", "Invalid cursor"),
        "not json": (base64.urlsafe_b64encode(b"hello").decode(), "Invalid cursor"),
        "wrong shape": (_cursor({"s": "contacts", "o": "seq:asc", "k": [1], "i": 2, "b": 0}), "Invalid cursor"),
        "other sort": (by_name["meta"]["cursors"]["next"], "issued for sort name:asc"),
        "other list": (companies["meta"]["cursors"]["next"], "belongs to a list of companies"),
    }
    for name, (cursor, message) in cases.items():
        response = sandbox_client.get("/crm/contacts", params={"cursor": cursor})
        assert response.status_code == 400, name
        assert response.json()["type_name"] == "InvalidCursorError", name
        assert message in response.json()["message"], name


def _raw_cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode().rstrip("=")


FORGED_CURSORS = {
    "key past SQLite's integers": _raw_cursor('{"s":"contacts","o":"seq:asc","k":1e999999,"i":"a","b":0}'),
    "huge integer key": _raw_cursor('{"s":"contacts","o":"seq:asc","k":99999999999999999999999,"i":"a","b":0}'),
    "NaN key": _raw_cursor('{"s":"contacts","o":"seq:asc","k":NaN,"i":"a","b":0}'),
    "lone surrogate id": _raw_cursor('{"s":"contacts","o":"seq:asc","k":1,"i":"\\ud800","b":0}'),
    "lone surrogate key": _raw_cursor('{"s":"contacts","o":"name:asc","k":"\\udfff","i":"a","b":0}'),
    "text key for a numeric order": _raw_cursor('{"s":"contacts","o":"seq:asc","k":"x","i":"a","b":0}'),
    "number key for a text order": _raw_cursor('{"s":"contacts","o":"name:asc","k":5,"i":"a","b":0}'),
    "direction not 0 or 1": _raw_cursor('{"s":"contacts","o":"seq:asc","k":1,"i":"a","b":"back"}'),
    "a list for the scope": _raw_cursor('{"s":["contacts"],"o":"seq:asc","k":1,"i":"a","b":0}'),
    "not an object": _raw_cursor("[1, 2, 3]"),
    "nested too deep": _raw_cursor("[" * 5000 + "]" * 5000),
    "not UTF-8": base64.urlsafe_b64encode(b"\xff\xfe\x00").decode(),
    "very long": "A" * 5000,
}


@pytest.mark.parametrize("cursor", FORGED_CURSORS.values(), ids=FORGED_CURSORS.keys())
def test_a_forged_cursor_is_a_400_never_a_500(sandbox_client: httpx2.Client, cursor: str) -> None:
    sort = {"sort[by]": "name"} if "name:asc" in base64.urlsafe_b64decode(cursor + "===").decode("latin-1") else {}
    response = sandbox_client.get("/crm/contacts", params={"cursor": cursor, **sort})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type_name"] == "InvalidCursorError" and body["message"].startswith("Invalid cursor")
    assert len(body["message"]) < 250  # a long cursor is not echoed whole


@pytest.mark.parametrize(
    ("params", "status", "type_name", "message"),
    [
        ({"filter[colour]": "red"}, 400, "UnsupportedFiltersError", "Unsupported filter filter[colour] for contacts"),
        ({"filter[updated_since]": "yesterday"}, 400, "RequestValidationError", "ISO 8601"),
        ({"filter[created_since]": "2026-13-45"}, 400, "RequestValidationError", "filter[created_since]"),
        ({"filter": "x"}, 400, "RequestValidationError", "filter[name]=value"),
        ({"filter[a][b]": "x"}, 400, "RequestValidationError", "filter[a][b]"),
        ({"sort[by]": "colour"}, 400, "UnsupportedSortFieldError", "Unsupported sort field 'colour'"),
        ({"sort[direction]": "up"}, 400, "RequestValidationError", "sort[direction]"),
        ({"sort[order]": "asc"}, 400, "RequestValidationError", "sort[order]"),
        ({"colour": "red"}, 400, "RequestValidationError", "Unknown query parameter 'colour'"),
        ({"raw": "maybe"}, 400, "RequestValidationError", "Invalid raw"),
        ({"pass_through[search]": "x", "raw": "true"}, 200, None, None),
    ],
)
def test_bad_list_parameters(
    sandbox_client: httpx2.Client, params: dict[str, str], status: int, type_name: str | None, message: str | None
) -> None:
    response = sandbox_client.get("/crm/contacts", params=params)
    assert response.status_code == status, response.text
    if type_name:
        assert response.json()["type_name"] == type_name
        assert message is not None and message in response.json()["message"]


def test_bad_numeric_filter(sandbox_client: httpx2.Client) -> None:
    response = sandbox_client.get("/crm/opportunities", params={"filter[monetary_amount]": "lots"})
    assert response.status_code == 400
    assert "filter[monetary_amount]" in response.json()["message"] and "valid number" in response.json()["message"]


def test_filters_on_a_list_without_filters(sandbox_client: httpx2.Client) -> None:
    response = sandbox_client.get("/crm/notes", params={"filter[title]": "x"})
    assert response.status_code == 400
    assert "Unknown query parameter 'filter[title]' for list_notes" in response.json()["message"]
