"""The dispatcher's map console end to end: headless Chromium against a real `crewline serve`,
PostgreSQL with the Helsinki road graph, and positions posted as a handset would.

Screenshots go to var/screenshots/ (gitignored) for a person to look at.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.server.dispatch_support import import_roads_cli
from tests.web.conftest import PASSWORD
from tests.web.test_desk_e2e import fonts_used

pytestmark = pytest.mark.slow
expect = pytest.importorskip("playwright.sync_api").expect
expect.set_options(timeout=15_000)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
# inside the bundled extract (24.935–24.953 E, 60.164–60.179 N), away from other tests' spots
TICKET = (24.9462, 60.1668)
CREW_START = (24.9425, 60.1672)


def shot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


@pytest.fixture(scope="module")
def roads(pg_url):
    proc = import_roads_cli(pg_url)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_console_laid_out(page) -> None:
    """The three columns do not overlap, the legend sits inside the map, nothing overflows."""
    problems = page.evaluate("""() => {
      const r = (s) => document.querySelector(s).getBoundingClientRect();
      const out = [];
      const cols = ["#queue-panel", "#map-panel", "#detail-panel"].map((s) => [s, r(s)]);
      for (let i = 0; i < cols.length; i++) for (let j = i + 1; j < cols.length; j++) {
        const [a, p] = cols[i], [b, q] = cols[j];
        if (p.left < q.right - 1 && q.left < p.right - 1 && p.top < q.bottom - 1 && q.top < p.bottom - 1)
          out.push(`${a} overlaps ${b}`);
      }
      const m = r("#map-panel"), l = r("#legend");
      if (l.left < m.left || l.right > m.right || l.top < m.top || l.bottom > m.bottom)
        out.push("legend outside map");
      for (const s of ["#queue-panel", "#detail-panel"]) {
        const el = document.querySelector(s);
        if (el.scrollWidth > el.clientWidth + 1) out.push(`${s} overflows sideways`);
      }
      const header = r("header"), footer = r("footer");
      for (const [a, p] of cols) {
        if (p.top < header.bottom - 1 || p.bottom > footer.top + 1) out.push(`${a} under header/footer`);
      }
      if (document.documentElement.scrollWidth > window.innerWidth) out.push("horizontal scroll");
      return out;
    }""")
    assert problems == []


def sign_in(page, base: str, username: str) -> None:
    page.goto(base + "/dispatch")
    expect(page.locator("#login-username")).to_be_focused()
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("#console-view")).to_be_visible()
    expect(page.locator("#live-state")).to_have_attribute("data-state", "on")


def _countdown_seconds(text: str) -> int:
    m = re.search(r"(?:(\d+):)?(\d+):(\d\d)", text)
    assert m, text
    h, mm, ss = (int(v or 0) for v in m.groups())
    return h * 3600 + mm * 60 + ss


def test_dispatcher_assigns_from_suggestions_and_watches_the_crew_arrive(
        live_server, new_page, desk_users, roads) -> None:
    name = f"Crew E2E {uuid.uuid4().hex[:6]}"
    crew = live_server.call("manager", "POST", "/api/v1/crews", json={
        "name": name, "skills": ["water_main"], "shift": "on_shift", "capacity": 1})
    now = datetime.now(UTC)
    live_server.call("dispatcher", "POST", f"/api/v1/crews/{crew['id']}/positions", json={
        "fixes": [{"lon": CREW_START[0], "lat": CREW_START[1], "at": now.isoformat()}]})

    page = new_page("en-US")
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    sign_in(page, live_server.url, desk_users["dispatcher"])

    # an agent on the phone, at the desk in another browser: looks the caller up and logs the
    # ticket without the mouse; it appears in the dispatcher's queue live, its countdown running
    suffix = uuid.uuid4().int % 10**8
    mobile = f"136{suffix:08d}"
    live_server.call("agent", "POST", "/api/v1/customers", json={
        "account_no": f"E-{suffix:08d}", "name": "张敏", "phones": [mobile],
        "preferred_language": "zh-CN", "sms_consent": True,
        "service_points": [{"address": "Kluuvikatu 3", "location": {"lon": TICKET[0], "lat": TICKET[1]}}]})
    desk = new_page("en-US")
    desk.goto(live_server.url)
    desk.keyboard.type(desk_users["agent"])
    desk.keyboard.press("Tab")
    desk.keyboard.type(PASSWORD)
    desk.keyboard.press("Enter")
    expect(desk.locator("#lookup-phone")).to_be_focused()
    desk.keyboard.type(f"{mobile[:3]} {mobile[3:7]} {mobile[7:]}")
    desk.keyboard.press("Enter")
    expect(desk.locator("#lookup-results .customer")).to_contain_text("张敏")
    expect(desk.locator("#category-choices input[value=repair]")).to_be_focused()
    desk.keyboard.press("Tab")
    desk.keyboard.type("管道漏水 pipe leak (console e2e)")
    desk.keyboard.press("Enter")
    expect(desk.locator("#created")).to_contain_text(re.compile(r"CL-\d{7}"))
    number = re.search(r"CL-\d{7}", desk.locator("#created").inner_text()).group(0)
    ticket = {"id": int(number[3:]), "number": number}
    item = page.locator(f'#queue li[data-id="{ticket["id"]}"]')
    expect(item).to_contain_text(ticket["number"])
    countdown = item.locator(".countdown")
    expect(countdown).to_have_text(re.compile(r"Assign · [\d:]+ left"))
    first = _countdown_seconds(countdown.inner_text())
    page.wait_for_timeout(2100)
    assert 1 <= first - _countdown_seconds(countdown.inner_text()) <= 4
    assert page.evaluate(f"window.crewlineConsole.markers.has({ticket['id']})")

    # keyboard: Alt+Q to the queue, arrows to our ticket, Enter opens it with suggestions
    page.keyboard.press("Alt+KeyQ")
    for _ in range(60):
        if page.evaluate("document.activeElement.closest('li')?.dataset.id") == str(ticket["id"]):
            break
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    row = page.locator(f'#detail tr[data-crew="{crew["id"]}"]')
    expect(row).to_contain_text(name)
    expect(row).to_contain_text(re.compile(r"\d+ min"))
    expect(row).to_contain_text(re.compile(r"\d+ m|\d\.\d km"))
    expect(page.locator("#detail")).to_contain_text("Skill needed: Water main")
    assert page.evaluate("window.crewlineConsole.routes.getLayers().length") >= 1
    row.locator("button.assign").hover()  # route preview of this crew only
    assert page.evaluate("window.crewlineConsole.routes.getLayers().length") == 1
    assert_console_laid_out(page)
    page.wait_for_timeout(400)  # a zoom animation hides the crew canvas while it runs
    shot(page, "dispatch-suggestions-en")

    # one click assigns; the queue and the detail follow (live, not by reloading)
    row.locator("button.assign").click()
    expect(page.locator("#detail-message")).to_have_text(f"{ticket['number']} assigned to {name}.")
    expect(item.locator(".badge.status-assigned")).to_be_visible()
    expect(page.locator("#detail")).to_contain_text(f"Assigned to {name}")
    expect(countdown).to_have_text(re.compile(r"Arrive · [\d:]+ left"))

    # the crew accepts and drives there: positions as a handset posts them, 10 s apart
    path = f"/api/v1/tickets/{ticket['id']}/transitions"
    for to in ("accepted", "en_route"):
        live_server.call("dispatcher", "POST", path, json={"to": to})
    expect(item.locator(".badge.status-en_route")).to_be_visible()
    steps = 6
    for i in range(1, steps + 1):
        f = i / steps
        lon = CREW_START[0] + (TICKET[0] - CREW_START[0]) * f
        lat = CREW_START[1] + (TICKET[1] - CREW_START[1]) * f
        live_server.call("dispatcher", "POST", f"/api/v1/crews/{crew['id']}/positions", json={
            "fixes": [{"lon": lon, "lat": lat, "heading_deg": 100, "speed_mps": 6,
                       "at": (now + timedelta(seconds=10 * i)).isoformat()}]})
        page.wait_for_function(
            f"() => Math.abs(window.crewlineConsole.crews.crews.get({crew['id']})?.lon - {lon}) < 1e-6")
        if i == 3:
            shot(page, "dispatch-en-route-en")
    crew_on_map = page.evaluate(f"window.crewlineConsole.crews.crews.get({crew['id']})")
    assert crew_on_map["heading"] == 100 and crew_on_map["status"] == "on_site"
    expect(item.locator(".badge.status-on_site")).to_be_visible()
    expect(page.locator("#detail")).to_contain_text(re.compile(r"arrived \d"))
    expect(countdown).to_have_text(re.compile(r"Resolve · [\d:]+ left"))

    # 中文: every label switches, CJK glyphs come from Noto Sans CJK
    page.keyboard.press("Alt+KeyG")
    expect(page.locator("#queue-title")).to_contain_text("工单队列")
    expect(countdown).to_have_text(re.compile(r"处理 · 剩余 [\d:]+"))
    expect(item.locator(".badge.status-on_site")).to_have_text("已到场")
    assert any("CJK" in f for f in fonts_used(page, "#queue-title span"))
    assert_console_laid_out(page)
    shot(page, "dispatch-on-site-zh")
    assert not page.js_errors and not console_errors, (page.js_errors, console_errors)


def test_refusals_are_shown_and_roles_are_enforced(live_server, new_page, desk_users, roads):
    """A crew taken between showing the suggestion and the click: the server's 409 is shown.
    An agent may not use the map (403 from the API, shown on the page)."""
    name = f"Crew Busy {uuid.uuid4().hex[:6]}"
    crew = live_server.call("manager", "POST", "/api/v1/crews", json={
        "name": name, "skills": ["water_main"], "shift": "on_shift", "capacity": 1})
    live_server.call("dispatcher", "POST", f"/api/v1/crews/{crew['id']}/positions", json={
        "fixes": [{"lon": CREW_START[0], "lat": CREW_START[1], "at": datetime.now(UTC).isoformat()}]})
    tickets = [live_server.call("agent", "POST", "/api/v1/tickets", json={
        "category": "repair", "priority": "normal", "description": f"漏水 leak {i}",
        "location": {"lon": TICKET[0] + 0.0004 * i, "lat": TICKET[1]}})["ticket"] for i in (1, 2)]

    page = new_page("zh-CN")
    sign_in(page, live_server.url, desk_users["dispatcher"])
    page.locator(f'#queue li[data-id="{tickets[0]["id"]}"] button').click()
    row = page.locator(f'#detail tr[data-crew="{crew["id"]}"]')
    expect(row).to_contain_text(name)
    # meanwhile another dispatcher gives the crew its one job
    live_server.call("dispatcher", "POST", f"/api/v1/tickets/{tickets[1]['id']}/assignment",
                     json={"crew_id": crew["id"]})
    row.locator("button.assign").click()
    expect(page.locator("#page-error")).to_contain_text(f"crew {name} already holds 1 of 1 jobs")
    shot(page, "dispatch-refusal-zh")

    agent = new_page("en-US")
    agent.goto(live_server.url + "/dispatch")
    agent.fill("#login-username", desk_users["agent"])
    agent.fill("#login-password", PASSWORD)
    agent.press("#login-password", "Enter")
    expect(agent.locator("#page-error")).to_contain_text("may not")
