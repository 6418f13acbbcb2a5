"""The inspections page: a technician's day replayed on the map from the real inspections API
(GPS fixes as the handset posts them), with compliance and exceptions for the day."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.web.conftest import PASSWORD
from tests.web.test_outages_e2e import shot

pytestmark = pytest.mark.slow
expect = pytest.importorskip("playwright.sync_api").expect
expect.set_options(timeout=15_000)


def sign_in(page, server, username: str):
    page.goto(server.url + "/inspections")
    page.fill("#login-username", username)
    page.fill("#login-password", PASSWORD)
    page.press("#login-password", "Enter")
    expect(page.locator("#console-view")).to_be_visible()
    return page


def test_a_manager_replays_a_technicians_day(live_server, new_page, desk_users) -> None:
    tech_id = live_server.call("technician", "GET", "/api/v1/auth/me")["id"]
    crews = live_server.call("manager", "GET", "/api/v1/crews", params={"limit": 1000})
    crew = next((c for c in crews if any(m["user_id"] == tech_id for m in c["members"])), None)
    if crew is None:
        crew = live_server.call("manager", "POST", "/api/v1/crews", json={
            "name": f"Inspect {uuid.uuid4().hex[:6]}", "skills": ["valve"], "shift": "on_shift",
            "members": [tech_id]})
    # a walk with a bend (the simplified track keeps the corner), a few minutes ago — all on one
    # local day of the browser (Asia/Shanghai): just after local midnight, on the day before
    zone = ZoneInfo("Asia/Shanghai")
    end = datetime.now(UTC)
    if (end - timedelta(minutes=20)).astimezone(zone).date() != end.astimezone(zone).date():
        end = datetime.combine(end.astimezone(zone).date(), datetime.min.time(), zone) \
            - timedelta(minutes=1)
    day = end.astimezone(zone).date().isoformat()
    path = [(24.9400 + 0.0004 * i, 60.1700) for i in range(6)] + \
           [(24.9420, 60.1700 + 0.0004 * i) for i in range(1, 6)]
    live_server.call("technician", "POST", f"/api/v1/crews/{crew['id']}/positions", json={"fixes": [
        {"lon": lon, "lat": lat, "at": (end - timedelta(minutes=20 - i)).isoformat()}
        for i, (lon, lat) in enumerate(path)]})

    page = sign_in(new_page("zh-CN"), live_server, desk_users["manager"])
    expect(page.locator("#day-title")).to_have_text("巡检员的一天")  # the manager's language
    page.select_option("#i-tech", str(tech_id))
    page.fill("#i-date", day)
    page.click("#day-form button[type=submit]")
    expect(page.locator("#day-summary")).to_contain_text(re.compile(r"轨迹点 [3-9] 个"))
    expect(page.locator("#compliance")).to_contain_text("当天没有巡检任务")
    expect(page.locator("#exceptions")).to_contain_text("当天没有异常")
    track = page.evaluate("window.crewlineInspections.track")
    assert track[0] == [60.17, 24.94] and track[-1] == [60.172, 24.942]
    # replay: the marker walks the track to its end
    page.click("#replay-play")
    page.wait_for_function("() => { const s = window.crewlineInspections;"
                           " const p = s.marker.getLatLng(); const e = s.track[s.track.length - 1];"
                           " return p.lat === e[0] && p.lng === e[1]; }")
    expect(page.locator("#replay-time")).to_have_text(re.compile(r"\d+:\d\d:\d\d"))
    shot(page, "inspections-day-zh")
    # a dispatcher may read it too; an agent may not
    agent = sign_in(new_page("en-US"), live_server, desk_users["agent"])
    expect(agent.locator("#page-error")).to_contain_text("may not")
    assert not page.js_errors
