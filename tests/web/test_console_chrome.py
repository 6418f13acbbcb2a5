"""The top bar and sign-in form every console page shares (rendered by console.js into each page's
empty <header class="topbar"> and <section id="login-view">), in headless Chromium: the same
navigation on every page with the current one marked, the sign-in form when signed out, both
languages, the OpenStreetMap attribution, and one sign-in for every page."""

from __future__ import annotations

import pytest

from tests.web.conftest import PASSWORD

expect = pytest.importorskip("playwright.sync_api").expect

NAV = [("/", "Agent desk", "坐席工作台"), ("/dispatch", "Dispatch map", "调度地图"),
       ("/wall", "Wall screen", "大屏"), ("/outages", "Outages", "停水停电"),
       ("/inspections", "Inspections", "巡检"), ("/sms", "SMS log", "短信记录"),
       ("/devices", "Handsets", "手持终端")]
# the desk's subtitle is its own ("话务员工作台"), the others' are their names in the navigation
SUBTITLE = {"/": ("Agent desk", "话务员工作台")}
LIVE = {"/dispatch", "/wall", "/outages"}


@pytest.mark.parametrize("path", [p for p, _, _ in NAV])
def test_every_page_has_the_navigation_and_the_sign_in_form(live_server, new_page,
                                                            path: str) -> None:
    page = new_page("en-US")
    page.goto(live_server.url + path)
    links = page.locator("header.topbar nav.pages a")
    expect(links).to_have_text([en for _, en, _ in NAV])
    assert [links.nth(i).get_attribute("href") for i in range(len(NAV))] == [p for p, _, _ in NAV]
    current = page.locator("nav.pages a[aria-current=page]")
    expect(current).to_have_count(1)
    expect(current).to_have_attribute("href", path)
    expect(page.locator("nav.pages")).to_have_attribute("aria-label", "Pages")
    en_subtitle, zh_subtitle = SUBTITLE.get(path, next((en, zh) for p, en, zh in NAV if p == path))
    expect(page.locator("header.topbar .subtitle")).to_have_text(en_subtitle)
    expect(page.locator("#live-state")).to_have_count(1 if path in LIVE else 0)

    # signed out: the sign-in form, focused; nobody shown, no "Log out"
    expect(page.locator("#login-view")).to_be_visible()
    expect(page.locator("#login-view h1")).to_have_text("Sign in")
    expect(page.locator("#login-username")).to_be_focused()
    expect(page.locator("#login-password")).to_have_attribute("type", "password")
    expect(page.locator("#console-view")).to_be_hidden()
    expect(page.locator("#logout")).to_be_hidden()
    expect(page.locator("#whoami")).to_be_hidden()
    expect(page.locator(".attribution")).to_contain_text("OpenStreetMap contributors")

    # the language switch translates the shared parts too, and is remembered on the next page
    page.click("#lang-toggle")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(links).to_have_text([zh for _, _, zh in NAV])
    expect(page.locator("header.topbar .subtitle")).to_have_text(zh_subtitle)
    expect(page.locator("#login-view h1")).to_have_text("登录")
    expect(page.locator("#lang-toggle")).to_have_text("English")
    page.click("nav.pages a:not([aria-current])  >> nth=0")
    expect(page.locator("#login-view h1")).to_have_text("登录")
    expect(page.locator("nav.pages a[aria-current=page]")).not_to_have_attribute("href", path)
    assert page.js_errors == []  # type: ignore[attr-defined]


def test_one_sign_in_serves_every_page_and_a_wrong_password_is_said(live_server, new_page,
                                                                    desk_users) -> None:
    page = new_page("en-US")
    page.goto(live_server.url + "/sms")
    page.fill("#login-username", desk_users["dispatcher"])
    page.fill("#login-password", "not-the-password")
    page.press("#login-password", "Enter")
    expect(page.locator("#login-error")).to_have_text("wrong username or password")
    page.fill("#login-password", PASSWORD)
    page.press("#login-password", "Enter")
    expect(page.locator("#login-error")).to_have_text("")
    expect(page.locator("#logout")).to_be_visible()
    expect(page.locator("#whoami")).to_have_text(f"{desk_users['dispatcher']} · dispatcher")

    for label in ("Handsets", "Agent desk"):  # no second sign-in on the other pages
        page.click(f"nav.pages >> text={label}")
        expect(page.locator("nav.pages a[aria-current=page]")).to_have_text(label)
        expect(page.locator("#console-view")).to_be_visible()
        expect(page.locator("#login-view")).to_be_hidden()
        expect(page.locator("#whoami")).to_have_text(f"{desk_users['dispatcher']} · dispatcher")

    page.click("#logout")
    expect(page.locator("#login-view")).to_be_visible()
    expect(page.locator("#console-view")).to_be_hidden()
    page.goto(live_server.url + "/devices")  # signed out everywhere
    expect(page.locator("#login-view")).to_be_visible()
    expect(page.locator("#login-username")).to_be_focused()
    assert page.js_errors == []  # type: ignore[attr-defined]
