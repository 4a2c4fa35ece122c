"""Previews against the sandbox CRM over HTTP: exactly what would be sent, current -> after per
field, and no write reaching the CRM (its request log shows only the one read)."""

from __future__ import annotations

import pytest

from crm_mcp.journal.preview import preview_write
from crm_mcp.operations import operation
from crm_mcp.sandbox.server import SandboxServer

pytestmark = pytest.mark.anyio


def writes_seen(sandbox: SandboxServer, consumer: str) -> int:
    return sum(sandbox.faults.count(method=m, consumer=consumer) for m in ("POST", "PATCH", "DELETE"))


async def test_update_preview_shows_each_field_now_and_after_and_writes_nothing(
    crm, sandbox_server: SandboxServer, consumer: str
) -> None:
    preview = await preview_write(
        crm, operation("update_contact"), path_params={"id": "con_0001"},
        body={"title": "COO", "department": "Operations", "emails": [{"email": "jane@new.example", "type": "work"}]},
    )  # fmt: skip
    assert preview.text == (
        "Preview only, nothing was sent: PATCH /crm/contacts/con_0001\n"
        "Would change contact con_0001 (Jane Doe):\n"
        "  title: VP of Operations -> COO\n"
        "  department: Operations (unchanged)\n"
        '  emails: [{"email": "jane.doe@acme.example", "type": "work"}] -> [{"email": "jane@new.example", '
        '"type": "work"}]'
    )
    assert preview.to_dict()["request"] == {
        "method": "PATCH",
        "path": "/crm/contacts/con_0001",
        "body": {"title": "COO", "department": "Operations", "emails": [{"email": "jane@new.example", "type": "work"}]},
    }
    assert writes_seen(sandbox_server, consumer) == 0
    assert sandbox_server.faults.count(method="GET", path="/crm/contacts/con_0001", consumer=consumer) == 1
    jane = (await crm.call(operation("get_contact"), path_params={"id": "con_0001"})).body["data"]
    assert jane["title"] == "VP of Operations"


async def test_delete_preview_lists_the_record_that_would_go(crm, sandbox_server: SandboxServer, consumer) -> None:
    preview = await preview_write(crm, operation("delete_contact"), path_params={"id": "con_0001"})
    lines = preview.text.splitlines()
    assert lines[:3] == [
        "Preview only, nothing was sent: DELETE /crm/contacts/con_0001",
        "Would delete contact con_0001 (Jane Doe):",
        "  id: con_0001",
    ]
    assert "  name: Jane Doe" in lines and "  title: VP of Operations" in lines
    assert preview.body is None
    assert writes_seen(sandbox_server, consumer) == 0


async def test_create_preview_reads_and_writes_nothing(crm, sandbox_server: SandboxServer, consumer: str) -> None:
    preview = await preview_write(crm, operation("create_lead"), body={"name": "Ada Lovelace", "company_name": "AE"})
    assert preview.text == (
        "Preview only, nothing was sent: POST /crm/leads\n"
        "Would create a lead:\n  name: Ada Lovelace\n  company_name: AE"
    )
    assert sandbox_server.faults.count(consumer=consumer) == 0


async def test_preview_of_a_missing_record_says_the_write_would_fail(crm) -> None:
    preview = await preview_write(crm, operation("update_contact"), path_params={"id": "con_9999"}, body={"title": "X"})
    assert preview.text == (
        "Preview only, nothing was sent: PATCH /crm/contacts/con_9999\n"
        "The contact con_9999 does not exist, so this update would fail (not found)."
    )
    assert not preview.exists
