"""What a write does beyond storing the body, as a CRM would.

* opportunities: when the stage changes (or a new opportunity has one), `stage_last_changed_at`
  becomes the time of the write and `win_probability` the stage's own (its pipeline's stage
  record's `win_probability`, where the stage has one), unless the body sets them;
  `expected_revenue` (read-only) follows `monetary_amount` x `win_probability`.
* custom object schemas: their field definitions must be usable (see `custom_objects`).
* custom objects: their fields must satisfy their schema (see `custom_objects`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crm_mcp.sandbox import custom_objects
from crm_mcp.sandbox.query import DEFAULT_ORDER, Sort, as_number
from crm_mcp.sandbox.records import now_iso
from crm_mcp.sandbox.store import Store

if TYPE_CHECKING:
    from crm_mcp.sandbox.actions import Scope

__all__ = ["on_write"]

Record = dict[str, Any]
_MAX_PIPELINES = 500


def on_write(store: Store, scope: Scope, old: Record | None, new: Record, body: Record) -> Record:
    """`new` (the record a create or update is about to store, `old` the stored one or None)
    after the resource's rules; an ApiError when it breaks one."""
    if scope.resource == "opportunities":
        return _opportunity(store, scope.consumer, old, new, body)
    if scope.resource == "custom_object_schemas":
        custom_objects.check_schema(new)
    if scope.resource == "custom_objects":
        schema = store.get(scope.consumer, "custom_object_schemas", "", scope.object_id)
        if schema is not None:  # the action checked it exists; it may vanish between the two
            return custom_objects.check_object(schema, new, new=old is None)
    return new


def _stage(store: Store, consumer: str, record: Record) -> Record | None:
    """The pipeline stage record `record` is in (its pipeline's, or any pipeline's), or None."""
    stage_id = record.get("pipeline_stage_id")
    pipeline_id = record.get("pipeline_id")
    if isinstance(pipeline_id, str) and pipeline_id:
        found = store.get(consumer, "pipelines", "", pipeline_id)
        pipelines = [found] if found else []
    else:
        rows = store.scan(consumer, "pipelines", "", Sort(DEFAULT_ORDER, False), limit=_MAX_PIPELINES)
        pipelines = [row[2] for row in rows]
    for pipeline in pipelines:
        for stage in pipeline.get("stages") or []:
            if isinstance(stage, dict) and stage.get("id") == stage_id:
                return stage
    return None


def _opportunity(store: Store, consumer: str, old: Record | None, new: Record, body: Record) -> Record:
    record = dict(new)
    stage_id = record.get("pipeline_stage_id")
    if stage_id and (old is None or old.get("pipeline_stage_id") != stage_id):
        if "stage_last_changed_at" not in body:
            record["stage_last_changed_at"] = record.get("updated_at") or now_iso()
        stage = _stage(store, consumer, record)
        if stage is not None and as_number(stage.get("win_probability")) is not None and "win_probability" not in body:
            record["win_probability"] = stage["win_probability"]
    amount, probability = as_number(record.get("monetary_amount")), as_number(record.get("win_probability"))
    if amount is not None and probability is not None:
        record["expected_revenue"] = round(amount * probability / 100, 2)
    else:
        record.pop("expected_revenue", None)
    return record
