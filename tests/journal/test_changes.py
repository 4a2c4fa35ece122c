"""The changes digest against the sandbox CRM over HTTP: grouped by resource, counted, names
beside ids, bounded, with a cursor that continues."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_mcp.journal.changes import ChangesArgumentError, crm_changes
from crm_mcp.operations import operation

pytestmark = pytest.mark.anyio


async def test_digest_groups_what_changed_since_with_names(crm) -> None:
    since = datetime.now(UTC) - timedelta(seconds=2)
    await crm.call(operation("update_contact"), path_params={"id": "con_0001"}, body={"title": "COO"})
    created = await crm.call(operation("create_lead"), body={"name": "Ada Lovelace", "company_name": "AE"})
    lead_id = created.body["data"]["id"]
    title = "Acme Corporation — Analytics Platform expansion"  # the contract requires it in an update
    await crm.call(operation("update_opportunity"), path_params={"id": "opp_001"},
                   body={"title": title, "win_probability": 80})

    digest = await crm_changes(crm, since)

    by_resource = {g.resource: g for g in digest.groups}
    assert list(by_resource) == ["companies", "contacts", "leads", "opportunities", "activities"]
    assert [(r.id, r.label, r.created) for r in by_resource["contacts"].records] == [("con_0001", "Jane Doe", False)]
    assert [(r.id, r.label, r.created) for r in by_resource["leads"].records] == [(lead_id, "Ada Lovelace", True)]
    assert [r.id for r in by_resource["opportunities"].records] == ["opp_001"]
    assert by_resource["companies"].records == () and by_resource["activities"].records == ()
    assert by_resource["contacts"].how == "updated_since filter" and by_resource["leads"].how == "sorted by updated_at"
    assert digest.cursor is None
    lines = digest.text.splitlines()
    assert lines[0] == f"Created or changed since {since.strftime('%Y-%m-%dT%H:%M:%SZ')}:"
    assert lines[1] == "companies: 0 (0 created, 0 changed)"
    assert lines[2] == "contacts: 1 (0 created, 1 changed)"
    assert lines[3].startswith("  con_0001 Jane Doe (changed ")
    assert lines[4] == "leads: 1 (1 created, 0 changed)"
    assert lines[5].startswith(f"  {lead_id} Ada Lovelace (created ")


async def test_digest_is_bounded_and_its_cursor_continues(crm) -> None:
    first = await crm_changes(crm, "2026-10-01", ["contacts", "leads"], limit=3)
    assert all(len(g.records) == 3 and g.more for g in first.groups)
    assert first.cursor is not None
    lines = first.text.splitlines()
    assert lines[1:3] == ["contacts: 3+ (0 created, 3 changed)", "  con_0040 Ananya Kim (changed 2026-10-31T10:51:00Z)"]
    assert lines[5:7] == ["leads: 3+ (3 created, 0 changed)", "  lea_056 Tariq Martinez (created 2026-11-01T03:47:00Z)"]
    assert lines[-1] == f"More changes: call crm_changes again with cursor {first.cursor!r}."
    second = await crm_changes(crm, cursor=first.cursor, limit=3)
    assert [g.resource for g in second.groups] == ["contacts", "leads"]
    seen = {r.id for g in first.groups for r in g.records}
    again = {r.id for g in second.groups for r in g.records}
    assert len(again) == 6 and not seen & again
    newest_first = [r.updated_at for r in first.groups[0].records + second.groups[0].records]
    assert newest_first == sorted(newest_first, reverse=True)


async def test_bad_arguments_get_a_clear_error(crm) -> None:
    with pytest.raises(ChangesArgumentError, match="since must be an ISO 8601 date or time"):
        await crm_changes(crm, "yesterday")
    with pytest.raises(ChangesArgumentError, match="resources: unknown notes; choose from companies, contacts"):
        await crm_changes(crm, "2026-10-01", ["notes"])
    with pytest.raises(ChangesArgumentError, match="cursor is not one crm_changes returned"):
        await crm_changes(crm, cursor="garbage")
