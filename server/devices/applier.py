"""Applying deferred uplink events (``@handler(kind, deferred=True)``, e.g. positions).

The bridge stores a deferred event in ``device_messages`` with ``applied_at`` NULL and acks it at
once ("stored"); this module applies the stored events shortly after, exactly once:

* one round reads a page of pending rows in id order and groups them by (device, kind);
* each group is applied in its own transaction that first re-selects its rows ``FOR UPDATE SKIP
  LOCKED … AND applied_at IS NULL`` (so several bridges' appliers never apply a row twice, and a
  row applied meanwhile is skipped), calls the handler once with the merged message when the kind
  has a ``merge`` (all of a device's pending fixes in one position report), and stamps
  ``applied_at`` in the same transaction as the effect;
* if the merged call is refused (a CrewlineError), the group's messages are applied one by one in
  savepoints so that only the offending message is stored as ``rejected`` (with the error);
* any other failure rolls the group back; it stays pending and is retried in the next round.

One device's group per transaction keeps the lock pattern of one HTTP position report
(server/dispatch/service.py: the crew's tickets, then the crew). A group costs about ten
statements whatever its size, so the bridge runs rounds at most every ``apply_interval`` seconds
(server/devices/bridge.py): under load a handset's fixes of the last second are one crew update,
not one per uplink batch. Each round walks the groups from a random starting point, so the
appliers of several bridges rarely reach for the same group at once (a group one of them holds
is skipped by the other's SKIP LOCKED, but the attempt costs a round trip).
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, sessionmaker

from server.auth.service import Principal
from server.core.errors import CrewlineError
from server.devices.handlers import HandlerContext, Spec
from server.models import Device, Role

log = structlog.get_logger()

_PENDING = text("SELECT id, device_id, kind FROM device_messages WHERE applied_at IS NULL "
                "ORDER BY id LIMIT :limit")
# the group's rows and, in the same read, the technician its device acts for now
_CLAIM = text("SELECT m.id, m.payload, u.id AS user_id, u.username, u.role "
              "FROM device_messages m JOIN devices d ON d.id = m.device_id "
              "JOIN users u ON u.id = d.user_id "
              "WHERE m.id = ANY(:ids) AND m.applied_at IS NULL "
              "ORDER BY m.id FOR UPDATE OF m SKIP LOCKED")


def apply_round(make_session: sessionmaker, handlers: dict[str, Spec], ctx: HandlerContext,
                now: datetime, limit: int = 20000) -> int:
    """Apply up to ``limit`` pending events; returns how many were applied (accepted or
    rejected). Groups that failed otherwise stay pending."""
    with make_session() as session:
        pending = session.execute(_PENDING, {"limit": limit}).all()
    if not pending:
        return 0
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for row_id, device_id, kind in pending:
        groups[(device_id, kind)].append(row_id)
    order = sorted(groups.items())
    start = random.randrange(len(order))
    done = 0
    for (device_id, kind), ids in order[start:] + order[:start]:
        try:
            with make_session() as session:
                done += _apply_group(session, handlers, ctx, device_id, kind, ids, now)
                session.commit()
        except Exception:
            log.warning("mqtt.apply_failed", device_id=device_id, kind=kind, n=len(ids),
                        exc_info=True)
    return done


def _apply_group(session: Session, handlers: dict[str, Spec], ctx: HandlerContext,
                 device_id: str, kind: str, ids: list[int], now: datetime) -> int:
    rows = session.execute(_CLAIM, {"ids": ids}).all()
    if not rows:
        return 0
    spec = handlers.get(kind)
    results: dict[int, tuple[str, Any]] = {}
    if spec is None:  # the handler went away between intake and now (a downgrade)
        err = {"code": "unsupported_kind", "message": f"no handler for {kind!r}", "field": None}
        results = {r.id: ("rejected", err) for r in rows}
    else:
        device = session.get(Device, device_id)
        actor = Principal(id=rows[0].user_id, username=rows[0].username, role=Role(rows[0].role))
        merged = False
        if spec.merge is not None and len(rows) > 1:
            sp = session.begin_nested()
            try:
                spec(session, actor, device, spec.merge([r.payload for r in rows]), now, ctx)
                sp.commit()
                results = {r.id: ("accepted", None) for r in rows}
                merged = True
            except CrewlineError:
                sp.rollback()  # find the offending message(s) one by one
        if not merged:
            for r in rows:
                sp = session.begin_nested()
                try:
                    spec(session, actor, device, r.payload, now, ctx)
                    sp.commit()
                    results[r.id] = ("accepted", None)
                except CrewlineError as exc:
                    sp.rollback()
                    results[r.id] = ("rejected", {"code": exc.code, "message": exc.message[:500],
                                                  "field": exc.field})
    accepted = [i for i, (res, _) in results.items() if res == "accepted"]
    if accepted:
        session.execute(text("UPDATE device_messages SET applied_at = :now WHERE id = ANY(:ids)"),
                        {"now": now, "ids": accepted})
    rejected = [{"id": i, "error": err, "now": now} for i, (res, err) in results.items()
                if res == "rejected"]
    if rejected:
        session.execute(text("UPDATE device_messages SET applied_at = :now, result = 'rejected', "
                             "error = :error WHERE id = :id").bindparams(
                                 bindparam("error", type_=JSONB)), rejected)
    return len(results)


def pending_count(session: Session) -> int:
    return session.scalar(text("SELECT count(*) FROM device_messages WHERE applied_at IS NULL"))
