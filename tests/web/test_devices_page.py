"""The console's Devices page in headless Chromium against a real `crewline serve`: a dispatcher
pairs a technician's handset with the one-time code and QR code shown on the page, the handset
redeems it over HTTP as the app does, the page sees the new handset (its presence, and a
"re-pair needed" badge when its resync can no longer be satisfied), and the
dispatcher revokes it after a confirmation; an abandoned code is voided; roles enforced; both
languages, screenshots under var/screenshots/."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.web.conftest import PASSWORD
from tests.web.test_console_e2e import SCREENSHOTS
from tests.web.test_desk_e2e import fonts_used

pytestmark = pytest.mark.slow
expect = pytest.importorskip("playwright.sync_api").expect
expect.set_options(timeout=15_000)
CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")


@pytest.fixture(autouse=True)
def broker_files(live_server) -> None:
    """Pairing writes the handset's MQTT password into the server's var/mqtt (mosquitto_passwd
    checks that the broker's user could reach it): the server's temp directory must be searchable."""
    live_server.log.parent.chmod(0o755)


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in(page, server, username: str):
    page.goto(server.url + "/devices")
    page.fill("#login-username", username)
    page.fill("#login-password", PASSWORD)
    page.press("#login-password", "Enter")
    expect(page.locator("#console-view")).to_be_visible()
    return page


def me(server, role: str) -> dict:
    return httpx.get(server.url + "/api/v1/auth/me", headers=server.token(role), timeout=10).json()


def device(server, device_id: str) -> dict:
    return server.call("dispatcher", "GET", f"/api/v1/devices/{device_id}")


def no_overlap(page, selectors: list[str]) -> bool:
    return page.evaluate("""(sels) => {
      const boxes = sels.map((s) => document.querySelector(s).getBoundingClientRect());
      for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i], b = boxes[j];
        if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1)
          return false;
      }
      return document.documentElement.scrollWidth <= window.innerWidth;
    }""", selectors)


def test_pair_a_handset_from_the_page_then_revoke_it(live_server, new_page, desk_users,
                                                      pg_url) -> None:
    tech = me(live_server, "technician")
    page = sign_in(new_page("en-US"), live_server, desk_users["dispatcher"])
    expect(page.locator("nav.pages a[aria-current=page]")).to_have_text("Handsets")
    group = page.locator(f'tbody[data-tech="{tech["id"]}"]')
    expect(group).to_contain_text(tech["username"])

    # keyboard: Alt+F, narrow the list, Tab to "Pair a handset", Enter
    page.keyboard.press("Alt+KeyF")
    expect(page.locator("#dev-filter")).to_be_focused()
    page.keyboard.type(tech["username"])
    expect(page.locator("tbody[data-tech]")).to_have_count(1)
    pair_button = page.locator(f'button[data-pair="{tech["id"]}"]')
    for _ in range(3):
        page.keyboard.press("Tab")
    expect(pair_button).to_be_focused()
    page.keyboard.press("Enter")

    panel = page.locator("#pair-panel")
    expect(panel).to_be_visible()
    expect(page.locator("#pair-title")).to_be_focused()
    expect(page.locator("#pair-code")).to_have_text(CODE)
    code = page.locator("#pair-code").inner_text()
    expect(page.locator("#pair-countdown")).to_have_text(re.compile(r"^Expires in (10:00|9:[0-5]\d)$"))
    qr = page.locator("#pair-qr")
    expect(qr).to_be_visible()
    assert qr.get_attribute("src").startswith("data:image/svg+xml")
    assert page.evaluate("document.querySelector('#pair-qr').naturalWidth") > 0
    assert qr.bounding_box()["width"] >= 200
    assert no_overlap(page, [".pair-text", "#pair-qr"])
    shot(page, "devices-pair-en")
    page.keyboard.press("Alt+KeyG")
    expect(page.locator("#pair-title")).to_have_text(f"为 {tech['full_name'] or tech['username']} 配对终端")
    expect(page.locator("#pair-countdown")).to_contain_text("后过期")
    assert any("CJK" in f for f in fonts_used(page, "#pair-title"))
    assert no_overlap(page, [".pair-text", "#pair-qr"])
    shot(page, "devices-pair-zh")

    # the handset redeems the code read off the screen, as mobile_app does
    r = httpx.post(live_server.url + "/api/v1/devices/pair",
                   json={"code": code, "name": "Van 7 phone"}, timeout=15)
    assert r.status_code == 201, r.text
    device_id = r.json()["device"]["id"]
    status = page.locator("#pair-status")
    expect(status).to_have_class(re.compile(r"\bused\b"))
    expect(status).to_have_text(f"已配对：Van 7 phone（{device_id}）。")
    expect(page.locator("#pair-code")).to_be_hidden()
    expect(qr).to_be_hidden()
    row = group.locator(f'tr[data-device="{device_id}"]')
    expect(row).to_contain_text("Van 7 phone")
    expect(row).to_contain_text("从未连接")
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(pair_button).to_be_focused()

    # presence as the MQTT bridge records it
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE devices SET presence = 'online', presence_at = now() WHERE id = :id"),
                     {"id": device_id})
    engine.dispose()
    page.click("#dev-refresh")
    expect(row.locator(".presence-online")).to_contain_text("在线，自")
    expect(row.locator(".needs-repair")).to_have_count(0)
    # a resync the server can never satisfy (downlink pruned), as downlink.record_ack flags it
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE devices SET resync_stuck_at = now(), resync_stuck_seq = 0 "
                          "WHERE id = :id"), {"id": device_id})
    engine.dispose()
    assert device(live_server, device_id)["link_state"] == "needs_repair"
    page.click("#dev-refresh")
    badge = row.locator(".needs-repair")
    expect(badge).to_have_text("需要重新配对")
    expect(badge).to_have_attribute("title", re.compile("丢失了本地链路状态.*请重新配对"))

    # revoke: Escape and Cancel leave it alone; Revoke revokes it
    revoke = row.get_by_role("button", name=f"吊销 {tech['full_name'] or tech['username']} 的 Van 7 phone")
    revoke.focus()
    page.keyboard.press("Enter")
    dialog = page.locator("#revoke-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#revoke-cancel")).to_be_focused()
    expect(page.locator("#revoke-text")).to_contain_text(device_id)
    shot(page, "devices-revoke-zh")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    revoke.click()
    page.click("#revoke-cancel")
    expect(dialog).to_be_hidden()
    assert device(live_server, device_id)["revoked_at"] is None
    page.keyboard.press("Alt+KeyG")
    expect(badge).to_have_text("Re-pair needed")
    expect(badge).to_have_attribute("title", re.compile("lost its local link state.*Pair it again"))
    revoke = row.get_by_role("button", name=re.compile("^Revoke .*Van 7 phone"))
    revoke.click()
    expect(page.locator("#revoke-text")).to_contain_text('Revoke "Van 7 phone"')
    shot(page, "devices-revoke-en")
    page.click("#revoke-confirm")
    expect(dialog).to_be_hidden()
    expect(row).to_have_class(re.compile(r"\brevoked\b"))
    expect(row.locator("button")).to_have_count(0)
    expect(page.locator("#dev-notice")).to_have_text('"Van 7 phone" was revoked.')
    assert device(live_server, device_id)["revoked_at"] is not None
    assert no_overlap(page, [".toolbar", ".dev-table"])
    shot(page, "devices-list-en")
    page.keyboard.press("Alt+KeyG")
    expect(row).to_have_class(re.compile(r"\brevoked\b"))
    expect(page.locator("#dev-notice")).to_have_text("“Van 7 phone”已吊销。")
    shot(page, "devices-list-zh")
    # hidden with "show revoked" off
    page.uncheck("#dev-revoked")
    expect(row).to_have_count(0)
    # the same code again: refused (once only)
    r = httpx.post(live_server.url + "/api/v1/devices/pair", json={"code": code, "name": "Again"},
                   timeout=15)
    assert r.status_code == 403
    assert not page.js_errors


def test_a_closed_or_expired_code_disappears(live_server, new_page, desk_users, pg_url) -> None:
    tech = me(live_server, "technician")
    page = sign_in(new_page("zh-CN"), live_server, desk_users["manager"])
    pair_button = page.locator(f'button[data-pair="{tech["id"]}"]')
    pair_button.click()
    expect(page.locator("#pair-code")).to_have_text(CODE)
    first = page.locator("#pair-code").inner_text()
    # the code expires (as if ten minutes passed): the page hears it from the code's state
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE device_pairing_codes SET expires_at = now() "
                          "WHERE used_at IS NULL AND user_id = :u"), {"u": tech["id"]})
    expect(page.locator("#pair-status")).to_have_class(re.compile(r"\bexpired\b"))
    expect(page.locator("#pair-status")).to_contain_text("已过期")
    expect(page.locator("#pair-code")).to_be_hidden()
    expect(page.locator("#pair-qr")).to_be_hidden()
    # a new code, then close the panel: the new code is voided at once
    page.click("#pair-again")
    expect(page.locator("#pair-code")).to_have_text(CODE)
    second = page.locator("#pair-code").inner_text()
    assert second != first
    expect(page.locator("#pair-qr")).to_be_visible()
    page.click("#pair-close")
    expect(page.locator("#pair-panel")).to_be_hidden()
    expect(pair_button).to_be_focused()
    with engine.connect() as conn:
        voided = conn.scalar(text("SELECT count(*) FROM device_pairing_codes WHERE user_id = :u "
                                  "AND used_at IS NULL AND expires_at > now()"), {"u": tech["id"]})
    engine.dispose()
    assert voided == 0
    for typed in (first, second):
        r = httpx.post(live_server.url + "/api/v1/devices/pair", json={"code": typed, "name": "x"},
                       timeout=15)
        assert r.status_code == 403 and r.json()["error"]["code"] == "pairing_refused"
    # both languages have the same strings
    keys = page.evaluate("import('/static/devices-i18n.js').then((m) => m.DEVICE_KEYS)")
    assert sorted(keys["en"]) == sorted(keys["zh"])
    assert not page.js_errors


@pytest.mark.parametrize(("role", "lang", "message"), [
    ("agent", "en-US", "Your role may not manage handsets"),
    ("technician", "zh-CN", "Your role may not manage handsets")])  # the user's language: en
def test_agents_and_technicians_are_refused(live_server, new_page, desk_users, role, lang,
                                            message) -> None:
    page = new_page(lang)
    page.goto(live_server.url + "/devices")
    page.fill("#login-username", desk_users[role])
    page.fill("#login-password", PASSWORD)
    page.press("#login-password", "Enter")
    expect(page.locator("#page-error")).to_contain_text(message)
    expect(page.locator("button[data-pair]")).to_have_count(0)
    page.keyboard.press("Alt+KeyG")
    expect(page.locator("#page-error")).to_contain_text("您的角色无权管理手持终端")
