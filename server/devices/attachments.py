"""Photo/signature files: the handset uploads the bytes of an attachment it announced over MQTT.

The metadata (``device_attachments``: ticket or visit, kind, sha256, size, mime, taken_at) comes
over MQTT (uplink ``attachment``). The file follows over HTTP:
``PUT /api/v1/devices/self/attachments/{sha256}`` with HTTP Basic credentials = the device's
MQTT username and password (``pairing.authenticate_device``, as for the scan verdicts; a revoked
device is refused). The bytes must hash to ``sha256`` and have the announced size; they are written once
to ``CREWLINE_ATTACHMENTS_DIR/<first 2 hex>/<sha256>`` (content-addressed: an upload of the same
file again is a no-op), then ``uploaded_at`` is stamped. Staff read them back with
``GET /api/v1/devices/attachments/{sha256}``.
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from server.core.errors import InvalidInput, NotFound
from server.models import Device, DeviceAttachment

MAX_BYTES = 50 * 1024 * 1024  # the schema's bound on ``bytes``
_SHA = re.compile(r"^[0-9a-f]{64}$")


def path_of(root: str | Path, sha256: str) -> Path:
    return Path(root) / sha256[:2] / sha256


def store(session: Session, device: Device, sha256: str, data: bytes, root: str | Path,
          now: datetime) -> dict:
    """Check the bytes against what the device announced, write them, stamp uploaded_at."""
    if not _SHA.match(sha256):
        raise InvalidInput("sha256 must be 64 lowercase hex digits", field="sha256")
    rows = list(session.scalars(select(DeviceAttachment).where(
        DeviceAttachment.device_id == device.id, DeviceAttachment.sha256 == sha256)))
    if not rows:
        raise NotFound(f"this device announced no attachment {sha256} (send the MQTT "
                       "'attachment' event first)", field="sha256")
    if len(data) != rows[0].bytes:
        raise InvalidInput(f"{len(data)} bytes received, {rows[0].bytes} announced",
                           field="bytes", code="size_mismatch")
    if hashlib.sha256(data).hexdigest() != sha256:
        raise InvalidInput("the bytes do not hash to the announced sha256", field="sha256",
                           code="hash_mismatch")
    target = path_of(root, sha256)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{sha256}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    session.execute(text("UPDATE device_attachments SET uploaded_at = :now WHERE device_id = :d "
                         "AND sha256 = :s AND uploaded_at IS NULL"),
                    {"now": now, "d": device.id, "s": sha256})
    return {"sha256": sha256, "bytes": len(data), "mime": rows[0].mime,
            "attachments": [r.id for r in rows]}


def find(session: Session, sha256: str, root: str | Path) -> tuple[Path, str]:
    """The stored file and its mime type, for staff."""
    mime = session.scalar(select(DeviceAttachment.mime).where(
        DeviceAttachment.sha256 == sha256, DeviceAttachment.uploaded_at.is_not(None)).limit(1))
    target = path_of(root, sha256) if _SHA.match(sha256) else None
    if mime is None or target is None or not target.exists():
        raise NotFound(f"no uploaded attachment {sha256}", field="sha256")
    return target, mime
