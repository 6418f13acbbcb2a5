"""The Devices page's dead letters (uplink payloads the bridge refused) in headless Chromium
against a real `crewline serve`: a manager sees them newest first with their preview, filters by
device, reason and time, pages with "load more", opens one (the reason in words, the whole
payload as base64, copied to the clipboard); a hostile payload is shown as text, never as HTML;
dispatchers and agents do not see the section, and a 403 hides it; both languages."""

from __future__ import annotations

import base64
import re
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, delete
from sqlalchemy.orm import Session

from server.models import DeviceDeadLetter
from tests.web.test_devices_page import shot, sign_in

pytestmark = pytest.mark.slow
expect = pytest.importorskip("playwright.sync_api").expect
expect.set_options(timeout=15_000)
BROWSER_TZ = ZoneInfo("Asia/Shanghai")  # the tests' browser contexts (tests/web/conftest.py)
HOSTILE = (b'<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
           b'<b id="bold">\xe6\x9d\x8e</b>\xff')


def add_letters(pg_url: str, rows: list[dict]) -> list[int]:
    """Insert dead letters as the bridge writes them, in order (ids grow with the list)."""
    engine = create_engine(pg_url)
    ids = []
    with Session(engine) as session:
        for row in rows:
            letter = DeviceDeadLetter(
                received_at=row["at"], device_id=row["device_id"], reason=row["reason"],
                topic=row.get("topic", f"crewline/v1/devices/{row['device_id']}/up/positions"),
                detail=row.get("detail", f"detail of {row['reason']}"), payload=row["payload"])
            session.add(letter)
            session.flush()
            ids.append(letter.id)
        session.commit()
    engine.dispose()
    return ids


def letter_ids(page) -> list[int]:
    return [int(i) for i in page.locator("#dl-rows tr[data-letter]").evaluate_all(
        "(rows) => rows.map((r) => r.dataset.letter)")]


@pytest.fixture
def letters(pg_url) -> dict:
    """57 letters: 55 of handset A a minute apart (three hours ago), then two of handset B: a
    hostile payload (HTML in payload, topic and detail) and, newest, a revoked handset's."""
    tag = uuid.uuid4().hex[:8]
    a, b = f"hs-dl-{tag}-a", f"hs-dl-{tag}-b"
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    base = now - timedelta(hours=3)
    rows = [{"at": base + timedelta(minutes=i), "device_id": a, "reason": "schema_invalid",
             "payload": f'{{"v": 1, "n": {i}}}'.encode()} for i in range(55)]
    rows.append({"at": now - timedelta(minutes=1), "device_id": b, "reason": "malformed_json",
                 "payload": HOSTILE, "detail": '<img src=x onerror="window.__pwned = 3">',
                 "topic": f"crewline/v1/devices/{b}/up/<i>x</i>"})
    rows.append({"at": now, "device_id": b, "reason": "revoked_device",
                 "payload": '{"v": 1, "note": "李"}'.encode()})
    ids = add_letters(pg_url, rows)
    yield {"a": a, "b": b, "base": base, "now": now, "ids": ids, "a_ids": ids[:55], "hostile": ids[55],
           "newest": ids[56]}
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(delete(DeviceDeadLetter).where(DeviceDeadLetter.device_id.in_([a, b])))
    engine.dispose()


def test_a_manager_reads_filters_and_opens_dead_letters(live_server, new_page, desk_users,
                                                         letters, pg_url) -> None:
    page = new_page("zh-CN")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    sign_in(page, live_server, desk_users["manager"])  # 经理 王伟: zh-CN
    section = page.locator("#dl-section")
    expect(section).to_be_visible()
    expect(page.locator("#dl-title")).to_have_text("死信")
    expect(page.locator(".dl-table thead")).to_contain_text("收到时间")

    # newest first: a page of 50, the newest (revoked handset) on top, then the hostile one
    rows = page.locator("#dl-rows tr[data-letter]")
    expect(rows).to_have_count(50)
    ids = letter_ids(page)
    assert ids[:2] == [letters["newest"], letters["hostile"]]
    assert ids == sorted(ids, reverse=True)
    top = rows.nth(0)
    expect(top).to_contain_text(letters["b"])
    expect(top).to_contain_text("终端已吊销")
    expect(top.locator(".dl-snippet")).to_have_text('{"v": 1, "note": "李"}')
    received = letters["now"].astimezone(BROWSER_TZ)
    stamp = top.locator("time")
    assert datetime.fromisoformat(stamp.get_attribute("datetime")).tzinfo is not None
    # the user's locale: zh-CN writes y/m/d and a 24-hour clock
    expect(stamp).to_have_text(re.compile(rf"^{received.year}/{received.month}/{received.day} "))
    expect(page.locator("#dl-more")).to_be_visible()

    # the hostile payload is text: no element was made from it, nothing ran
    hostile = page.locator(f'#dl-rows tr[data-letter="{letters["hostile"]}"]')
    expect(hostile.locator(".dl-snippet")).to_have_text(
        HOSTILE.decode("utf-8", errors="replace"))
    expect(hostile).to_contain_text("不是 JSON")
    expect(hostile).to_contain_text(f"{len(HOSTILE)} 字节")
    assert hostile.locator("td").nth(2).get_attribute("title") == \
        '<img src=x onerror="window.__pwned = 3">'
    assert page.locator("#dl-section script, #dl-section img, #dl-section b").count() == 0
    assert page.evaluate("window.__pwned") is None
    shot(page, "devices-dead-letters-zh")

    # filter by device: only handset B's two
    page.fill("#dl-device", letters["b"])
    page.click("#dl-apply")
    expect(rows).to_have_count(2)
    assert letter_ids(page) == [letters["newest"], letters["hostile"]]
    expect(page.locator("#dl-more")).to_be_hidden()
    # … and by reason
    page.select_option("#dl-reason", "malformed_json")
    page.click("#dl-apply")
    expect(rows).to_have_count(1)
    assert letter_ids(page) == [letters["hostile"]]

    # the detail: reason in words, the whole payload as base64, copied; still text only
    hostile.get_by_role("button", name=f"死信 {letters['hostile']} 的详情").click()
    dialog = page.locator("#dl-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#dl-detail-title")).to_have_text(f"死信 {letters['hostile']}")
    expect(page.locator("#dl-base64")).to_have_value(base64.b64encode(HOSTILE).decode())
    expect(page.locator("#dl-preview")).to_have_text(HOSTILE.decode("utf-8", errors="replace"))
    expect(page.locator("#dl-why")).to_have_text("载荷不是 UTF-8 JSON，根本无法作为消息读取。")
    expect(page.locator("#dl-detail")).to_contain_text("不是有效的 UTF-8")
    expect(page.locator("#dl-detail")).to_contain_text('<img src=x onerror="window.__pwned = 3">')
    expect(page.locator("#dl-detail")).to_contain_text(f"crewline/v1/devices/{letters['b']}/up/<i>x</i>")
    assert page.locator("#dl-dialog script, #dl-dialog img, #dl-dialog b, #dl-dialog i").count() == 0
    page.click("#dl-copy")
    expect(page.locator("#dl-copy-status")).to_have_text("已复制。")
    assert page.evaluate("navigator.clipboard.readText()") == base64.b64encode(HOSTILE).decode()
    shot(page, "devices-dead-letter-detail-zh")
    # English: headings, the reason and its explanation follow the switch
    page.keyboard.press("Alt+KeyG")
    expect(page.locator("#dl-detail-title")).to_have_text(f"Dead letter {letters['hostile']}")
    expect(page.locator("#dl-why")).to_have_text(
        "The payload is not UTF-8 JSON: it could not be read as a message at all.")
    shot(page, "devices-dead-letter-detail-en")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(hostile.get_by_role("button")).to_be_focused()
    assert page.evaluate("window.__pwned") is None
    expect(page.locator("#dl-title")).to_have_text("Dead letters")
    expect(page.locator(".dl-table thead")).to_contain_text("Received")
    expect(hostile).to_contain_text("Not JSON")
    expect(hostile).to_contain_text(f"{len(HOSTILE)} B")

    # handset A: 55 letters, 50 + "load more" 5, one order across the pages
    page.fill("#dl-device", letters["a"])
    page.select_option("#dl-reason", "")
    page.click("#dl-apply")
    expect(rows).to_have_count(50)
    page.click("#dl-more")
    expect(rows).to_have_count(55)
    expect(page.locator("#dl-more")).to_be_hidden()
    assert letter_ids(page) == sorted(letters["a_ids"], reverse=True)
    expect(page.locator("#dl-status")).to_have_text("55 shown")
    # since: the browser's local time; only the last five minutes of A's letters
    since = (letters["base"] + timedelta(minutes=50)).astimezone(BROWSER_TZ)
    page.fill("#dl-since", since.strftime("%Y-%m-%dT%H:%M"))
    page.click("#dl-apply")
    expect(rows).to_have_count(5)
    assert letter_ids(page) == sorted(letters["a_ids"][50:], reverse=True)
    expect(page.locator("#dl-more")).to_be_hidden()
    shot(page, "devices-dead-letters-en")

    # a letter deleted meanwhile (retention): the detail says so
    gone = letters["a_ids"][54]
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(delete(DeviceDeadLetter).where(DeviceDeadLetter.id == gone))
    engine.dispose()
    page.locator(f'#dl-rows tr[data-letter="{gone}"]').get_by_role("button").click()
    expect(page.locator("#dl-detail-error")).to_contain_text(f"no dead letter {gone}")
    expect(page.locator("#dl-base64")).to_have_value("")
    page.click("#dl-close")
    expect(dialog).to_be_hidden()

    # empty states, in both languages
    page.fill("#dl-device", "hs-nobody-" + uuid.uuid4().hex[:6])
    page.fill("#dl-since", "")
    page.click("#dl-apply")
    empty = page.locator("#dl-rows tr.empty")
    expect(empty).to_have_text("No dead letter matches these filters.")
    expect(rows).to_have_count(0)
    page.keyboard.press("Alt+KeyG")
    expect(empty).to_have_text("没有符合这些条件的死信。")
    assert not page.js_errors


@pytest.mark.parametrize("role", ["dispatcher", "agent"])
def test_other_roles_do_not_see_dead_letters(live_server, new_page, desk_users, letters,
                                             role) -> None:
    page = new_page("en-US")
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "dead-letters" in r.url else None)
    sign_in(page, live_server, desk_users[role])
    if role == "dispatcher":  # the handsets, but no dead letters
        expect(page.locator("tbody[data-tech]").first).to_be_visible()
    else:
        expect(page.locator("#page-error")).to_contain_text("Your role may not manage handsets")
    expect(page.locator("#dl-section")).to_be_hidden()
    expect(page.locator("#dl-rows tr")).to_have_count(0)
    page.keyboard.press("Alt+KeyG")
    expect(page.locator("#dl-section")).to_be_hidden()
    assert asked == []
    assert not page.js_errors


def test_a_refusal_hides_the_section(live_server, new_page, desk_users, letters) -> None:
    """Should the server refuse a manager (a role changed meanwhile), the section goes away
    quietly and the rest of the page works."""
    page = new_page("en-US")
    refused: list[str] = []

    def forbid(route):
        refused.append(route.request.url)
        route.fulfill(status=403, content_type="application/json",
                      body='{"error": {"code": "forbidden", "message": "not for your role"}}')

    page.route(re.compile(r"/api/v1/devices/dead-letters"), forbid)
    sign_in(page, live_server, desk_users["manager"])
    expect(page.locator("tbody[data-tech]").first).to_be_visible()
    expect(page.locator("#dl-section")).to_be_hidden()
    assert refused
    expect(page.locator("#page-error")).to_have_text("")
    assert not page.js_errors


def test_both_languages_have_every_dead_letter_string(live_server, new_page, desk_users) -> None:
    page = sign_in(new_page("en-US"), live_server, desk_users["manager"])
    found = page.evaluate("""import('/static/devices-i18n.js').then((m) => ({
      keys: m.DEVICE_KEYS, reasons: m.DL_REASONS }))""")
    en, zh = set(found["keys"]["en"]), set(found["keys"]["zh"])
    assert en == zh
    for reason in found["reasons"]:
        assert {f"dl.r.{reason}", f"dl.why.{reason}"} <= en, reason
    # every reason the bridge and the protocol write has its words
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    written = set(re.findall(r'ProtocolError\("(\w+)"', (root / "mobile_app/link/protocol.py").read_text()))
    bridge = (root / "server/devices/bridge.py").read_text()
    written |= set(re.findall(r'"(\w+_device)"', bridge)) | set(re.findall(
        r'letters\.append\(\(it, [\w.]+, "(\w+)"', bridge)) | set(re.findall(
        r'\[\(it, it\.t\.device_id, "(\w+)"', bridge))
    assert {"unknown_device", "revoked_device", "unsupported_kind", "unstorable"} <= written
    assert written == set(found["reasons"])
