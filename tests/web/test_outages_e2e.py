"""The outages page end to end: a dispatcher draws an area on the map, sees who it affects,
declares it, changes its ETR and restores it; another dispatcher's page and the dispatch map
follow live. Headless Chromium against a real `crewline serve`."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.web.conftest import PASSWORD
from tests.web.test_console_e2e import SCREENSHOTS, roads  # noqa: F401 - the road graph fixture

pytestmark = pytest.mark.slow
expect = pytest.importorskip("playwright.sync_api").expect
expect.set_options(timeout=15_000)
SHANGHAI = ZoneInfo("Asia/Shanghai")
SPOT = (24.9390, 60.1760)  # inside the extract, away from the other web tests' spots


def shot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def open_page(new_page, server, username: str, path: str, locale: str = "en-US"):
    page = new_page(locale)
    page.goto(server.url + path)
    page.fill("#login-username", username)
    page.fill("#login-password", PASSWORD)
    page.press("#login-password", "Enter")
    expect(page.locator("#console-view")).to_be_visible()
    expect(page.locator("#live-state")).to_have_attribute("data-state", "on")
    return page


def click_at(page, lon: float, lat: float) -> None:
    """Click the map where (lon, lat) is."""
    p = page.evaluate(f"(() => {{ const m = window.crewlineOutages.map; m.setView([{SPOT[1]}, {SPOT[0]}], 17,"
                      f" {{animate: false}}); const q = m.latLngToContainerPoint([{lat}, {lon}]);"
                      f" return [q.x, q.y]; }})()")
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + p[0], box["y"] + p[1])


def test_dispatcher_draws_declares_changes_etr_and_restores(live_server, new_page, desk_users,
                                                             roads) -> None:  # noqa: F811
    suffix = uuid.uuid4().int % 10**8
    live_server.call("agent", "POST", "/api/v1/customers", json={
        "account_no": f"O-{suffix:08d}", "name": "李雷", "phones": [f"137{suffix:08d}"],
        "preferred_language": "zh-CN", "sms_consent": True,
        "service_points": [{"address": "Mariankatu 9", "location": {"lon": SPOT[0], "lat": SPOT[1]}}]})

    page = open_page(new_page, live_server, desk_users["dispatcher"], "/outages")
    watcher = open_page(new_page, live_server, desk_users["manager"], "/dispatch", "zh-CN")
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "422" not in m.text else None)

    # draw a square of about 60 m around the service point
    page.click("#draw-toggle")
    d = 0.0005
    for dlon, dlat in ((-d, -d / 2), (d, -d / 2), (d, d / 2), (-d, d / 2)):
        click_at(page, SPOT[0] + dlon, SPOT[1] + dlat)
    expect(page.locator("#draw-hint")).to_contain_text("4 so far")
    count = page.locator("#preview .preview-count")
    expect(count).to_contain_text(re.compile(r"\d+ service points, \d+ customers, \d+ reachable by SMS"))
    assert int(count.get_attribute("data-customers")) >= 1

    # declaring without an ETR: the server's refusal sits next to the ETR field
    name = f"Mariankatu {suffix % 1000}"
    page.fill("#o-name", name)
    page.click("#declare-form button[type=submit]")
    expect(page.locator('[data-error-for~="etr"]')).to_contain_text("etr")
    # the browser runs in Asia/Shanghai (tests/web/conftest.py): its datetime-local is that zone's
    etr = (datetime.now(SHANGHAI) + timedelta(hours=3)).replace(second=0, microsecond=0)
    page.fill("#o-etr", etr.strftime("%Y-%m-%dT%H:%M"))
    page.click("#declare-form button[type=submit]")
    expect(page.locator("#declare-message")).to_contain_text(re.compile(r"OUT-?\S+ declared|declared"))
    item = page.locator("#outages li", has_text=name)
    expect(item).to_contain_text("Confirmed")
    expect(item).to_contain_text(re.compile(r"[1-9]\d* customers affected"))
    outage_id = int(item.get_attribute("data-id"))
    shot(page, "outages-declared-en")

    # the dispatch map of another user shows the area, live
    watcher.wait_for_function("() => window.crewlineConsole.outages.getLayers().length >= 1")

    # change the ETR
    later = etr + timedelta(hours=2)
    item.locator('input[type="datetime-local"]').fill(later.strftime("%Y-%m-%dT%H:%M"))
    item.locator("button.etr-save").click()
    item = page.locator("#outages li", has_text=name)
    expect(item).to_contain_text("ETR")
    body = live_server.call("dispatcher", "GET", f"/api/v1/outages/{outage_id}")
    assert datetime.fromisoformat(body["etr"]) == later.astimezone(UTC)
    assert body["etr_revision"] >= 1

    # restore: it leaves the open list, and the dispatch map drops its area
    page.locator("#outages li", has_text=name).locator('button[data-to="restored"]').click()
    expect(page.locator("#outages li", has_text=name)).to_have_count(0)
    assert live_server.call("dispatcher", "GET", f"/api/v1/outages/{outage_id}")["status"] == "restored"
    shot(watcher, "dispatch-after-restore-zh")
    assert not page.js_errors and not errors, (page.js_errors, errors)


def test_an_agent_sees_outages_but_may_not_declare(live_server, new_page, desk_users) -> None:
    page = open_page(new_page, live_server, desk_users["agent"], "/outages", "zh-CN")
    expect(page.locator("#list-title")).to_contain_text("Open outages")  # the user's language
    page.keyboard.press("Alt+KeyG")
    expect(page.locator("#list-title")).to_contain_text("进行中的停水停电")
    expect(page.locator("#draw-toggle")).to_have_text("绘制区域")
    page.click("#draw-toggle")
    box = page.locator("#map").bounding_box()
    for dx, dy in ((0.4, 0.4), (0.6, 0.4), (0.6, 0.6)):
        page.mouse.click(box["x"] + box["width"] * dx, box["y"] + box["height"] * dy)
    expect(page.locator("#preview .form-error")).to_contain_text("may not")
    shot(page, "outages-agent-zh")
