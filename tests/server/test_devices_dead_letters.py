"""The dead-letter viewer: GET /api/v1/devices/dead-letters (managers and admins) and
`crewline devices dead-letters`, on the real database."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from mobile_app.link import protocol
from server.devices.dead_letters import PREVIEW_BYTES, preview
from tests.support import cli_env

URL = "/api/v1/devices/dead-letters"


def add_letter(engine, at: datetime, *, device_id: str | None = "hs-a",
               reason: str = "schema_invalid", payload: bytes = b'{"v": 1}',
               topic: str | None = None) -> int:
    with engine.begin() as conn:
        return conn.scalar(text(
            "INSERT INTO device_dead_letters (received_at, topic, device_id, reason, detail, "
            "payload) VALUES (:at, :t, :d, :r, :detail, :p) RETURNING id"),
            {"at": at, "t": topic or f"crewline/v1/devices/{device_id}/up/positions",
             "d": device_id, "r": reason, "detail": f"detail of {reason}", "p": payload})


def test_only_managers_and_admins_see_dead_letters(api, engine, clock):
    add_letter(engine, clock.now())
    for role in ("agent", "dispatcher", "technician"):
        for url in (URL, f"{URL}/1"):
            r = api.get(role, url)
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (role, url)
    for url in (URL, f"{URL}/1"):
        r = api.client.get(url)
        assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated"
    for role in ("manager", "admin"):
        r = api.get(role, URL)
        assert r.status_code == 200 and [d["id"] for d in r.json()] == [1], role
        assert api.get(role, f"{URL}/1").json()["reason"] == "schema_invalid"


def test_a_real_dead_letter_with_bytes_that_are_not_utf8(api, app, settings, clock):
    """The bridge refuses a payload with invalid UTF-8; the viewer gives the exact bytes back
    (base64) and a readable preview with U+FFFD for what is not UTF-8."""
    from server.devices.bridge import Bridge

    raw = b'{"v": 1, "msg_id": "\xff\xfe", "note": "\xe6\x9d\x8e\x1b[31m"}'
    bridge = Bridge(settings, app.state.sessionmaker, clock)
    outcome = bridge.handle(protocol.up_topic("hs-ghost", "positions"), raw)
    assert outcome.status == "dead_letter"
    [letter] = api.get("manager", URL).json()
    assert letter["reason"] == outcome.reason and letter["device_id"] == "hs-ghost"
    assert base64.b64decode(letter["payload_base64"]) == raw
    assert letter["payload_bytes"] == len(raw) and not letter["payload_truncated"]
    assert letter["valid_utf8"] is False and not letter["preview_truncated"]
    assert letter["preview"] == raw.decode("utf-8", errors="replace")
    assert "\ufffd\ufffd" in letter["preview"]
    assert "\u674e" in letter["preview"]  # 李, valid UTF-8, read as such
    assert letter["topic"] == "crewline/v1/devices/hs-ghost/up/positions"
    assert datetime.fromisoformat(letter["received_at"]) == clock.now()


def test_preview_is_cut_on_a_character_boundary():
    text_, cut = preview(b"a" + "é".encode() * 300)  # 601 bytes; byte 512 splits an é
    assert cut and text_ == "a" + "é" * 255 and "\ufffd" not in text_
    assert len(text_.encode()) <= PREVIEW_BYTES
    assert preview(b"ok") == ("ok", False)
    assert preview(b"\xff" * 3) == ("\ufffd" * 3, False)


def test_a_long_payload_is_capped_in_the_list_and_whole_in_the_detail(api, engine, clock):
    raw = bytes(range(256)) * 300  # 76,800 bytes: more than the 64 KiB a list carries
    letter_id = add_letter(engine, clock.now(), reason="oversize", payload=raw)
    [listed] = api.get("admin", URL).json()
    assert listed["payload_bytes"] == len(raw) and listed["payload_truncated"] is True
    assert base64.b64decode(listed["payload_base64"]) == raw[:protocol.MAX_PAYLOAD]
    assert listed["preview_truncated"] is True
    full = api.get("admin", f"{URL}/{letter_id}").json()
    assert base64.b64decode(full["payload_base64"]) == raw and not full["payload_truncated"]
    r = api.get("admin", f"{URL}/{letter_id + 1}")
    assert r.status_code == 404 and r.json()["error"]["field"] == "letter_id"


def test_filters_and_paging_newest_first(api, engine, clock):
    now = clock.now()
    a1 = add_letter(engine, now - timedelta(days=3), device_id="hs-a", reason="schema_invalid")
    b1 = add_letter(engine, now - timedelta(days=2), device_id="hs-b", reason="malformed_json")
    a2 = add_letter(engine, now - timedelta(days=1), device_id="hs-a", reason="malformed_json")
    none = add_letter(engine, now - timedelta(hours=1), device_id=None, reason="bad_topic",
                      topic="nonsense/topic")
    a3 = add_letter(engine, now, device_id="hs-a", reason="revoked_device")

    def listed(**params) -> list[int]:
        r = api.get("manager", URL, params=params)
        assert r.status_code == 200, r.text
        return [d["id"] for d in r.json()]

    assert listed() == [a3, none, a2, b1, a1]
    assert listed(device_id="hs-a") == [a3, a2, a1]
    assert listed(reason="malformed_json") == [a2, b1]
    assert listed(device_id="hs-a", reason="malformed_json") == [a2]
    assert listed(since=(now - timedelta(days=1)).isoformat()) == [a3, none, a2]
    assert listed(since="2026-01-05T16:00:00+08:00") == [a3]  # = now, another offset
    assert listed(since="2026-01-05T15:00:00+08:00") == [a3, none]
    assert listed(device_id="hs-nobody") == []
    # paging: before_id = the last id of the previous page
    assert listed(limit=2) == [a3, none]
    assert listed(limit=2, before_id=none) == [a2, b1]
    assert listed(limit=2, before_id=b1) == [a1]
    assert listed(limit=2, before_id=a1) == []
    assert listed(device_id="hs-a", limit=1, before_id=a3) == [a2]


@pytest.mark.parametrize(("params", "field"), [
    ({"limit": 0}, "limit"),
    ({"limit": 201}, "limit"),
    ({"limit": "many"}, "limit"),
    ({"before_id": 0}, "before_id"),
    ({"since": "yesterday"}, "since"),
    ({"since": "2026-01-05T08:00:00"}, "since"),  # no UTC offset: ambiguous
    ({"reason": "Not A Reason"}, "reason"),
    ({"device_id": "x" * 65}, "device_id"),
])
def test_bad_filters_are_json_422_naming_the_field(api, params, field):
    r = api.get("manager", URL, params=params)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == field and error["code"] in ("validation_error", "invalid_input")
    assert error["message"]


def test_bad_letter_id_is_422(api):
    r = api.get("admin", f"{URL}/abc")
    assert r.status_code == 422 and r.json()["error"]["field"] == "letter_id"


def _cli(settings, tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = cli_env(CREWLINE_DATABASE_URL=settings.database_url, CREWLINE_ENV="test",
                  COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "server.cli", "devices", "dead-letters", *args],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)


def test_the_cli_lists_dead_letters_without_letting_a_payload_drive_the_terminal(
        engine, settings, clock, tmp_path):
    hostile = b'\x1b]0;owned\x07\x1b[2J[red]markup[/red] \xff end'
    add_letter(engine, clock.now() - timedelta(minutes=5), device_id="hs-a",
               reason="malformed_json", payload=b'{"fine": true}')
    evil = add_letter(engine, clock.now(), device_id="hs-b", reason="schema_invalid",
                      payload=hostile)
    proc = _cli(settings, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout
    assert "\\x1b]0;owned\\x07" in proc.stdout and "[red]markup[/red]" in proc.stdout
    assert proc.stdout.index("hs-b") < proc.stdout.index("hs-a")  # newest first
    assert "schema_invalid" in proc.stdout and "malformed_json" in proc.stdout

    proc = _cli(settings, tmp_path, "--reason", "malformed_json", "--json")
    assert proc.returncode == 0, proc.stderr
    [line] = proc.stdout.strip().splitlines()
    assert base64.b64decode(json.loads(line)["payload_base64"]) == b'{"fine": true}'

    c1 = "\u009b2J\u009d52;c;aGk=\u202e".encode()  # C1 controls and a bidi override, as UTF-8
    bidi = add_letter(engine, clock.now(), device_id="hs-c", reason="malformed_json",
                      payload=c1)
    proc = _cli(settings, tmp_path, "--device", "hs-c", "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.isascii()
    [line] = proc.stdout.strip().splitlines()
    assert json.loads(line)["id"] == bidi and json.loads(line)["preview"] == c1.decode()

    proc = _cli(settings, tmp_path, "--id", str(evil))
    assert proc.returncode == 0 and "\x1b" not in proc.stdout
    assert base64.b64encode(hostile).decode() in proc.stdout.replace("\n", "")

    proc = _cli(settings, tmp_path, "--id", str(evil + 100))
    assert proc.returncode == 1 and f"no dead letter {evil + 100}" in proc.stderr
    proc = _cli(settings, tmp_path, "--since", "last week")
    assert proc.returncode == 2 and "--since" in proc.stderr
