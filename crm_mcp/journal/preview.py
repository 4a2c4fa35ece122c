"""Preview of a write (`dry_run: true`): exactly what would be sent and, for an update or a
delete, each field as it is now and as it would be after. Nothing is written: a create is not
read at all, an update or a delete makes one GET of the record."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crm_mcp.journal.records import CrmCaller, as_json, label, read_record, same_value
from crm_mcp.operations import Operation, resource
from crm_mcp.querystring import expand_path
from crm_mcp.render.values import quote

_MAX_SHOWN = 120  # characters of one value in the text


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    current: Any  # None for a create (no record yet) or a field the record does not have
    after: Any  # None for a delete


@dataclass(frozen=True, slots=True)
class Preview:
    method: str
    path: str
    body: dict[str, Any] | None  # exactly the JSON that would be sent
    action: str
    resource: str
    record_id: str | None
    record_label: str
    exists: bool  # False: an update or delete of a record that does not exist (it would fail)
    fields: tuple[FieldChange, ...]

    @property
    def text(self) -> str:
        what = resource(self.resource).singular + (f" {self.record_id}" if self.record_id else "")
        lines = [f"Preview only, nothing was sent: {self.method} {self.path}"]
        if not self.exists:
            lines.append(f"The {what} does not exist, so this {self.action} would fail (not found).")
            return "\n".join(lines)
        if self.record_label:
            what += f" ({self.record_label})"
        article = "an" if what[0] in "aeiou" else "a"
        head = {"create": f"Would create {article}", "update": "Would change", "delete": "Would delete"}[self.action]
        lines.append(f"{head} {what}:")
        for change in self.fields:
            if self.action == "create":
                lines.append(f"  {change.field}: {_show(change.after)}")
            elif self.action == "delete":
                lines.append(f"  {change.field}: {_show(change.current)}")
            elif same_value(change.after, change.current):
                lines.append(f"  {change.field}: {_show(change.current)} (unchanged)")
            else:
                lines.append(f"  {change.field}: {_show(change.current)} -> {_show(change.after)}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": True,
            "request": {"method": self.method, "path": self.path, "body": self.body},
            "record_id": self.record_id,
            "exists": self.exists,
            "fields": [{"field": f.field, "current": f.current, "after": f.after} for f in self.fields],
        }


def _show(value: Any) -> str:
    if value is None:
        return "(empty)"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return quote(text, _MAX_SHOWN) if isinstance(value, str) else text[:_MAX_SHOWN]


async def preview_write(
    client: CrmCaller,
    op: Operation,
    *,
    path_params: Mapping[str, str] | None = None,
    body: Any = None,
    call_options: Mapping[str, Any] | None = None,
) -> Preview:
    """What `client.call(op, path_params=..., body=...)` would do, without doing it."""
    if op.action not in ("create", "update", "delete"):
        raise ValueError(f"{op.tool_name} is not a write")
    params = dict(path_params or {})
    sent = as_json(body) if body is not None else None
    path = expand_path(op.path, params)
    record_id = params.get("id")
    if op.action == "create":
        fields = tuple(FieldChange(k, None, v) for k, v in (sent or {}).items())
        return Preview(op.method, path, sent, "create", op.resource, None, "", True, fields)
    current = await read_record(client, op.resource, params, call_options or {})
    if current is None:
        return Preview(op.method, path, sent, op.action, op.resource, record_id, "", False, ())
    if op.action == "update":
        fields = tuple(FieldChange(k, current.get(k), v) for k, v in (sent or {}).items())
    else:
        fields = tuple(FieldChange(k, v, None) for k, v in current.items() if v not in (None, "", [], {}))
    return Preview(op.method, path, sent, op.action, op.resource, record_id, label(current), True, fields)
