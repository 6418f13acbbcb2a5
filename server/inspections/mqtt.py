"""The MQTT ``inspection`` uplink: a visit from a handset, through the same service as HTTP.

Registered with the devices bridge's handler registry (server/devices/handlers.py lists this
module). A visit naming a tag scan the server has not stored yet is *not* rejected: the scan's
own uplink may still be on its way (shared subscriptions do not keep order across bridges), so
the handler raises a plain error, the bridge sends no ack and the handset resends later — for an
hour after the message was sent; then the visit is rejected (``tag_scan_missing``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from server.core.errors import InvalidInput
from server.devices.handlers import handler
from server.inspections import service
from server.inspections.schemas import VisitIn

SCAN_GRACE = timedelta(hours=1)  # how long a visit waits for its scan before it is rejected


class ScanNotYetHere(RuntimeError):
    """Retry later: the referenced tag scan has not arrived."""


@handler("inspection")
def on_inspection(session, actor, device, message: dict[str, Any], now, ctx) -> None:
    try:
        visit = VisitIn(**message["visit"], client_id=message["msg_id"])
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidInput(f"{where}: {first.get('msg')}",
                           field=f"visit.{where}" if where else "visit") from None
    cfg = service.InspectionConfig.from_settings(ctx.settings)
    try:
        service.submit_visit(session, visit, actor, now, cfg, source="mqtt")
    except service.TagScanPending as exc:
        sent_at = datetime.fromisoformat(message["sent_at"].upper().replace("Z", "+00:00"))
        if now - sent_at > SCAN_GRACE:  # the scan is not coming (dead-lettered, never sent)
            raise InvalidInput(f"{exc.message}; gave up waiting after {SCAN_GRACE}",
                               field="visit.tag_scan_msg_id", code="tag_scan_missing") from None
        raise ScanNotYetHere(exc.message) from None
