"""Reading dead letters (``device_dead_letters``) for operators: API and CLI.

The bridge writes them (server/devices/bridge.py); retention deletes old ones
(server/devices/retention.py). A payload is whatever bytes arrived: never decoded as trusted
text. It is shown as base64 plus a UTF-8 preview with invalid bytes replaced (U+FFFD).
"""

from __future__ import annotations

import base64
import codecs
from datetime import datetime

from sqlalchemy import func, select
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


def _is_utf8(payload: bytes, *, complete: bool) -> bool:
    """Whether the bytes are UTF-8; of a prefix (``complete=False``) a character cut at its end
    is not held against it."""
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(payload, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def out(row, *, total_bytes: int | None = None) -> DeadLetterOut:
    """``row`` carries the payload, or (in a list) only its first bytes with ``total_bytes``
    the size of the whole."""
    shown = bytes(row.payload)
    size = len(shown) if total_bytes is None else total_bytes
    text, cut = preview(shown)
    return DeadLetterOut(
        id=row.id, received_at=row.received_at, device_id=row.device_id, topic=row.topic,
        reason=row.reason, detail=row.detail, payload_bytes=size,
        payload_base64=base64.b64encode(shown).decode("ascii"),
        payload_truncated=len(shown) < size, preview=text, preview_truncated=cut or size > len(shown),
        valid_utf8=_is_utf8(shown, complete=len(shown) == size))


def list_dead_letters(session: Session, *, device_id: str | None = None,
                      reason: str | None = None, since: datetime | None = None,
                      before_id: int | None = None, limit: int = 50) -> list[DeadLetterOut]:
    """Newest first (by arrival); page with ``before_id`` = the last id of the previous page.
    Only the first ``LIST_PAYLOAD_BYTES`` of each payload leave the database (an oversize
    letter may be a megabyte); ``valid_utf8`` then speaks of those bytes."""
    d = DeviceDeadLetter
    q = (select(d.id, d.received_at, d.device_id, d.topic, d.reason, d.detail,
                func.substring(d.payload, 1, LIST_PAYLOAD_BYTES).label("payload"),
                func.octet_length(d.payload).label("size"))
         .order_by(d.id.desc()).limit(limit))
    if device_id is not None:
        q = q.where(d.device_id == device_id)
    if reason is not None:
        q = q.where(d.reason == reason)
    if since is not None:
        q = q.where(d.received_at >= since)
    if before_id is not None:
        q = q.where(d.id < before_id)
    return [out(r, total_bytes=r.size) for r in session.execute(q)]


def get_dead_letter(session: Session, letter_id: int) -> DeadLetterOut:
    """One dead letter with its whole payload."""
    row = session.get(DeviceDeadLetter, letter_id)
    if row is None:
        raise NotFound(f"no dead letter {letter_id}", field="letter_id")
    return out(row)
