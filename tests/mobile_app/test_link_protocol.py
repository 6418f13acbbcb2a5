"""The handset link wire contract: topics, schemas, and the dead-letter reasons they produce."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mobile_app.link import protocol
from mobile_app.link.protocol import ProtocolError

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def reason(topic: str, payload: bytes) -> str:
    with pytest.raises(ProtocolError) as exc:
        protocol.decode(topic, payload)
    return exc.value.reason


def test_topics_round_trip() -> None:
    assert protocol.up_topic("hs-1", "positions") == "crewline/v1/devices/hs-1/up/positions"
    assert protocol.down_topic("hs-1", "ack") == "crewline/v1/devices/hs-1/down/ack"
    assert protocol.down_filter("hs-1") == "crewline/v1/devices/hs-1/down/#"
    assert protocol.SHARED_UPLINK_FILTER == "$share/crewline/crewline/v1/devices/+/up/#"
    t = protocol.parse_topic("crewline/v1/devices/hs-1/up/tag_scan")
    assert (t.device_id, t.direction, t.kind) == ("hs-1", "up", "tag_scan")
    for bad in ("crewline/v2/devices/a/up/positions", "crewline/v1/devices/a/side/positions",
                "crewline/v1/devices/a/up/positions/extra", "crewline/v1/devices/+/up/x"):
        with pytest.raises(ProtocolError):
            protocol.parse_topic(bad)
    assert reason("crewline/v1/devices/a/up/selfie", b"{}") == "unknown_kind"
    with pytest.raises(ValueError):
        protocol.up_topic("a/#", "positions")
    with pytest.raises(ValueError):
        protocol.down_topic("a", "positions")


def test_every_schema_is_valid_and_examples_pass() -> None:
    examples = {
        ("up", "positions"): protocol.uplink("positions", NOW, fixes=[
            {"lon": 24.9, "lat": 60.2, "at": "2026-01-05T08:00:00Z", "accuracy_m": 4.5,
             "heading_deg": 359.9, "speed_mps": None}]),
        ("up", "tag_scan"): protocol.uplink("tag_scan", NOW, scan={
            "uid": "04A1B2C3D4E5F6", "sun_url": None, "position": {"lon": 1, "lat": 2}}),
        ("up", "status"): protocol.uplink("status", NOW, ticket_id=7, status="en_route",
                                          at="2026-01-05T09:00:00+08:00"),
        ("up", "ack"): protocol.uplink("ack", NOW, seq=12, resync=True),
        ("up", "presence"): {"v": 1, "state": "offline"},
        ("up", "attachment"): protocol.uplink("attachment", NOW, ticket_id=7, kind="photo",
                                              sha256="ab" * 32, bytes=123456, mime="image/jpeg",
                                              taken_at="2026-01-05T08:00:00Z"),
        ("down", "work_order"): {"v": 1, "seq": 1, "ticket_id": 7, "revision": 1,
                                 "status": "assigned", "category": "repair", "priority": "high",
                                 "summary": "leak", "description": "leak\nat the gate",
                                 "address": None, "location": {"lon": 24.9, "lat": 60.2},
                                 "customer_name": "李明", "customer_phone": "+8613800138000",
                                 "due_at": None, "assigned_at": "2026-01-05T08:00:00+00:00"},
        ("down", "cancel"): {"v": 1, "seq": 2, "ticket_id": 7, "reason": "cancelled"},
        ("down", "ack"): protocol.ack(protocol.new_msg_id(), "rejected",
                                      {"code": "no_crew", "message": "m", "field": None}),
    }
    # the issue-4 kinds (other domains' kinds, e.g. inspection/round, are tested with them)
    assert {k for d, k in examples if d == "up"} <= set(protocol.UP_KINDS)
    assert {k for d, k in examples if d == "down"} <= set(protocol.DOWN_KINDS)
    assert len(examples) == 9
    for (direction, kind), message in examples.items():
        data = protocol.encode(direction, kind, message)
        topic = (protocol.up_topic if direction == "up" else protocol.down_topic)("hs-1", kind)
        assert protocol.decode(topic, data)[1] == message


@pytest.mark.parametrize("mutate, where", [
    (lambda m: m.pop("msg_id"), "msg_id"),
    (lambda m: m.update(msg_id="not-a-uuid"), "msg_id"),
    (lambda m: m.update(v=2), "v"),
    (lambda m: m.update(sent_at="2026-01-05 08:00"), "sent_at"),
    (lambda m: m.update(sent_at="2026-01-05T08:00:00"), "sent_at"),  # no zone
    (lambda m: m.update(fixes=[]), "fixes"),
    (lambda m: m["fixes"][0].update(lat=90.5), "fixes/0/lat"),
    (lambda m: m["fixes"][0].update(heading_deg=360), "fixes/0/heading_deg"),
    (lambda m: m["fixes"][0].pop("at"), "fixes/0"),
    (lambda m: m.update(extra=1), "(root)"),
])
def test_schema_violations_name_the_field(mutate, where) -> None:
    m = protocol.uplink("positions", NOW, fixes=[{"lon": 1.0, "lat": 2.0, "at": "2026-01-05T08:00:00Z"}])
    mutate(m)
    with pytest.raises(ProtocolError) as exc:
        protocol.decode("crewline/v1/devices/a/up/positions", json.dumps(m).encode())
    assert exc.value.reason == "schema_invalid"
    assert where in exc.value.message


@pytest.mark.parametrize("kind, fields, where", [
    ("attachment", {"kind": "photo", "sha256": "ab" * 32, "bytes": 1, "mime": "image/jpeg",
                    "taken_at": "2026-01-05T08:00:00Z"}, "(root)"),  # neither ticket nor visit
    ("attachment", {"ticket_id": 7, "kind": "video", "sha256": "ab" * 32, "bytes": 1,
                    "mime": "image/jpeg", "taken_at": "2026-01-05T08:00:00Z"}, "kind"),
    ("attachment", {"visit_ref": "v-1", "kind": "signature", "sha256": "AB" * 32, "bytes": 1,
                    "mime": "image/png", "taken_at": "2026-01-05T08:00:00Z"}, "sha256"),
    ("ack", {"seq": -1}, "seq"),
])
def test_more_violations_name_the_field(kind, fields, where) -> None:
    """(Also: the compiled fast validator never accepts what the reference refuses.)"""
    m = protocol.uplink(kind, NOW, **fields)
    with pytest.raises(ProtocolError) as exc:
        protocol.validate("up", kind, m)
    assert where in exc.value.message


def test_down_cancel_and_work_order_are_strict() -> None:
    with pytest.raises(ProtocolError):
        protocol.validate("down", "cancel", {"v": 1, "seq": 1, "ticket_id": 7, "reason": "bored"})
    with pytest.raises(ProtocolError) as exc:  # every work-order field is present, maybe null
        protocol.validate("down", "work_order", {"v": 1, "seq": 1, "ticket_id": 7, "revision": 1,
                                                 "status": "assigned", "category": "repair",
                                                 "priority": "high", "summary": "leak"})
    assert "description" in exc.value.message


def test_size_and_json_checks() -> None:
    topic = "crewline/v1/devices/a/up/positions"
    assert reason(topic, b"x" * (protocol.MAX_PAYLOAD + 1)) == "oversize"
    assert reason(topic, b"{") == "malformed_json"
    assert reason(topic, b"\xc3\x28") == "malformed_json"
    assert reason(topic, b"null") == "schema_invalid"
    scan_without_uid = protocol.uplink("tag_scan", NOW, scan={"reader": "acr122"})
    assert reason("crewline/v1/devices/a/up/tag_scan",
                  json.dumps(scan_without_uid).encode()) == "schema_invalid"
    big = protocol.uplink("positions", NOW, fixes=[
        {"lon": 1.0, "lat": 2.0, "at": "2026-01-05T08:00:00Z"}] * 501)
    with pytest.raises(ProtocolError):
        protocol.encode("up", "positions", big)


def test_timestamps_need_a_zone() -> None:
    with pytest.raises(ValueError):
        protocol.uplink("positions", datetime(2026, 1, 5, 8, 0), fixes=[])
    m = protocol.uplink("ack", NOW.astimezone(timezone(timedelta(hours=8))), seq=0)
    assert m["sent_at"].endswith("+08:00")


def test_the_protocol_imports_neither_server_nor_kivy() -> None:
    import subprocess
    import sys

    code = ("import sys, mobile_app.link.protocol as p; p._validator('up', 'positions'); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('server', 'kivy', 'sqlalchemy')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def _positions(**fix) -> dict:
    now = datetime.now(UTC)
    base = {"lon": 24.9, "lat": 60.17, "at": now.isoformat(), "accuracy_m": 5.0}
    return protocol.uplink("positions", now, fixes=[{**base, **fix}])


@pytest.mark.parametrize("message", [
    _positions(),
    _positions(at="٢٠٢٦-11-27T10:00:00Z"),  # Arabic-Indic digits: Python's \d takes them
    _positions(at="2026-11-27T10:00:00Z\n"),  # Python's $ matches before a final newline
    _positions(lon=float("nan")),  # json.loads reads NaN; minimum/maximum let it through
    _positions(lon=True), _positions(lat=float("inf")), _positions(lon=10**30),
    _positions(accuracy_m=None), _positions(extra=1),
    {**_positions(), "v": True}, {**_positions(), "v": 1.0}, {**_positions(), "msg_id": "１" * 36},
], ids=lambda m: json.dumps(m, ensure_ascii=False, default=str)[-60:])
def test_the_fast_validator_never_accepts_what_the_reference_refuses(message) -> None:
    """The bridge's accept path (jsonschema-rs) is only a shortcut: a message it accepts must be
    valid for the reference validator (jsonschema), which judges everything it refuses."""
    fast = protocol._fast_validator("up", "positions")
    assert fast is not None  # installed with the server (pyproject)
    reference_ok = not list(protocol._validator("up", "positions").iter_errors(message))
    try:
        fast_ok = fast(message)
    except Exception:  # a value it cannot take: the reference decides
        fast_ok = False
    assert not fast_ok or reference_ok
    if reference_ok:
        protocol.validate("up", "positions", message)  # accepted, whichever path decided
    else:
        with pytest.raises(ProtocolError):
            protocol.validate("up", "positions", message)
