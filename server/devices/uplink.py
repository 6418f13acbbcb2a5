"""The issue-4 uplink handlers: positions, tag_scan, status, ack, attachment.

Registered in server/devices/handlers.py (see there for the contract: CrewlineError = refused and
acked as rejected; anything else = not acked).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from server.auth.service import Principal
from server.core.errors import Forbidden, InvalidInput
from server.devices import downlink
from server.devices.handlers import HandlerContext, handler
from server.models import Device, DeviceAttachment


def validation_error(exc: ValidationError, prefix: str) -> InvalidInput:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return InvalidInput(f"{where}: {first.get('msg')}", field=f"{prefix}.{where}" if where else prefix)


def _crew_of(session: Session, actor: Principal, field: str) -> int:
    from server.crews import service as crews

    crew_id = crews.crew_of(session, actor.id)
    if crew_id is None:
        raise InvalidInput(f"technician {actor.username!r} is in no crew", field=field,
                           code="no_crew")
    return crew_id


def _merge_positions(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {**messages[0], "fixes": [f for m in messages for f in m["fixes"]]}


@handler("positions", deferred=True, merge=_merge_positions)
def positions(session: Session, actor: Principal, device: Device, message: dict[str, Any],
              now: datetime, ctx: HandlerContext) -> None:
    """GPS fixes → dispatch's position service for the technician's crew (history, live
    position, geofence arrival, ETA refresh). Deferred: acked when stored, applied by the
    applier, several messages of a device in one call."""
    from server.crews.schemas import FixIn
    from server.dispatch import service as dispatch

    crew_id = _crew_of(session, actor, "fixes")
    try:
        fixes = [FixIn(**f) for f in message["fixes"]]
    except ValidationError as exc:
        raise validation_error(exc, "fixes") from None
    dispatch.report_positions(session, crew_id, fixes, actor, now, ctx.dispatch_cfg)


@handler("status")
def status(session: Session, actor: Principal, device: Device, message: dict[str, Any],
           now: datetime, ctx: HandlerContext) -> None:
    """A technician moves their crew's ticket (accepted, en route, on site, resolved) through
    the same lifecycle rules, audit trail and SMS as the HTTP API, with themselves as actor.
    The server's clock stamps the change; the handset's ``at`` stays in the stored message."""
    from server.crews import service as crews
    from server.dispatch import service as dispatch
    from server.tickets import service as tickets
    from server.tickets.schemas import TransitionIn

    ticket_id = message["ticket_id"]
    crew_id = crews.crew_of(session, actor.id)
    holder = dispatch.assigned_crew(session, ticket_id)
    if crew_id is None or holder != crew_id:
        raise Forbidden(f"ticket {ticket_id} is not assigned to {actor.username}'s crew",
                        field="ticket_id", code="not_your_job")
    body = TransitionIn(to=message["status"], note=message.get("note"),
                        resolution_code=message.get("resolution_code"))
    tickets.transition(session, ticket_id, body, actor, now, ctx.dispatch_cfg.ticket_policy)


@handler("tag_scan")
def tag_scan(session: Session, actor: Principal, device: Device, message: dict[str, Any],
             now: datetime, ctx: HandlerContext) -> None:
    from server.tags import service as tags
    from server.tags.schemas import ScanIn

    try:
        scan = ScanIn(**message["scan"], client_id=message["msg_id"])
    except ValidationError as exc:
        raise validation_error(exc, "scan") from None
    tags.ingest_scan(session, scan, actor, now, ctx.keyring, source="mqtt")


@handler("ack")
def ack(session: Session, actor: Principal, device: Device, message: dict[str, Any],
        now: datetime, ctx: HandlerContext) -> None:
    """The handset handled downlink up to ``seq``; ``resync`` re-sends everything after it."""
    downlink.record_ack(session, device.id, message["seq"], bool(message.get("resync")), now)


@handler("attachment")
def attachment(session: Session, actor: Principal, device: Device, message: dict[str, Any],
               now: datetime, ctx: HandlerContext) -> None:
    """Photo/signature metadata. A ticket reference must be a ticket the technician's crew holds
    or held (photos are often sent after the job, from the yard)."""
    ticket_id = message.get("ticket_id")
    if ticket_id is not None:
        crew_id = _crew_of(session, actor, "ticket_id")
        held = session.scalar(text("SELECT 1 FROM dispatch_assignments WHERE ticket_id = :t "
                                   "AND crew_id = :c LIMIT 1"), {"t": ticket_id, "c": crew_id})
        if not held:
            raise Forbidden(f"ticket {ticket_id} was never assigned to {actor.username}'s crew",
                            field="ticket_id", code="not_your_job")
    taken_at = datetime.fromisoformat(message["taken_at"].replace("z", "Z"))
    session.execute(pg_insert(DeviceAttachment).values(
        device_id=device.id, msg_id=uuid.UUID(message["msg_id"]), user_id=actor.id,
        ticket_id=ticket_id, visit_ref=message.get("visit_ref"), kind=message["kind"],
        sha256=message["sha256"], bytes=message["bytes"], mime=message["mime"],
        taken_at=taken_at, received_at=now).on_conflict_do_nothing())
