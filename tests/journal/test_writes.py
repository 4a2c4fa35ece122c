"""Journaling writes against the sandbox CRM: what a change holds (and never holds), the line a
write's answer ends with, and `list_changes`' text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from crm_mcp.journal.sqlite import SqliteJournal
from crm_mcp.journal.writes import WriteJournal, change_note, describe_changes
from crm_mcp.operations import operation

from .support import RETENTION, journaled_write

pytestmark = pytest.mark.anyio


async def test_a_change_never_holds_a_password_or_the_api_key(crm, scope, tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    async with SqliteJournal(path, retention=RETENTION) as store:
        journal = WriteJournal(store, secrets=("test-secret-key",))
        user = await journaled_write(journal, crm, scope, "update_user", {"id": "usr_01"},
                                     {"password": "Tr0ub4dor&3", "title": "Head of Sales"})  # fmt: skip
        note = await journaled_write(journal, crm, scope, "update_contact", {"id": "con_0001"},
                                     {"description": "pasted by mistake: test-secret-key"})  # fmt: skip
        assert user.written == {"title": "Head of Sales"} and user.omitted == ("password",)
        assert note.written == {"description": "pasted by mistake: [REDACTED]"}
        result = await journal.undo(crm, scope, user.id)
        assert result.text.endswith("Not restored (never journaled): password.")
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"Tr0ub4dor" not in raw and b"test-secret-key" not in raw
    assert b"Head of Sales" in raw  # the file does hold the journaled values


async def test_list_changes_names_each_change_newest_first(journal: WriteJournal, crm, scope) -> None:
    update = await journaled_write(journal, crm, scope, "update_contact", {"id": "con_0001"}, {"title": "COO"})
    create = await journaled_write(journal, crm, scope, "create_lead", None, {"name": "Ada Lovelace"})
    await journal.undo(crm, scope, update.id)

    text = describe_changes(await journal.list_changes(scope))

    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ"
    first, second = text.splitlines()
    assert re.fullmatch(rf"{create.id} {stamp} create lead {create.record_id} \(Ada Lovelace\)", first)
    assert re.fullmatch(rf"{update.id} {stamp} update contact con_0001 \(Jane Doe\): title \[undone\]", second)
    assert change_note(update) == f"Change {update.id} (undo_change with change_id '{update.id}' takes it back)."
    assert describe_changes([]) == "No changes in this consumer's journal."


async def test_a_create_is_journaled_with_its_new_id_and_no_state_before(journal: WriteJournal, crm, scope) -> None:
    change = await journaled_write(journal, crm, scope, "create_company", None, {"name": "Journal Works Ltd"})
    listed = await crm.call(operation("get_company"), path_params={"id": change.record_id})
    assert listed.body["data"]["name"] == "Journal Works Ltd"
    assert (change.action, change.before, change.path_params) == ("create", None, {"id": change.record_id})
    assert change.after == {"name": "Journal Works Ltd"}
