"""The wall screen and the SMS log in headless Chromium against a real `crewline serve`: the
wall follows a new ticket live (no reload), both pages in both languages, roles enforced."""

from __future__ import annotations

import re

import pytest

from tests.web.conftest import PASSWORD
from tests.web.test_desk_e2e import fonts_used
from tests.web.test_outages_e2e import shot

pytestmark = pytest.mark.slow
expect = pytest.importorskip("playwright.sync_api").expect
expect.set_options(timeout=15_000)


def sign_in(page, server, path: str, username: str):
    page.goto(server.url + path)
    page.fill("#login-username", username)
    page.fill("#login-password", PASSWORD)
    page.press("#login-password", "Enter")
    expect(page.locator("#console-view")).to_be_visible()
    return page


def test_the_wall_screen_follows_new_tickets_live(live_server, new_page, desk_users,
                                                  customer) -> None:
    page = sign_in(new_page("en-US"), live_server, "/wall", desk_users["manager"])
    # the manager's language is Chinese
    expect(page.locator("#w-open")).to_have_text("未结工单（按类别和状态）")
    expect(page.locator("#live-state")).to_have_attribute("data-state", "on")
    open_kpi = page.locator('#open-tickets [data-kpi="未结工单"]')
    before = int(open_kpi.inner_text())
    loads = page.evaluate("window.crewlineWall.summary.at")
    live_server.call("agent", "POST", "/api/v1/tickets", json={
        "category": "complaint", "priority": "normal", "description": "投诉 wall test",
        "customer_id": customer["id"], "service_point_id": customer["service_points"][0]["id"]})
    expect(open_kpi).to_have_text(str(before + 1))  # pushed, well before the 15 s refresh
    assert page.evaluate("window.crewlineWall.summary.at") != loads
    expect(page.locator("#open-tickets svg text", has_text="投诉").first).to_be_visible()
    assert any("CJK" in f for f in fonts_used(page, "#w-open"))
    expect(page.locator("#sms")).to_contain_text("已发送")
    expect(page.locator("#outages")).to_contain_text("进行中的停水停电")
    expect(page.locator("#updated")).to_contain_text(re.compile(r"更新于 \d+:\d\d:\d\d"))
    shot(page, "wall-zh")
    page.keyboard.press("Alt+KeyG")
    expect(page.locator("#w-open")).to_have_text("Open tickets by category and status")
    expect(page.locator("#open-tickets svg text", has_text="Complaint").first).to_be_visible()
    shot(page, "wall-en")
    overlap = page.evaluate("""() => {
      const tiles = [...document.querySelectorAll(".wall .tile")].map((e) => e.getBoundingClientRect());
      for (let i = 0; i < tiles.length; i++) for (let j = i + 1; j < tiles.length; j++) {
        const a = tiles[i], b = tiles[j];
        if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1)
          return true;
      }
      return document.documentElement.scrollWidth > window.innerWidth;
    }""")
    assert not overlap
    assert not page.js_errors


def test_the_sms_log_shows_masked_numbers_and_filters(live_server, new_page, desk_users,
                                                      customer) -> None:
    ticket = live_server.call("agent", "POST", "/api/v1/tickets", json={
        "category": "repair", "priority": "normal", "description": "漏水 sms log test",
        "customer_id": customer["id"], "service_point_id": customer["service_points"][0]["id"]})
    number = ticket["ticket"]["number"]
    page = sign_in(new_page("en-US"), live_server, "/sms", desk_users["agent"])
    page.fill("#sms-ticket", str(ticket["ticket"]["id"]))
    page.press("#sms-ticket", "Enter")  # change event
    page.locator("#sms-ticket").blur()
    row = page.locator("#sms-rows tr", has_text=number)
    expect(row).to_have_count(1)
    mobile = customer["phones"][0]["e164"] if isinstance(customer["phones"][0], dict) \
        else customer["phones"][0]
    expect(row).not_to_contain_text(mobile[-8:])  # masked for agents
    expect(row).to_contain_text(re.compile(r"\*{3,}"))
    expect(row).to_contain_text("ticket_received")
    page.select_option("#sms-status", "delivered")
    expect(page.locator("#sms-rows")).to_contain_text("No messages.")
    page.keyboard.press("Alt+KeyG")
    expect(page.locator("#sms-status option[value='']")).to_have_text("全部")
    page.select_option("#sms-status", "")
    expect(page.locator("#sms-rows tr", has_text=number)).to_be_visible()
    shot(page, "sms-log-zh")

    tech = sign_in(new_page("en-US"), live_server, "/sms", desk_users["technician"])
    expect(tech.locator("#page-error")).to_have_text("Your role may not read the SMS log.")
