"""Server → handset messages: durable, sequenced per device, sent by the bridge after commit.

The contract (/tmp/contract-mqtt.md, docs/protocol.md "Downlink"):

* :func:`enqueue` is called INSIDE the caller's transaction. It allocates the device's next seq
  with ``UPDATE devices SET downlink_seq = downlink_seq + 1 … RETURNING`` — the row lock it takes
  serialises concurrent writers for that device until they commit or roll back, so seqs are
  1, 2, 3… without holes or repeats — and writes a ``device_downlink`` row plus a
  ``pg_notify('crewline_downlink', device_id)``. PostgreSQL delivers the notification only when
  the transaction commits, so the bridge never sees a message whose domain change rolled back.
* Several devices are locked in device-id order (``enqueue_for_user`` / ``enqueue_for_crew``), so
  two transactions writing to overlapping sets of devices queue instead of deadlocking.
* ``body`` is the message without ``v``/``seq``; it is validated against
  ``mobile_app/link/schemas/down.<kind>.json`` before anything is written (a bad body is a bug
  and raises :class:`mobile_app.link.protocol.ProtocolError`).

The bridge side (:func:`claim_unpublished`, :func:`mark_published`, :func:`record_ack`) lives here
too so that this module stays the only writer of ``device_downlink``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.orm import Session

from mobile_app.link import protocol
from server.core.errors import Conflict, InvalidInput, NotFound
from server.models import DeviceDownlink

log = structlog.get_logger()

CHANNEL = "crewline_downlink"

_NEXT_SEQ = text("UPDATE devices SET downlink_seq = downlink_seq + 1 "
                 "WHERE id = :device RETURNING downlink_seq, revoked_at")


def _check(kind: str, body: dict[str, Any]) -> None:
    if kind not in protocol.SEQUENCED_DOWN_KINDS:
        raise ValueError(f"{kind!r} is not a sequenced downlink kind "
                         f"({', '.join(protocol.SEQUENCED_DOWN_KINDS)})")
    if "v" in body or "seq" in body:
        raise ValueError("the body must not carry v or seq: enqueue adds them")
    protocol.validate("down", kind, {"v": protocol.VERSION, "seq": 1, **body})


def enqueue(session: Session, device_id: str, kind: str, body: dict[str, Any],
            now: datetime) -> int:
    """Queue one message for a device in the caller's transaction; returns its seq."""
    _check(kind, body)
    return _enqueue(session, device_id, kind, body, now)


def _enqueue(session: Session, device_id: str, kind: str, body: dict[str, Any],
             now: datetime) -> int:
    row = session.execute(_NEXT_SEQ, {"device": device_id}).first()
    if row is None:
        raise NotFound(f"no device {device_id!r}", field="device_id")
    seq, revoked_at = row
    if revoked_at is not None:
        raise Conflict(f"device {device_id!r} is revoked", field="device_id",
                       code="device_revoked")
    message = {"v": protocol.VERSION, "seq": seq, **body}
    session.execute(DeviceDownlink.__table__.insert().values(
        device_id=device_id, seq=seq, kind=kind, payload=message, created_at=now))
    session.execute(text("SELECT pg_notify(:channel, :device)"),
                    {"channel": CHANNEL, "device": device_id})
    return seq


def _enqueue_many(session: Session, device_ids: list[str], kind: str, body: dict[str, Any],
                  now: datetime) -> list[tuple[str, int]]:
    _check(kind, body)
    return [(d, _enqueue(session, d, kind, body, now)) for d in sorted(device_ids)]


def active_devices_of_user(session: Session, user_id: int) -> list[str]:
    return list(session.scalars(text(
        "SELECT id FROM devices WHERE user_id = :u AND revoked_at IS NULL ORDER BY id"),
        {"u": user_id}))


def active_devices_of_crew(session: Session, crew_id: int) -> list[str]:
    return list(session.scalars(text(
        "SELECT d.id FROM devices d JOIN crew_members m ON m.user_id = d.user_id "
        "JOIN users u ON u.id = d.user_id "
        "WHERE m.crew_id = :c AND d.revoked_at IS NULL AND u.is_active ORDER BY d.id"),
        {"c": crew_id}))


def enqueue_for_user(session: Session, user_id: int, kind: str, body: dict[str, Any],
                     now: datetime) -> list[tuple[str, int]]:
    """Every active (not revoked) device of a technician; [] when they have none."""
    return _enqueue_many(session, active_devices_of_user(session, user_id), kind, body, now)


def enqueue_for_crew(session: Session, crew_id: int, kind: str, body: dict[str, Any],
                     now: datetime) -> list[tuple[str, int]]:
    """Every active device of the crew's active members; [] when there is none."""
    return _enqueue_many(session, active_devices_of_crew(session, crew_id), kind, body, now)


# -- the bridge's side -----------------------------------------------------------------------------

_UNPUBLISHED = text("""
SELECT id, device_id, seq, kind, payload, generation FROM device_downlink
WHERE published_at IS NULL AND id > :after
ORDER BY id LIMIT :limit
""")


def unpublished(session: Session, *, after_id: int = 0, limit: int = 500
                ) -> list[tuple[int, str, int, str, dict[str, Any], int]]:
    """Committed rows not yet confirmed by the broker, in id order. For one device, id order is
    seq order: the id is drawn after the seq, while the device row is locked."""
    return [tuple(r) for r in session.execute(_UNPUBLISHED, {"after": after_id, "limit": limit})]


def mark_published(session: Session, confirmed: list[tuple[int, int]], now: datetime) -> int:
    """Stamp rows the broker confirmed, as (id, generation published); a row re-queued by a
    resync since (a newer generation) stays unpublished and is sent again."""
    if not confirmed:
        return 0
    return session.execute(text(
        "UPDATE device_downlink d SET published_at = :now FROM unnest(CAST(:ids AS bigint[]), "
        "CAST(:gens AS integer[])) AS c(id, gen) WHERE d.id = c.id AND d.generation = c.gen "
        "AND d.published_at IS NULL"),
        {"now": now, "ids": [i for i, _ in confirmed], "gens": [g for _, g in confirmed]}
    ).rowcount


_REQUEUE = text("""
WITH q AS (
    UPDATE device_downlink SET published_at = NULL, generation = generation + 1
    WHERE device_id = :d AND seq > :s RETURNING seq
)
SELECT count(*), min(seq) FROM q
""")


def record_ack(session: Session, device_id: str, seq: int, resync: bool,
               now: datetime) -> int:
    """The handset handled every seq up to ``seq``; with ``resync`` it asks for everything after
    it again (it saw a gap, or its broker session was lost). Returns how many rows are queued
    for republication. A seq above what was ever allocated is refused.

    A resync from a seq whose following rows retention already pruned (a handset that lost its
    link state and asks from 0) can never be satisfied: what is stored is republished anyway, and
    the device is flagged ``resync_stuck_at``/``resync_stuck_seq`` (one warning per transition,
    not per retry) until an ack without such a hole (docs/operations.md "Handset link:
    retention and dead letters")."""
    row = session.execute(text("SELECT downlink_seq, resync_stuck_at FROM devices WHERE id = :d"),
                          {"d": device_id}).first()
    if row is None:
        raise NotFound(f"no device {device_id!r}", field="device_id")
    top, stuck_at = row
    if seq > top:
        raise InvalidInput(f"seq {seq} was never sent (highest is {top})", field="seq",
                           code="seq_ahead")
    session.execute(text("UPDATE devices SET acked_seq = GREATEST(acked_seq, :s), acked_at = :now "
                         "WHERE id = :d"), {"s": seq, "now": now, "d": device_id})
    n, hole = 0, False
    if resync:
        n, first = session.execute(_REQUEUE, {"d": device_id, "s": seq}).one()
        # seqs seq+1..top were all allocated; the handset can only proceed if seq+1 is stored
        hole = first > seq + 1 if first is not None else top > seq
        if n:
            session.execute(text("SELECT pg_notify(:channel, :device)"),
                            {"channel": CHANNEL, "device": device_id})
        if hole and session.execute(text(
                "UPDATE devices SET resync_stuck_at = :now, resync_stuck_seq = :s "
                "WHERE id = :d AND resync_stuck_at IS NULL"),
                {"now": now, "s": seq, "d": device_id}).rowcount:
            log.warning("devices.resync_stuck", device_id=device_id, asked_seq=seq,
                        first_stored_seq=first, downlink_seq=top)
    if not hole and stuck_at is not None and session.execute(text(
            "UPDATE devices SET resync_stuck_at = NULL, resync_stuck_seq = NULL "
            "WHERE id = :d AND resync_stuck_at IS NOT NULL"), {"d": device_id}).rowcount:
        log.info("devices.resync_recovered", device_id=device_id, acked_seq=seq)
    return n
