"""The generated code is in step with the vendored contract, and shaped as the issue asks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from crm_mcp.operations import OPERATIONS, RESOURCES, model, operation, spec_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_generated_code_is_not_stale() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_generator_detects_a_changed_spec(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import generate  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    spec = generate.load_spec()
    spec["components"]["schemas"]["Note"]["properties"]["mood"] = {"type": "string"}
    files = generate.generate(spec)
    assert "mood" in files["models_notes.py"]
    assert files["models_notes.py"] != (ROOT / "crm_mcp" / "generated" / "models_notes.py").read_text()


def test_all_fifty_operations_with_tool_names() -> None:
    assert len(OPERATIONS) == 50
    names = {op.tool_name for op in OPERATIONS}
    assert len(names) == 50
    assert {"list_contacts", "get_contact", "create_contact", "update_contact", "delete_contact"} <= names
    assert {"list_custom_objects", "get_custom_object_schema", "update_custom_object"} <= names
    assert operation("get_custom_object").path_params == ("object_id", "id")
    assert operation("list_contacts").filter_model == "ContactsFilter"
    assert operation("list_contacts").sort_model == "ContactsSort"
    assert operation("create_note").body_model == "NoteInput"
    assert operation("create_note").success_status == 201
    assert operation("list_notes").record_model == "Note"
    assert {r.name for r in RESOURCES} == {
        "companies", "contacts", "opportunities", "leads", "pipelines", "notes", "users",
        "activities", "custom_object_schemas", "custom_objects",
    }


def test_every_named_model_resolves() -> None:
    for op in OPERATIONS:
        for name in (op.filter_model, op.sort_model, op.body_model, op.response_model, op.record_model):
            if name:
                model(name)


def test_request_shapes_have_no_read_only_fields() -> None:
    for res in RESOURCES:
        inputs = model(res.input_model).model_fields
        records = model(res.record_model).model_fields
        assert res.read_only_fields, res.name
        for field in res.read_only_fields:
            assert field not in inputs, (res.name, field)
        assert "created_at" in records or res.name == "custom_objects" or "id" in records
    assert "id" not in model("ContactInput").model_fields
    assert "updated_by" not in model("CompanyInput").model_fields
    assert "password" in model("UserInput").model_fields  # writeOnly: request only
    assert "password" not in model("User").model_fields


def test_request_shapes_reject_unknown_fields_and_wrong_types() -> None:
    contact_input = model("ContactInput")
    try:
        contact_input.model_validate({"first_name": "Ada", "id": "x"})
    except ValidationError as exc:
        assert exc.errors()[0]["loc"] == ("id",)
    else:  # pragma: no cover - the assertion is the point
        raise AssertionError("read-only id accepted in a request")
    try:
        model("OpportunityInput").model_validate({"title": "Deal", "monetary_amount": "lots"})
    except ValidationError as exc:
        assert exc.errors()[0]["loc"] == ("monetary_amount",)
    else:  # pragma: no cover
        raise AssertionError("string accepted for a number")


def test_responses_tolerate_connector_fields() -> None:
    contact = model("Contact").model_validate({"id": "1", "x_connector_field": 3})
    assert contact.model_extra == {"x_connector_field": 3}


def test_vendored_spec_keeps_version_and_licence() -> None:
    text = spec_path().read_text(encoding="utf-8")
    assert "version: 10.24.12" in text
    assert "Apache 2.0" in text
