"""Undo against the sandbox CRM over HTTP, with the journal on SQLite and on PostgreSQL: an
update patched back, a create deleted, a delete re-created, conflicts, and replicas."""

from __future__ import annotations

import anyio
import pytest

from crm_mcp.client import ApideckClient
from crm_mcp.errors import CrmError
from crm_mcp.journal.store import JournalStore, Scope
from crm_mcp.journal.undo import UndoConflict, UndoError, UndoResult, undo_change, undo_last
from crm_mcp.journal.writes import WriteJournal
from crm_mcp.operations import operation
from crm_mcp.sandbox.server import SandboxServer

from .support import journaled_write

pytestmark = pytest.mark.anyio


async def contact(client: ApideckClient, record_id: str) -> dict:
    response = await client.call(operation("get_contact"), path_params={"id": record_id})
    return dict(response.body["data"])


async def test_undo_of_an_update_patches_back_only_the_fields_it_wrote(journal, crm, scope) -> None:
    change = await journaled_write(journal, crm, scope, "update_contact", {"id": "con_0001"},
                                   {"title": "COO", "department": "Executive"})  # fmt: skip
    assert change.before is not None and change.before["title"] == "VP of Operations"
    assert change.written == {"title": "COO", "department": "Executive"}
    # another field changed since by someone else: not one the change wrote, so no conflict
    await crm.call(operation("update_contact"), path_params={"id": "con_0001"}, body={"language": "FR"})

    result = await undo_change(journal.store, crm, scope, change.id)

    assert result.done == "patched back"
    assert result.restored == {"title": "VP of Operations", "department": "Operations"}
    jane = await contact(crm, "con_0001")
    assert (jane["title"], jane["department"], jane["language"]) == ("VP of Operations", "Operations", "FR")
    assert result.text == (
        f"Undid {change.id}: contact con_0001 patched back (title back to VP of Operations, "
        "department back to Operations)."
    )
    stored = await journal.store.get(scope, change.id)
    assert stored is not None and stored.undone and stored.undo_result == result.to_dict()
    with pytest.raises(UndoError, match="already undone"):
        await undo_change(journal.store, crm, scope, change.id)


async def test_undo_of_a_create_deletes_the_record(journal, crm, scope) -> None:
    change = await journaled_write(journal, crm, scope, "create_contact", None,
                                   {"first_name": "Nina", "last_name": "Undo", "title": "Buyer"})  # fmt: skip
    assert change.record_id.startswith("con_") and change.before is None
    assert (await contact(crm, change.record_id))["last_name"] == "Undo"

    result = await undo_change(journal.store, crm, scope, change.id)

    assert result.done == "deleted" and result.record_id == change.record_id
    assert result.text == (
        f"Undid {change.id}: deleted contact {change.record_id} (Nina Undo), which the change created."
    )
    with pytest.raises(CrmError) as missing:
        await contact(crm, change.record_id)
    assert missing.value.status == 404


async def test_undo_of_a_delete_recreates_the_record_under_a_new_id(journal, crm, scope) -> None:
    change = await journaled_write(journal, crm, scope, "delete_contact", {"id": "con_0001"})
    assert change.before is not None and change.before["name"] == "Jane Doe" and change.after is None

    result = await undo_change(journal.store, crm, scope, change.id)

    assert result.done == "re-created" and result.record_id != "con_0001"
    again = await contact(crm, result.record_id)
    assert (again["name"], again["title"], again["company_id"]) == ("Jane Doe", "VP of Operations", "com_001")
    assert again["emails"][0]["email"] == "jane.doe@acme.example"
    assert again["phone_numbers"][0]["number"] == "+1 415 555 0101"
    assert result.text == (
        f"Undid {change.id}: re-created the deleted contact Jane Doe as {result.record_id} (the old id con_0001 "
        f"cannot be reused). Records that pointed to con_0001 are not relinked to {result.record_id}."
    )


async def test_a_field_changed_since_refuses_the_undo_unless_forced(journal, crm, scope) -> None:
    change = await journaled_write(journal, crm, scope, "update_contact", {"id": "con_0001"}, {"title": "COO"})
    await crm.call(operation("update_contact"), path_params={"id": "con_0001"}, body={"title": "CEO"})

    with pytest.raises(UndoConflict) as refused:
        await undo_change(journal.store, crm, scope, change.id)

    assert [(c.field, c.written, c.current) for c in refused.value.conflicts] == [("title", "COO", "CEO")]
    assert str(refused.value) == (
        f"Not undone: contact con_0001 was changed since {change.id} (1 field no longer hold what the change "
        "wrote):\n  title: the change wrote COO, now CEO\nUndoing would overwrite those later edits. To undo "
        "anyway, call undo_change with force: true."
    )
    assert (await contact(crm, "con_0001"))["title"] == "CEO"  # untouched
    stored = await journal.store.get(scope, change.id)
    assert stored is not None and stored.undo_state is None  # still undoable

    forced = await undo_change(journal.store, crm, scope, change.id, force=True)
    assert forced.restored == {"title": "VP of Operations"}
    assert (await contact(crm, "con_0001"))["title"] == "VP of Operations"


async def test_a_failed_upstream_call_gives_the_undo_back(
    journal, crm, scope, sandbox_server: SandboxServer, consumer: str
) -> None:
    change = await journaled_write(journal, crm, scope, "update_contact", {"id": "con_0001"}, {"title": "COO"})
    sandbox_server.faults.fail(400, methods=["PATCH"], path="/crm/contacts/con_0001")
    try:
        with pytest.raises(CrmError):
            await undo_change(journal.store, crm, scope, change.id)
    finally:
        sandbox_server.faults.clear()
    stored = await journal.store.get(scope, change.id)
    assert stored is not None and stored.undo_state is None
    assert (await contact(crm, "con_0001"))["title"] == "COO"
    result = await undo_change(journal.store, crm, scope, change.id)
    assert result.restored == {"title": "VP of Operations"}


async def test_undo_last_undoes_newest_first(journal, crm, scope) -> None:
    first = await journaled_write(journal, crm, scope, "update_contact", {"id": "con_0001"}, {"title": "COO"})
    second = await journaled_write(journal, crm, scope, "update_contact", {"id": "con_0001"}, {"title": "CEO"})
    results = await undo_last(journal.store, crm, scope, 2)
    assert [r.change.id for r in results] == [second.id, first.id]
    assert (await contact(crm, "con_0001"))["title"] == "VP of Operations"
    assert await journal.store.recent(scope, undone=False) == []


async def test_unknown_or_other_consumers_changes_cannot_be_undone(journal, crm, scope) -> None:
    change = await journaled_write(journal, crm, scope, "update_contact", {"id": "con_0001"}, {"title": "COO"})
    stranger = Scope(scope.tenant, "someone-else")
    with pytest.raises(UndoError, match=f"No change {change.id} in this consumer's journal"):
        await undo_change(journal.store, crm, stranger, change.id)
    with pytest.raises(UndoError, match=r"No change chg_0000 in this consumer's journal \(it keeps changes 7 days\)"):
        await undo_change(journal.store, crm, scope, "chg_0000")


async def test_a_change_journaled_through_one_replica_is_undone_through_another(make_store, crm, scope) -> None:
    async with make_store() as one, make_store() as two:
        change = await journaled_write(WriteJournal(one), crm, scope, "update_contact", {"id": "con_0001"},
                                       {"title": "COO"})  # fmt: skip
        result = await undo_change(two, crm, scope, change.id)
        assert result.restored == {"title": "VP of Operations"}
        assert (await contact(crm, "con_0001"))["title"] == "VP of Operations"
        with pytest.raises(UndoError, match="already undone"):
            await undo_change(one, crm, scope, change.id)


async def test_two_replicas_racing_to_undo_one_change_exactly_one_wins(
    make_store, crm, scope, sandbox_server: SandboxServer, consumer: str
) -> None:
    async with make_store() as one, make_store() as two:
        change = await journaled_write(WriteJournal(one), crm, scope, "delete_contact", {"id": "con_0001"})
        outcomes: list[UndoResult | UndoError] = []

        async def undo(store: JournalStore) -> None:
            try:
                outcomes.append(await undo_change(store, crm, scope, change.id))
            except UndoError as exc:
                outcomes.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(undo, one)
            tg.start_soon(undo, two)

        wins = [o for o in outcomes if isinstance(o, UndoResult)]
        losses = [o for o in outcomes if isinstance(o, UndoError)]
        assert len(wins) == 1 and len(losses) == 1
        assert "undone" in str(losses[0])
        # exactly one re-create reached the CRM: one Jane Doe, not two
        assert sandbox_server.faults.count(method="POST", path="/crm/contacts", consumer=consumer) == 1
        listed = await crm.call(operation("list_contacts"), query={"filter": {"email": "jane.doe@acme.example"}})
        assert [r["id"] for r in listed.body["data"]] == [wins[0].record_id]


async def test_a_write_whose_state_before_could_not_be_read_is_journaled_but_not_undoable(
    journal, crm, scope, sandbox_server: SandboxServer
) -> None:
    sandbox_server.faults.fail(403, methods=["GET"], path="/crm/contacts/con_0001")
    try:
        change = await journaled_write(journal, crm, scope, "update_contact", {"id": "con_0001"}, {"title": "COO"})
    finally:
        sandbox_server.faults.clear()
    assert change.before is None and change.written == {"title": "COO"}
    with pytest.raises(UndoError, match=f"the state of contact con_0001 before {change.id} could not be read"):
        await undo_change(journal.store, crm, scope, change.id)
    assert (await contact(crm, "con_0001"))["title"] == "COO"


async def test_custom_object_changes_keep_their_schema_id_through_undo(journal, crm, scope) -> None:
    path = {"object_id": "cos_projects", "id": "cob_001"}
    before = (await crm.call(operation("get_custom_object"), path_params=path)).body["data"]
    update = await journaled_write(journal, crm, scope, "update_custom_object", path, {"name": "Renamed project"})
    create = await journaled_write(journal, crm, scope, "create_custom_object", {"object_id": "cos_projects"},
                                   {"name": "Scratch project", "fields": [{"name": "company_id", "value": "com_001"},
                                                                           {"name": "status", "value": "planned"}]})
    assert create.path_params == {"object_id": "cos_projects", "id": create.record_id}

    await undo_change(journal.store, crm, scope, update.id)
    await undo_change(journal.store, crm, scope, create.id)

    after = (await crm.call(operation("get_custom_object"), path_params=path)).body["data"]
    assert after["name"] == before["name"] != "Renamed project"
    with pytest.raises(CrmError) as gone:
        await crm.call(operation("get_custom_object"), path_params={**path, "id": create.record_id})
    assert gone.value.status == 404


async def test_pass_through_is_sent_but_neither_compared_nor_restored(journal, crm, scope) -> None:
    change = await journaled_write(journal, crm, scope, "update_contact", {"id": "con_0001"},
                                   {"title": "COO", "pass_through": [{"service_id": "x", "extend_object": {}}]})
    result = await undo_change(journal.store, crm, scope, change.id)
    assert result.restored == {"title": "VP of Operations"}
