"""Undoing a journaled change against the CRM.

- an update is patched back: only the fields the change wrote, to their values before it;
- a create is deleted;
- a delete is re-created with the old record's writable fields; the record gets a new id, and
  records that pointed to the old id are not relinked (the answer says both).

Before touching anything the current record is read (one GET). When a field the change wrote no
longer holds what the change wrote (someone changed it since), the undo is refused with the
difference, unless `force`. Exactly one undo of a change can run, across replicas: the change is
claimed in the journal first (a conditional update), and the claim is given back if the upstream
call fails, so the change can be undone again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack

from crm_mcp.journal.records import (
    NOT_RECORD_FIELDS,
    CrmCaller,
    created_id,
    label,
    operation_for,
    read_record,
    recreatable_fields,
    same_value,
)
from crm_mcp.journal.store import STALE_CLAIM_SECONDS, Change, JournalStore, Scope
from crm_mcp.operations import missing_required, resource
from crm_mcp.render.values import quote


class UndoOptions(TypedDict, total=False):
    """How to undo (the keyword arguments of `undo_change`, which `undo_last` passes on)."""

    force: bool  # undo even over fields changed since (default False)
    call_options: Mapping[str, Any] | None  # keyword arguments for each `client.call` (the tenant's)


class UndoError(Exception):
    """The change cannot be undone; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class FieldConflict:
    field: str
    written: Any  # what the change wrote
    current: Any  # what the record holds now


class UndoConflict(UndoError):
    """Fields the change wrote were changed by someone else since; `force` undoes anyway."""

    def __init__(self, change: Change, conflicts: list[FieldConflict]) -> None:
        self.change = change
        self.conflicts = conflicts
        lines = [
            f"Not undone: {_what(change)} was changed since {change.id} "
            f"({len(conflicts)} field{'s' if len(conflicts) != 1 else ''} no longer hold what the change wrote):"
        ]
        lines += [f"  {c.field}: the change wrote {_show(c.written)}, now {_show(c.current)}" for c in conflicts]
        lines.append("Undoing would overwrite those later edits. To undo anyway, call undo_change with force: true.")
        super().__init__("\n".join(lines))


@dataclass(frozen=True, slots=True)
class UndoResult:
    change: Change
    done: str  # "patched back", "deleted", "re-created"
    record_id: str  # the record the undo left: the same id, or the new id of a re-created record
    restored: dict[str, Any] = field(default_factory=dict)  # field -> value put back (update, re-create)
    text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"change_id": self.change.id, "undo": self.done, "record_id": self.record_id, "restored": self.restored}


def _what(change: Change) -> str:
    return f"{resource(change.resource).singular} {change.record_id}"


def _show(value: Any) -> str:
    if value is None:
        return "(empty)"
    return quote(value, 80) if isinstance(value, str) else json.dumps(value, ensure_ascii=False)[:80]


def conflicts_of(change: Change, current: Mapping[str, Any]) -> list[FieldConflict]:
    """The fields the change wrote that now hold something else."""
    return [
        FieldConflict(name, written, current.get(name))
        for name, written in change.written.items()
        if name not in NOT_RECORD_FIELDS and not same_value(written, current.get(name))
    ]


async def undo_change(
    store: JournalStore,
    client: CrmCaller,
    scope: Scope,
    change_id: str,
    *,
    force: bool = False,
    call_options: Mapping[str, Any] | None = None,
) -> UndoResult:
    """Undo one change of `scope` (see the module docstring); raises UndoError / UndoConflict."""
    options = dict(call_options or {})
    change = await store.get(scope, change_id)
    if change is None:
        raise UndoError(
            f"No change {change_id} in this consumer's journal (it keeps changes "
            f"{store.retention.days} days). list_changes shows the changes that can be undone."
        )
    if change.undo_state == "done":
        raise UndoError(f"{change.id} was already undone.")
    if change.undo_state == "claimed" and (change.undone_at or 0) > time.time() - STALE_CLAIM_SECONDS:
        raise UndoError(f"{change.id} is being undone by another request right now.")
    if change.action != "create" and change.before is None:
        raise UndoError(
            f"Not undone: the state of {_what(change)} before {change.id} could not be read when it was made, "
            "so there is nothing to restore from."
        )
    current = await read_record(client, change.resource, change.path_params, options)
    if change.action in ("update", "create"):
        if current is None:
            raise UndoError(f"Not undone: {_what(change)} no longer exists, so there is nothing to put back.")
        conflicts = conflicts_of(change, current)
        if conflicts and not force:
            raise UndoConflict(change, conflicts)
    elif current is not None:
        raise UndoError(f"Not undone: {_what(change)} exists again, so it is not re-created a second time.")

    token = await store.claim_undo(scope, change.id)
    if token is None:
        raise UndoError(f"{change.id} was undone (or is being undone) by another request.")
    try:
        result = await _apply(client, change, current, options)
    except BaseException:
        await store.release_undo(change.id, token)
        raise
    await store.finish_undo(change.id, token, result.to_dict())
    if change.action == "create":
        await store.forget_retry(change.id)
    return result


async def _apply(
    client: CrmCaller, change: Change, current: Mapping[str, Any] | None, options: dict[str, Any]
) -> UndoResult:
    what = _what(change)
    if change.action == "update":
        before = change.before or {}
        restored = {name: before.get(name) for name in change.written if name not in NOT_RECORD_FIELDS}
        op = operation_for(change.resource, "update")
        required = {k: (current or {}).get(k) for k in missing_required(op, restored) if k in (current or {})}
        await client.call(op, path_params=change.path_params, body={**required, **restored}, **options)
        listed = ", ".join(f"{k} back to {_show(v)}" for k, v in restored.items())
        text = f"Undid {change.id}: {what} patched back ({listed})."
        if change.omitted:
            text += f" Not restored (never journaled): {', '.join(change.omitted)}."
        return UndoResult(change, "patched back", change.record_id, restored, text)
    if change.action == "create":
        op = operation_for(change.resource, "delete")
        await client.call(op, path_params=change.path_params, **options)
        name = label(current)
        text = f"Undid {change.id}: deleted {what}" + (f" ({name})" if name else "") + ", which the change created."
        return UndoResult(change, "deleted", change.record_id, {}, text)
    body = recreatable_fields(change.resource, change.before or {})
    op = operation_for(change.resource, "create")
    scope_params = {name: change.path_params[name] for name in op.path_params}
    response = await client.call(op, path_params=scope_params or None, body=body, **options)
    new_id = created_id(response) or "(no id returned)"
    singular = resource(change.resource).singular
    name = label(change.before)
    text = (
        f"Undid {change.id}: re-created the deleted {singular}" + (f" {name}" if name else "")
        + f" as {new_id} (the old id {change.record_id} cannot be reused). Records that pointed to "
        f"{change.record_id} are not relinked to {new_id}."
    )  # fmt: skip
    return UndoResult(change, "re-created", new_id, body, text)


async def undo_last(
    store: JournalStore, client: CrmCaller, scope: Scope, count: int, **options: Unpack[UndoOptions]
) -> list[UndoResult]:
    """Undo this scope's last `count` changes not yet undone, newest first; stops at the first
    that cannot be undone (raising its error, after the ones before it were undone)."""
    if count < 1:
        raise UndoError("count must be at least 1")
    results: list[UndoResult] = []
    for change in await store.recent(scope, limit=count, undone=False):
        try:
            results.append(await undo_change(store, client, scope, change.id, **options))
        except UndoError as exc:
            if not results:
                raise
            done = "\n".join(r.text for r in results)
            raise UndoError(f"{done}\nStopped at {change.id}: {exc}") from exc
    return results
