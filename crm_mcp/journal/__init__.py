"""The write journal: previews, undo, no duplicates, and what changed (issue 13).

Every create, update and delete the server makes is journaled with the record's state before it,
scoped to the tenant (a fingerprint of app id + API key, never the key) and the consumer, without
secrets. Storage is SQLite by default (`journal.db` in the user data directory, mode 0600) or
PostgreSQL when `CRM_MCP_JOURNAL_DATABASE_URL` is set, so replicas share the journal and the
retry window. Entries live `CRM_MCP_JOURNAL_RETENTION_DAYS` (default 7) days; `crm-mcp journal
purge [--all]` deletes them sooner.

How the call pipeline uses it (one `WriteJournal` per server, opened with the server):

    journal = await open_journal(settings)                     # at start-up; journal.store.aclose() at exit
    scope = scope_for(creds.app_id, creds.api_key, consumer)   # per call: the tenant's credentials

    # a create/update/delete tool, after validation and confirmation:
    if arguments.dry_run:
        preview = await preview_write(client, op, path_params=path, body=body, call_options=opts)
        return preview.text, preview.to_dict()                 # nothing is written (one GET at most)
    outcome = await journal.before_write(client, op, scope=scope, path_params=path, body=body,
                                         allow_duplicate=arguments.allow_duplicate, call_options=opts)
    if isinstance(outcome, Replay | PossibleDuplicates):
        return outcome.text                                    # nothing was sent; not an error
    try:
        response = await client.call(op, path_params=path, body=body, **opts)
    except BaseException as exc:
        await journal.write_failed(outcome, exc)               # frees the retry window (or holds it
        raise                                                  # when the write is uncertain)
    change = await journal.after_write(outcome, response)      # the answer names change.id:
    note = change_note(change)                                 # "Change chg_… (undo_change …)"

    # the journal's own tools:
    await journal.undo(client, scope, change_id, force=force, call_options=opts)   # -> UndoResult (.text)
    await journal.undo_last(client, scope, count, force=force, call_options=opts)  # newest first
    describe_changes(await journal.list_changes(scope, limit=20))                  # list_changes
    await crm_changes(client, since, resources, limit=10, cursor=cursor, call_options=opts)  # .text, .to_dict()

`opts` are the keyword arguments the pipeline passes to `client.call` for the tenant
(`credentials=`, `consumer_id=`, `service_id=`); `client` is an `ApideckClient` or anything with
its `call(op, **kwargs)`. Errors: `UndoError` (and its `UndoConflict`, whose message shows the
fields changed since and says `force: true`) and `ChangesArgumentError` are the caller's mistakes,
worded for the agent; `CrmError` from the CRM passes through unchanged.

Costs: `before_write` makes one GET for an update or delete (the state before) and, for a create,
one list call per duplicate criterion value; the journal's own time is one or two small
transactions per write (tools/bench_journal.py). A preview makes no upstream write.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crm_mcp.lazy_import import load_attribute

if TYPE_CHECKING:
    from crm_mcp.config import Settings
    from crm_mcp.journal.changes import ChangesArgumentError, ChangesDigest, crm_changes
    from crm_mcp.journal.duplicates import DuplicateCheck, find_duplicates
    from crm_mcp.journal.factory import scope_for, store_from_settings, tenant_fingerprint
    from crm_mcp.journal.preview import Preview, preview_write
    from crm_mcp.journal.store import Change, JournalStore, PurgeCounts, Scope
    from crm_mcp.journal.undo import UndoConflict, UndoError, UndoResult
    from crm_mcp.journal.writes import (
        BeforeWrite,
        PendingWrite,
        PossibleDuplicates,
        Replay,
        WriteJournal,
        change_note,
        describe_changes,
    )

# What this package offers, by the module that defines it. Imported on first use (PEP 562), so
# that a server which only reads, and the tool registry at start-up, never load the journal.
_FROM = {
    "changes": ("ChangesArgumentError", "ChangesDigest", "crm_changes"),
    "duplicates": ("DuplicateCheck", "find_duplicates"),
    "factory": ("scope_for", "store_from_settings", "tenant_fingerprint"),
    "preview": ("Preview", "preview_write"),
    "store": ("Change", "JournalStore", "PurgeCounts", "Scope"),
    "undo": ("UndoConflict", "UndoError", "UndoResult"),
    "writes": ("BeforeWrite", "PendingWrite", "PossibleDuplicates", "Replay", "WriteJournal", "change_note",
               "describe_changes"),
}
_MODULE_OF = {name: module for module, names in _FROM.items() for name in names}


def __getattr__(name: str) -> Any:
    return load_attribute(__name__, name, _MODULE_OF, __name__)


__all__ = [
    "BeforeWrite",
    "Change",
    "ChangesArgumentError",
    "ChangesDigest",
    "DuplicateCheck",
    "JournalStore",
    "PendingWrite",
    "PossibleDuplicates",
    "Preview",
    "PurgeCounts",
    "Replay",
    "Scope",
    "UndoConflict",
    "UndoError",
    "UndoResult",
    "WriteJournal",
    "change_note",
    "crm_changes",
    "describe_changes",
    "find_duplicates",
    "open_journal",
    "preview_write",
    "scope_for",
    "store_from_settings",
    "tenant_fingerprint",
]


async def open_journal(settings: Settings) -> WriteJournal:
    """The server's journal, opened (schema created or migrated); close it with `journal.store.aclose()`."""
    from crm_mcp.journal.factory import store_from_settings
    from crm_mcp.journal.writes import WriteJournal

    store = store_from_settings(settings)
    await store.open()
    return WriteJournal(store, secrets=settings.secrets)
