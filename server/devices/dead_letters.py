"""Reading dead letters (``device_dead_letters``) for operators: API and CLI.

The bridge writes them (server/devices/bridge.py); retention deletes old ones
(server/devices/retention.py). A payload is whatever bytes arrived: never decoded as trusted
text. It is shown as base64 plus a UTF-8 preview with invalid bytes replaced (U+FFFD).
"""

from __future__ import annotations

import base64
import codecs
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mobile_app.link.protocol import MAX_PAYLOAD
from server.core.errors import NotFound
from server.devices.schemas import DeadLetterOut
from server.models import DeviceDeadLetter

PREVIEW_BYTES = 512  # the preview shows at most this many bytes of the payload
LIST_PAYLOAD_BYTES = MAX_PAYLOAD  # a list carries at most this many raw bytes per letter


def preview(payload: bytes, limit: int = PREVIEW_BYTES) -> tuple[str, bool]:
    """The first ``limit`` bytes read as UTF-8, invalid sequences as U+FFFD; a multi-byte
    character cut by the limit is left out rather than shown as garbage. Returns (text, cut)."""
    head = payload[:limit]
    cut = len(payload) > limit
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    return decoder.decode(head, final=not cut), cut


def _is_utf8(payload: bytes) -> bool:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def out(row: DeviceDeadLetter, *, max_bytes: int | None = None) -> DeadLetterOut:
    raw = bytes(row.payload)
    shown = raw if max_bytes is None else raw[:max_bytes]
    text, cut = preview(raw)
    return DeadLetterOut(
        id=row.id, received_at=row.received_at, device_id=row.device_id, topic=row.topic,
        reason=row.reason, detail=row.detail, payload_bytes=len(raw),
        payload_base64=base64.b64encode(shown).decode("ascii"),
        payload_truncated=len(shown) < len(raw), preview=text, preview_truncated=cut,
        valid_utf8=_is_utf8(raw))


def list_dead_letters(session: Session, *, device_id: str | None = None,
                      reason: str | None = None, since: datetime | None = None,
                      before_id: int | None = None, limit: int = 50) -> list[DeadLetterOut]:
    """Newest first (by arrival); page with ``before_id`` = the last id of the previous page."""
    q = select(DeviceDeadLetter).order_by(DeviceDeadLetter.id.desc()).limit(limit)
    if device_id is not None:
        q = q.where(DeviceDeadLetter.device_id == device_id)
    if reason is not None:
        q = q.where(DeviceDeadLetter.reason == reason)
    if since is not None:
        q = q.where(DeviceDeadLetter.received_at >= since)
    if before_id is not None:
        q = q.where(DeviceDeadLetter.id < before_id)
    return [out(r, max_bytes=LIST_PAYLOAD_BYTES) for r in session.scalars(q)]


def get_dead_letter(session: Session, letter_id: int) -> DeadLetterOut:
    """One dead letter with its whole payload."""
    row = session.get(DeviceDeadLetter, letter_id)
    if row is None:
        raise NotFound(f"no dead letter {letter_id}", field="letter_id")
    return out(row)
