"""The write journal as the call pipeline uses it: `WriteJournal.before_write` / `after_write`
around each create, update and delete (see `crm_mcp.journal` for the whole protocol)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crm_mcp.client import ApiResponse
from crm_mcp.errors import CrmError, UncertainWriteError
from crm_mcp.journal.duplicates import DuplicateCheck, find_duplicates, supports_duplicate_check
from crm_mcp.journal.records import SECRET_FIELDS, CrmCaller, as_json, created_id, label, read_record
from crm_mcp.journal.store import Change, JournalStore, RetryHit, Scope, new_change_id
from crm_mcp.journal.undo import UndoResult, undo_change, undo_last
from crm_mcp.operations import Operation, resource
from crm_mcp.redaction import redact, redact_obj

log = logging.getLogger("crm_mcp.journal")

DEFAULT_RETRY_WINDOW = 600.0  # seconds: an identical create within this answers with the first record


def retry_key(scope: Scope, op: Operation, path_params: Mapping[str, str], body: Any) -> str:
    """The retry window's key: tenant, consumer, tool and the canonical JSON of the arguments."""
    canonical = json.dumps(
        [scope.tenant, scope.consumer, op.tool_name, dict(path_params), body],
        sort_keys=True, ensure_ascii=False, separators=(",", ":"),
    )  # fmt: skip
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class PendingWrite:
    """Go ahead: send the write, then call `after_write` (or `write_failed` if it raised)."""

    op: Operation
    scope: Scope
    path_params: dict[str, str]
    body: dict[str, Any]
    before: dict[str, Any] | None  # the record before an update or delete (None for a create)
    retry_key: str | None = None


@dataclass(frozen=True, slots=True)
class Replay:
    """The same create ran moments ago: answer with its record instead of creating a second."""

    hit: RetryHit
    op: Operation

    @property
    def text(self) -> str:
        singular = resource(self.op.resource).singular
        if self.hit.state == "uncertain":
            return (
                f"Not sent: an identical {self.op.tool_name} call moments ago got no answer, so it may or may not "
                f"have created the {singular}. Check with list_{self.op.resource} first; to create it anyway, "
                "call again with allow_duplicate: true."
            )
        if self.hit.record_id is None:
            return (
                f"An identical {self.op.tool_name} call is running right now, so this one was not sent "
                f"(it would create the same {singular} twice). Check with list_{self.op.resource} in a moment, "
                "or call again with allow_duplicate: true to create a second one."
            )
        ago = max(0, round(time.time() - self.hit.created_at))
        return (
            f"Not created again: the same {self.op.tool_name} call created {singular} {self.hit.record_id} "
            f"{ago} s ago (change {self.hit.change_id}). This answer is that record. To create a second "
            "one anyway, call again with allow_duplicate: true."
        )


@dataclass(frozen=True, slots=True)
class PossibleDuplicates:
    """Records like the one to create exist: answer with them; `allow_duplicate: true` goes on."""

    check: DuplicateCheck

    @property
    def text(self) -> str:
        return self.check.text


BeforeWrite = PendingWrite | Replay | PossibleDuplicates


@dataclass
class WriteJournal:
    """One per server: the store plus the rules of journaling (see the package docstring)."""

    store: JournalStore
    retry_window: float = DEFAULT_RETRY_WINDOW
    secrets: tuple[str, ...] = field(default=(), repr=False)  # values never to journal (API keys)

    async def before_write(
        self,
        client: CrmCaller,
        op: Operation,
        *,
        scope: Scope,
        path_params: Mapping[str, str] | None = None,
        body: Any = None,
        allow_duplicate: bool = False,
        call_options: Mapping[str, Any] | None = None,
    ) -> BeforeWrite:
        """Prepare a write: an update or delete reads the record (one GET); a create checks the
        retry window and then looks for likely duplicates (skipped with `allow_duplicate`)."""
        if op.action not in ("create", "update", "delete"):
            raise ValueError(f"{op.tool_name} is not a write")
        params = dict(path_params or {})
        sent = as_json(body) if body is not None else {}
        options = call_options or {}
        if op.action != "create":
            try:
                before = await read_record(client, op.resource, params, options)
            except CrmError as exc:  # the write goes on; its change just cannot be undone
                log.warning("journal: could not read %s before %s (%s)", params.get("id"), op.tool_name, exc.kind)
                before = None
            return PendingWrite(op, scope, params, sent, before)
        if allow_duplicate:
            return PendingWrite(op, scope, params, sent, None)
        key = retry_key(scope, op, params, sent)
        hit = await self.store.claim_retry(key, window=self.retry_window)
        if hit is not None:
            return Replay(hit, op)
        if supports_duplicate_check(op.resource):
            try:
                check = await find_duplicates(client, op.resource, sent, call_options=options)
            except BaseException:
                await self.store.release_retry(key)
                raise
            if check.matches:
                await self.store.release_retry(key)
                return PossibleDuplicates(check)
        return PendingWrite(op, scope, params, sent, None, key)

    async def after_write(self, pending: PendingWrite, response: ApiResponse) -> Change:
        """Journal a write that succeeded; the change's id goes into the write's answer."""
        op = pending.op
        record_id = pending.path_params.get("id") or created_id(response) or ""
        written, omitted = self._clean(pending.body)
        before = None if pending.before is None else self._clean(pending.before)[0]
        after = None if op.action == "delete" else {**(before or {}), **written}
        path_params = dict(pending.path_params)
        if op.action == "create":
            path_params["id"] = record_id
        change = Change(
            id=new_change_id(),
            scope=pending.scope,
            tool=op.tool_name,
            resource=op.resource,
            action=op.action,  # type: ignore[arg-type]  # a write's action: create, update or delete
            record_id=record_id,
            path_params=path_params,
            before=before,
            written=written,
            after=after,
            created_at=time.time(),
            omitted=omitted,
        )
        await self.store.record(change, retry_key=pending.retry_key, retry_window=self.retry_window)
        return change

    # -- the journal's own tools: undo_change, list_changes (and dry_run previews)

    async def undo(
        self, client: CrmCaller, scope: Scope, change_id: str, *, force: bool = False,
        call_options: Mapping[str, Any] | None = None,
    ) -> UndoResult:  # fmt: skip
        return await undo_change(self.store, client, scope, change_id, force=force, call_options=call_options)

    async def undo_last(
        self, client: CrmCaller, scope: Scope, count: int, *, force: bool = False,
        call_options: Mapping[str, Any] | None = None,
    ) -> list[UndoResult]:  # fmt: skip
        return await undo_last(self.store, client, scope, count, force=force, call_options=call_options)

    async def list_changes(self, scope: Scope, *, limit: int = 20) -> list[Change]:
        return await self.store.recent(scope, limit=limit)

    async def write_failed(self, pending: PendingWrite, error: BaseException | None = None) -> None:
        """The write raised `error`: free the retry window, so that trying again creates the
        record, unless the create may have happened (`UncertainWriteError`): then the window
        holds, and an identical call is told to check first."""
        if pending.retry_key is None:
            return
        if isinstance(error, UncertainWriteError):
            await self.store.mark_retry_uncertain(pending.retry_key, window=self.retry_window)
        else:
            await self.store.release_retry(pending.retry_key)

    def _clean(self, record: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
        """`record` without secret fields (named in the second value) and with known secrets redacted."""
        omitted = tuple(sorted(k for k in record if k in SECRET_FIELDS))
        kept = {k: v for k, v in record.items() if k not in SECRET_FIELDS}
        return _redacted(kept, self.secrets), omitted


def _redacted(record: dict[str, Any], secrets: tuple[str, ...]) -> dict[str, Any]:
    """`redact` over the record's JSON text in one pass (a write's hot path), or value by value
    in the rare case the redacted text is no longer JSON."""
    text = json.dumps(record, ensure_ascii=False)
    cleaned = redact(text, secrets)
    if cleaned == text:
        return record
    try:
        value = json.loads(cleaned)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else dict(redact_obj(record, secrets))


def change_note(change: Change) -> str:
    """The line a write's answer ends with, naming its change id and the way back."""
    return f"Change {change.id} (undo_change with change_id {change.id!r} takes it back)."


def describe_changes(changes: list[Change]) -> str:
    """`list_changes` as text: one line per change, newest first."""
    if not changes:
        return "No changes in this consumer's journal."
    lines = []
    for change in changes:
        when = datetime.fromtimestamp(change.created_at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        fields = ", ".join(change.written)[:80] if change.action == "update" else ""
        state = {"done": " [undone]", "claimed": " [being undone]"}.get(change.undo_state or "", "")
        what = f"{change.action} {resource(change.resource).singular} {change.record_id}"
        name = label(change.before) or label(change.written)
        lines.append(
            f"{change.id} {when} {what}" + (f" ({name})" if name else "") + (f": {fields}" if fields else "") + state
        )
    return "\n".join(lines)
