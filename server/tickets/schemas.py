from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from server.core.schemas import PointIn, PointOut
from server.tickets.lifecycle import CallbackOutcome, Category, Channel, Priority, Status


class TicketIn(BaseModel):
    category: Category
    priority: Priority = Priority.normal
    channel: Channel = Channel.phone
    description: str = Field(min_length=1, max_length=4000)
    customer_id: int | None = Field(None, ge=1)
    service_point_id: int | None = Field(None, ge=1)
    location: PointIn | None = None
    address: str | None = Field(None, max_length=300)
    reporter_name: str | None = Field(None, max_length=200)
    reporter_phone: str | None = Field(None, max_length=32)
    language: str | None = Field(None, pattern=r"^(zh-CN|en)$")


class TransitionIn(BaseModel):
    to: Status
    note: str | None = Field(None, max_length=2000)
    resolution_code: str | None = Field(None, min_length=1, max_length=64)
    reason: str | None = Field(None, min_length=1, max_length=2000,
                               description="explicit reason to close without a callback")


class CallbackIn(BaseModel):
    outcome: CallbackOutcome
    note: str | None = Field(None, max_length=2000)


class LinkIn(BaseModel):
    duplicate_of: int = Field(ge=1)
    note: str | None = Field(None, max_length=2000)


class TicketSummary(BaseModel):
    id: int
    number: str
    category: Category
    priority: Priority
    status: Status
    description: str
    address: str | None
    location: PointOut | None
    created_at: datetime
    sla_level: int
    distance_m: float | None = None


class EventOut(BaseModel):
    id: int
    at: datetime
    actor: str | None
    kind: str
    from_status: str | None
    to_status: str | None
    note: str | None
    data: dict[str, Any] | None


class ClockOut(BaseModel):
    clock: str
    cycle: int
    started_at: datetime
    warn_at: datetime
    due_at: datetime
    stopped_at: datetime | None
    warned_at: datetime | None
    escalated_at: datetime | None
    state: str  # running, warning, overdue, met, missed


class LinkOut(BaseModel):
    ticket_id: int
    linked_ticket_id: int
    kind: str
    created_at: datetime


class TicketOut(TicketSummary):
    channel: Channel
    customer_id: int | None
    service_point_id: int | None
    reporter_name: str | None
    reporter_phone: str | None
    language: str
    updated_at: datetime
    resolution_code: str | None
    resolution_note: str | None
    resolved_at: datetime | None
    closed_at: datetime | None
    close_reason: str | None
    callback_outcome: CallbackOutcome | None
    callback_at: datetime | None
    reopen_count: int
    first_contact_resolution: bool
    sla: list[ClockOut] = []
    events: list[EventOut] = []
    links: list[LinkOut] = []


class TicketCreated(BaseModel):
    ticket: TicketOut
    possible_duplicates: list[TicketSummary]
