"""The handset link wire contract, version 1 (docs/protocol.md).

Pure: no server, no Kivy. The server bridge and the handset client both use it.

Topics: ``crewline/v1/devices/{device_id}/up/{kind}`` (handset → server) and
``crewline/v1/devices/{device_id}/down/{kind}`` (server → handset). Payloads are UTF-8 JSON
objects, each kind described by a JSON Schema in ``schemas/``.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

VERSION = 1
TOPIC_ROOT = "crewline/v1/devices"
# The application limit on one payload (Mosquitto's max_packet_size is far larger).
MAX_PAYLOAD = 64 * 1024

UP_KINDS = ("positions", "tag_scan", "status", "ack", "presence", "attachment", "inspection")
DOWN_KINDS = ("work_order", "cancel", "ack", "round", "round_cancel")
# Uplink kinds carrying a msg_id that the server acknowledges (presence is retained state instead).
ACKED_UP_KINDS = ("positions", "tag_scan", "status", "ack", "attachment", "inspection")
# Downlink kinds carrying a per-device seq: everything but the application ack.
SEQUENCED_DOWN_KINDS = tuple(k for k in DOWN_KINDS if k != "ack")

# The server bridge subscribes through a shared subscription so replicas split the uplink.
SHARE_GROUP = "crewline"
UPLINK_FILTER = f"{TOPIC_ROOT}/+/up/#"
SHARED_UPLINK_FILTER = f"$share/{SHARE_GROUP}/{UPLINK_FILTER}"

_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TOPIC = re.compile(r"^crewline/v1/devices/([^/]+)/(up|down)/([^/]+)$")
_SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"


class ProtocolError(ValueError):
    """A payload or topic outside the contract; ``reason`` is a stable code for dead letters."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _check_device(device_id: str) -> str:
    if not _DEVICE_ID.match(device_id):
        raise ValueError(f"invalid device id {device_id!r}")
    return device_id


def up_topic(device_id: str, kind: str) -> str:
    if kind not in UP_KINDS:
        raise ValueError(f"unknown uplink kind {kind!r}")
    return f"{TOPIC_ROOT}/{_check_device(device_id)}/up/{kind}"


def down_topic(device_id: str, kind: str) -> str:
    if kind not in DOWN_KINDS:
        raise ValueError(f"unknown downlink kind {kind!r}")
    return f"{TOPIC_ROOT}/{_check_device(device_id)}/down/{kind}"


def down_filter(device_id: str) -> str:
    """What a handset subscribes to: all its downlink kinds."""
    return f"{TOPIC_ROOT}/{_check_device(device_id)}/down/#"


@dataclass(frozen=True)
class Topic:
    device_id: str
    direction: str  # "up" | "down"
    kind: str


def parse_topic(topic: str) -> Topic:
    m = _TOPIC.match(topic)
    if not m or not _DEVICE_ID.match(m.group(1)):
        raise ProtocolError("bad_topic", f"topic {topic!r} is not crewline/v1/devices/<id>/<up|down>/<kind>")
    device_id, direction, kind = m.groups()
    if kind not in (UP_KINDS if direction == "up" else DOWN_KINDS):
        raise ProtocolError("unknown_kind", f"unknown {direction}link kind {kind!r}")
    return Topic(device_id, direction, kind)


@cache
def schema(direction: str, kind: str) -> dict[str, Any]:
    return json.loads((_SCHEMA_DIR / f"{direction}.{kind}.json").read_text())


@cache
def _validator(direction: str, kind: str):
    import jsonschema

    s = schema(direction, kind)
    jsonschema.Draft202012Validator.check_schema(s)
    return jsonschema.Draft202012Validator(s)


@cache
def _fast_validator(direction: str, kind: str):
    """The schema compiled by jsonschema-rs (optional: ~4x faster than fastjsonschema and far
    faster than jsonschema on the bridge's hot path); None where it is not installed (on the
    handset), then jsonschema does everything. Its patterns follow ECMA-262 (``\\d`` is 0-9 only,
    ``$`` is the end), so it is stricter than Python's ``re`` — never more lenient: what it
    refuses goes to the reference."""
    try:
        import jsonschema_rs
    except ImportError:
        return None
    return jsonschema_rs.validator_for(schema(direction, kind)).is_valid


def validate(direction: str, kind: str, message: Any) -> None:
    """Raise ProtocolError("schema_invalid", ...) naming the first offending field.

    A message the compiled validator accepts is valid; anything else is judged by jsonschema
    (the reference), which also words the error."""
    fast = _fast_validator(direction, kind)
    if fast is not None:
        try:
            if fast(message):
                return
        except Exception:  # a value it cannot take (NaN, a huge int): the reference decides
            pass
    errors = sorted(_validator(direction, kind).iter_errors(message),
                    key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.absolute_path) or "(root)"
        raise ProtocolError("schema_invalid", f"{where}: {e.message}"[:500])


def decode(topic: str, payload: bytes) -> tuple[Topic, dict[str, Any]]:
    """Check a received payload in the order the bridge dead-letters: topic, size, JSON, schema."""
    t = parse_topic(topic)
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError("oversize", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    try:
        message = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError("malformed_json", f"not UTF-8 JSON: {exc}"[:500]) from None
    validate(t.direction, t.kind, message)
    return t, message


def encode(direction: str, kind: str, message: dict[str, Any]) -> bytes:
    """Validate and serialise (senders validate too: a bug shows at the source)."""
    validate(direction, kind, message)
    data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    if len(data) > MAX_PAYLOAD:
        raise ProtocolError("oversize", f"payload of {len(data)} bytes exceeds {MAX_PAYLOAD}")
    return data


def new_msg_id() -> str:
    return str(uuid.uuid4())


def timestamp(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("timestamps need a time zone")
    return at.isoformat()


def uplink(kind: str, sent_at: datetime, /, msg_id: str | None = None,
           **fields: Any) -> dict[str, Any]:
    """An uplink message with the common envelope (v, msg_id, sent_at)."""
    return {"v": VERSION, "msg_id": msg_id or new_msg_id(), "sent_at": timestamp(sent_at), **fields}


def ack(msg_id: str, result: str = "accepted", error: dict[str, Any] | None = None,
        server_time: datetime | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"v": VERSION, "msg_id": msg_id, "result": result}
    if error is not None:
        out["error"] = error
    if server_time is not None:
        out["server_time"] = timestamp(server_time)
    return out
