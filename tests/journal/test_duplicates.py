"""No duplicates, against the sandbox CRM over HTTP with the journal on SQLite and PostgreSQL:
likely duplicates found through the contract's filters (and the criteria that could not be
checked), and the retry window answering an identical create with the first record."""

from __future__ import annotations

import anyio
import pytest

from crm_mcp.errors import UncertainWriteError
from crm_mcp.journal.duplicates import find_duplicates
from crm_mcp.journal.writes import PendingWrite, PossibleDuplicates, Replay, WriteJournal
from crm_mcp.operations import operation
from crm_mcp.sandbox.server import SandboxServer

pytestmark = pytest.mark.anyio


async def test_a_contact_with_janes_email_is_a_possible_duplicate(journal: WriteJournal, crm, scope) -> None:
    body = {"first_name": "J.", "last_name": "Doe", "emails": [{"email": "JANE.DOE@acme.example", "type": "work"}]}
    outcome = await journal.before_write(crm, operation("create_contact"), scope=scope, body=body)
    assert isinstance(outcome, PossibleDuplicates)
    assert outcome.text == (
        "Possible duplicate of con_0001 Jane Doe, jane.doe@acme.example (same email).\n"
        "Nothing was created. If this is a different contact, call create_contact again with allow_duplicate: true.\n"
        "Checked: email."
    )
    # the refusal freed the retry window: going on with allow_duplicate is a normal write
    going_on = await journal.before_write(crm, operation("create_contact"), scope=scope, body=body,
                                          allow_duplicate=True)  # fmt: skip
    assert isinstance(going_on, PendingWrite)


async def test_phone_numbers_match_by_digits(crm) -> None:
    check = await find_duplicates(crm, "contacts", {"phone_numbers": [{"number": "(415) 555-0101"}]})
    assert [(m.record_id, m.criterion, m.value) for m in check.matches] == [("con_0001", "phone", "(415) 555-0101")]
    assert check.checked == ("phone",)


async def test_a_company_is_checked_by_name_and_the_missing_website_filter_is_said(crm) -> None:
    body = {"name": "acme  corporation", "websites": [{"url": "https://www.acme.example"}]}
    check = await find_duplicates(crm, "companies", body)
    assert [(m.record_id, m.label, m.criterion) for m in check.matches] == [
        ("com_001", "Acme Corporation, info@acme.example", "name")
    ]
    assert check.coverage == "Checked: name. Not checked: website domain (list_companies has no filter for it)."


async def test_a_lead_is_checked_by_email_and_name(crm) -> None:
    check = await find_duplicates(crm, "leads", {"name": "Tom Baker", "emails": [{"email": "nobody@nowhere.example"}]})
    assert [(m.record_id, m.criterion) for m in check.matches] == [("lea_001", "name")]
    assert check.checked == ("email", "name")


async def test_a_new_contact_has_no_duplicate_and_near_misses_do_not_count(crm) -> None:
    # "jane.doe@acme.example" contains "doe@acme.example": the filter may match it, the exact check must not
    check = await find_duplicates(crm, "contacts", {"emails": [{"email": "doe@acme.example"}]})
    assert check.matches == ()
    assert check.text == "No likely duplicate contact found.\nChecked: email."


async def test_the_same_create_retried_answers_with_the_first_record(
    journal: WriteJournal, crm, scope, sandbox_server: SandboxServer, consumer: str
) -> None:
    op = operation("create_lead")
    body = {"name": "Grace Hopper", "company_name": "Navy"}
    first = await journal.before_write(crm, op, scope=scope, body=body)
    assert isinstance(first, PendingWrite)
    change = await journal.after_write(first, await crm.call(op, body=body))

    retried = await journal.before_write(crm, op, scope=scope, body=dict(reversed(body.items())))  # same arguments
    assert isinstance(retried, Replay)
    assert (retried.hit.record_id, retried.hit.change_id) == (change.record_id, change.id)
    assert retried.text.startswith(f"Not created again: the same create_lead call created lead {change.record_id} ")
    assert retried.text.endswith(
        f"(change {change.id}). This answer is that record. To create a second one anyway, call again with "
        "allow_duplicate: true."
    )
    assert sandbox_server.faults.count(method="POST", path="/crm/leads", consumer=consumer) == 1

    other = await journal.before_write(crm, op, scope=scope, body={**body, "company_name": "US Navy"})
    assert not isinstance(other, Replay)  # different arguments: not a retry (a duplicate by name, though)
    assert isinstance(other, PossibleDuplicates) and other.check.matches[0].record_id == change.record_id


async def test_a_failed_create_does_not_hold_the_retry_window(journal: WriteJournal, crm, scope) -> None:
    op = operation("create_lead")
    body = {"name": "Alan Turing", "company_name": "Bletchley"}
    pending = await journal.before_write(crm, op, scope=scope, body=body)
    assert isinstance(pending, PendingWrite)
    await journal.write_failed(pending)  # the create raised
    again = await journal.before_write(crm, op, scope=scope, body=body)
    assert isinstance(again, PendingWrite)


async def test_replicas_share_the_retry_window_and_racing_identical_creates_send_one(
    make_store, crm, scope, sandbox_server: SandboxServer, consumer: str
) -> None:
    op = operation("create_lead")
    body = {"name": "Katherine Johnson", "company_name": "NASA"}
    async with make_store() as one, make_store() as two:
        first, second = WriteJournal(one), WriteJournal(two)
        outcomes = []

        async def prepare(journal: WriteJournal) -> None:
            outcomes.append((journal, await journal.before_write(crm, op, scope=scope, body=body)))

        async with anyio.create_task_group() as tg:
            tg.start_soon(prepare, first)
            tg.start_soon(prepare, second)

        going = [(j, o) for j, o in outcomes if isinstance(o, PendingWrite)]
        held = [o for _, o in outcomes if isinstance(o, Replay)]
        assert len(going) == 1 and len(held) == 1
        assert held[0].hit.record_id is None
        assert held[0].text.startswith("An identical create_lead call is running right now, so this one was not sent")
        journal, pending = going[0]
        change = await journal.after_write(pending, await crm.call(op, body=body))

        # the other replica, asked again, answers with the record the first one created
        other = second if journal is first else first
        replay = await other.before_write(crm, op, scope=scope, body=body)
        assert isinstance(replay, Replay) and replay.hit.record_id == change.record_id
    assert sandbox_server.faults.count(method="POST", path="/crm/leads", consumer=consumer) == 1


async def test_a_create_whose_answer_was_lost_holds_the_window_and_says_to_check(
    journal: WriteJournal, crm, scope, sandbox_server: SandboxServer, consumer: str
) -> None:
    op = operation("create_lead")
    body = {"name": "Hedy Lamarr", "company_name": "MGM"}
    pending = await journal.before_write(crm, op, scope=scope, body=body)
    assert isinstance(pending, PendingWrite)
    sandbox_server.faults.drop(after_apply=True, methods=["POST"], path="/crm/leads")
    try:
        with pytest.raises(UncertainWriteError) as lost:
            await crm.call(op, body=body)
    finally:
        sandbox_server.faults.clear()
    await journal.write_failed(pending, lost.value)

    retried = await journal.before_write(crm, op, scope=scope, body=body)

    assert isinstance(retried, Replay) and retried.hit.state == "uncertain"
    assert retried.text == (
        "Not sent: an identical create_lead call moments ago got no answer, so it may or may not have created "
        "the lead. Check with list_leads first; to create it anyway, call again with allow_duplicate: true."
    )
    assert sandbox_server.faults.count(method="POST", path="/crm/leads", consumer=consumer) == 1


async def test_after_a_create_is_undone_the_same_create_runs_again(journal: WriteJournal, crm, scope) -> None:
    op = operation("create_lead")
    body = {"name": "Mary Jackson", "company_name": "NACA"}
    pending = await journal.before_write(crm, op, scope=scope, body=body)
    assert isinstance(pending, PendingWrite)
    change = await journal.after_write(pending, await crm.call(op, body=body))
    await journal.undo(crm, scope, change.id)

    again = await journal.before_write(crm, op, scope=scope, body=body)

    assert isinstance(again, PendingWrite)  # not a replay of the deleted lead
