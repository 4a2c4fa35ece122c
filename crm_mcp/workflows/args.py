"""The arguments of the workflow tools: strict pydantic models that validate every call."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from crm_mcp.tool_args import RecordId, SwitchingOff, check_moment


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    # per-call consumer switching, off by default (crm_mcp.tool_args): unlisted and refused
    consumer_id: SwitchingOff = None
    service_id: SwitchingOff = None


class SearchArgs(_Args):
    query: str = Field(
        min_length=1, max_length=200,
        description="Name, email, phone or title; matched as the connector's filters match",
    )
    limit: int | None = Field(None, ge=1, le=50)


class OverviewArgs(_Args):
    company: str = Field(min_length=1, max_length=256, description="Company id or name")


class LogInteractionArgs(_Args):
    type: Literal["call", "meeting", "email"]
    title: str | None = Field(None, min_length=1, max_length=255)
    description: str | None = Field(None, max_length=20000)
    contact: str | None = Field(None, min_length=1, max_length=256, description="Contact id, name or email")
    company_id: RecordId | None = None
    opportunity_id: RecordId | None = None
    when: Annotated[str, AfterValidator(check_moment)] | None = Field(
        None, description="ISO 8601 date or date-time; default now"
    )
    duration_minutes: int | None = Field(None, ge=0, le=1440)
    note: str | None = Field(None, min_length=1, max_length=20000, description="Also add this note")
    dry_run: bool = False  # issue 13: answer what would be sent, send nothing (crm_mcp.journal.preview)

    @model_validator(mode="after")
    def _linked(self) -> LogInteractionArgs:
        if not (self.contact or self.company_id or self.opportunity_id):
            raise ValueError("give contact, company_id or opportunity_id: what the interaction was with")
        return self
