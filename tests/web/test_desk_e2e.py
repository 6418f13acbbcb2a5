"""The agent desk end to end: headless Chromium against a real `crewline serve` and PostgreSQL.

The screenshots land in tests/web/artifacts/ (gitignored) for a person to look at.
"""

from __future__ import annotations

import re

import pytest

from tests.web.conftest import PASSWORD, shot

pytestmark = pytest.mark.slow
expect = pytest.importorskip("playwright.sync_api").expect
# the machine is shared: give the server and the browser time before calling it a failure
expect.set_options(timeout=15_000)


def assert_laid_out(page) -> None:
    """No panel overlaps another and nothing pushes the page sideways."""
    problems = page.evaluate("""() => {
      const boxes = [...document.querySelectorAll("header, footer, .card")]
        .filter((el) => el.offsetParent !== null)
        .map((el) => [el.id || el.tagName, el.getBoundingClientRect()]);
      const out = [];
      for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
        const [a, r] = boxes[i], [b, q] = boxes[j];
        if (r.left < q.right - 1 && q.left < r.right - 1 && r.top < q.bottom - 1
            && q.top < r.bottom - 1) out.push(`${a} overlaps ${b}`);
      }
      if (document.documentElement.scrollWidth > window.innerWidth) out.push("horizontal scroll");
      return out;
    }""")
    assert problems == []


def fonts_used(page, selector: str) -> set[str]:
    """The fonts Chromium actually drew the element's text with (DevTools protocol)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    cdp.detach()
    return {f["familyName"] for f in fonts if f["glyphCount"]}


def sign_in(page, base: str, username: str) -> None:
    page.goto(base)
    expect(page.locator("#login-username")).to_be_focused()
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("#console-view")).to_be_visible()
    expect(page.locator("#lookup-phone")).to_be_focused()


def resolve_in_the_field(server, ticket_id: int) -> None:
    """What dispatch and the crew do between logging and the callback."""
    path = f"/api/v1/tickets/{ticket_id}/transitions"
    server.call("dispatcher", "POST", path, json={"to": "assigned"})
    for to in ("accepted", "en_route", "on_site"):
        server.call("technician", "POST", path, json={"to": to})
    server.call("technician", "POST", path, json={"to": "resolved", "resolution_code": "fixed",
                                                  "note": "valve replaced"})


def test_agent_logs_tickets_by_keyboard_links_a_duplicate_and_calls_back(
        live_server, new_page, customer, desk_users) -> None:
    page = new_page("en-US")
    sign_in(page, live_server.url, desk_users["agent"])
    expect(page.locator("#whoami")).to_have_text("Agent Emma · agent")

    # the caller's number as people say it, national format with spaces
    page.keyboard.type(customer["national"])
    page.keyboard.press("Enter")
    result = page.locator("#lookup-results .customer")
    expect(result).to_have_count(1)
    expect(result).to_contain_text("王芳")
    expect(result).to_contain_text(customer["account_no"])
    expect(result).to_contain_text("Aleksanterinkatu 52")
    expect(result).to_contain_text("No open tickets.")
    # focus moved on to the new ticket; place and reporter come from the lookup
    expect(page.locator("#category-choices input[value=repair]")).to_be_focused()
    sp = customer["service_points"][0]
    expect(page.locator("#t-place")).to_have_value(f"sp:{sp['id']}")
    expect(page.locator("#t-reporter-name")).to_have_value("王芳")
    expect(page.locator("#t-reporter-phone")).to_have_value(customer["phones"][0]["e164"])
    expect(page.locator("#dup-hint")).to_contain_text("No open Repair ticket nearby.")

    # Tab to the description, Enter logs the ticket
    page.keyboard.press("Tab")
    expect(page.locator("#t-description")).to_be_focused()
    page.keyboard.type("No water since this morning")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("neighbours too")
    page.keyboard.press("Enter")
    created = page.locator("#created")
    expect(created).to_be_focused()
    expect(created).to_contain_text(re.compile(r"Ticket CL-\d{7} logged"))
    first_number = re.search(r"CL-\d{7}", created.inner_text()).group(0)
    first_id = int(first_number[3:])
    expect(created.locator("table.sla tbody tr")).to_have_count(3)
    expect(created.locator("table.sla")).to_contain_text("Assign")
    first = live_server.call("agent", "GET", f"/api/v1/tickets/{first_id}")
    assert first["description"] == "No water since this morning\nneighbours too"
    assert (first["category"], first["channel"], first["priority"]) == ("repair", "phone", "normal")
    assert first["service_point_id"] == sp["id"] and first["customer_id"] == customer["id"]
    assert first["reporter_phone"] == customer["phones"][0]["e164"]
    expect(page.locator("#recent-table tbody")).to_contain_text(first_number)
    expect(result).to_contain_text(first_number)  # the caller's open tickets, asked again

    # a second call about the same street: a point 30 m east; the hint appears before submit
    page.keyboard.press("Alt+N")
    expect(page.locator("#category-choices input[value=repair]")).to_be_focused()
    page.select_option("#t-place", "point")
    page.fill("#t-lon", str(round(sp["location"]["lon"] + 0.00054, 7)))
    page.fill("#t-lat", str(sp["location"]["lat"]))
    hint = page.locator("#dup-hint")
    expect(hint).to_contain_text("1 open Repair ticket(s) nearby")
    expect(hint).to_contain_text(first_number)
    expect(hint).to_contain_text(re.compile(r"(29|30|31) m away"))
    page.fill("#t-description", "Water pipe burst on the pavement")
    page.locator("#t-description").press("Enter")
    expect(created.locator("h3")).not_to_contain_text(first_number)
    second_number = re.search(r"CL-\d{7}", created.inner_text()).group(0)
    assert second_number != first_number
    link = created.get_by_role("button", name=f"Link as duplicate of {first_number}")
    expect(link).to_be_visible()
    assert_laid_out(page)
    shot(page, "desk-en-duplicate-hint")
    link.click()
    expect(created).to_contain_text(
        f"{second_number} is linked as a duplicate of {first_number} and was cancelled.")
    second = live_server.call("agent", "GET", f"/api/v1/tickets/{int(second_number[3:])}")
    assert second["status"] == "cancelled"
    assert [(k["ticket_id"], k["linked_ticket_id"]) for k in second["links"]] == \
        [(second["id"], first_id)]
    detail = page.locator("#detail")
    expect(detail).to_contain_text(f"{second_number} duplicates {first_number}")

    # the crew fixes it; the agent calls the customer back (回访)
    resolve_in_the_field(live_server, first_id)
    page.click("#recent-refresh")
    row = page.locator(f"#recent-table tbody tr[data-ticket-id='{first_id}']")
    expect(row).to_contain_text("Resolved")
    row.get_by_role("button", name=first_number).click()
    expect(page.locator("#detail-panel")).to_be_focused()
    callback = detail.locator("form[data-action=callback]")
    callback.get_by_label("Satisfied", exact=True).check()
    callback.get_by_label("Note").fill("customer confirms water is back")
    callback.get_by_label("Note").press("Enter")
    expect(detail.locator(".detail-head")).to_contain_text("Closed")
    expect(detail.locator("table.trail")).to_contain_text("callback (Satisfied)")
    expect(detail.locator("table.trail")).to_contain_text("customer confirms water is back")
    expect(detail).to_contain_text("valve replaced")
    first = live_server.call("agent", "GET", f"/api/v1/tickets/{first_id}")
    assert (first["status"], first["callback_outcome"]) == ("closed", "satisfied")
    shot(page, "desk-en-callback")

    # the same desk in Chinese, by keyboard; what the server sent is re-rendered, not re-fetched
    page.keyboard.press("Alt+G")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#lookup-title")).to_contain_text("来电查询")
    expect(page.locator("#whoami")).to_have_text("Agent Emma · 话务员")
    expect(page.locator("#new-title")).to_contain_text("新建工单")
    expect(page.locator("#category-choices")).to_contain_text("报修")
    expect(page.locator("#category-choices")).to_contain_text("咨询")
    assert fonts_used(page, "#lookup-title span") == {"Noto Sans CJK SC"}
    expect(detail.locator(".detail-head")).to_contain_text("已关闭")
    expect(detail.locator("table.trail")).to_contain_text("回访 (满意)")
    expect(created).to_contain_text(f"{second_number} 已关联为 {first_number} 的重复工单并已取消。")
    expect(hint).to_have_text("附近没有未结的报修工单。")  # asked again: the first is closed now
    expect(page.locator("footer")).to_contain_text("Map data © OpenStreetMap contributors, ODbL")
    page.keyboard.press("Alt+L")
    expect(page.locator("#lookup-phone")).to_be_focused()
    assert_laid_out(page)
    shot(page, "desk-zh-callback")
    assert page.js_errors == []

    # the choice and the session survive a reload; logging out ends the session
    page.reload()
    expect(page.locator("#console-view")).to_be_visible()
    expect(page.locator("#lookup-title")).to_contain_text("来电查询")
    page.click("#logout")
    expect(page.locator("#login-view")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('crewline.token')") is None
    page.reload()
    expect(page.locator("#login-view")).to_be_visible()
    expect(page.locator("#login-view h1")).to_have_text("登录")


def test_first_contact_resolution_close_and_cancel(live_server, new_page, customer,
                                                   desk_users) -> None:
    page = new_page("en-US")
    sign_in(page, live_server.url, desk_users["agent"])
    page.keyboard.type(customer["phones"][0]["e164"])
    page.keyboard.press("Enter")
    expect(page.locator("#lookup-results .customer")).to_have_count(1)

    # a consultation answered on the phone: arrows pick the category, no place needed
    page.keyboard.press("ArrowRight")
    expect(page.locator("#category-choices input[value=consultation]")).to_be_checked()
    page.select_option("#t-place", "none")
    page.fill("#t-description", "How do I read my meter?")
    page.locator("#t-description").press("Enter")
    created = page.locator("#created")
    expect(created).to_contain_text(re.compile(r"Ticket CL-\d{7} logged"))
    number = re.search(r"CL-\d{7}", created.inner_text()).group(0)
    detail = page.locator("#detail")
    resolve = detail.locator("form[data-action=resolve]")
    expect(resolve.get_by_label("Resolution code")).to_have_value("answered")
    resolve.get_by_label("Note").fill("explained the meter")
    resolve.get_by_role("button", name="Resolve at first contact").click()
    expect(detail.locator(".detail-head")).to_contain_text("Resolved")
    expect(detail).to_contain_text("answered — explained the meter")
    close = detail.locator("form[data-action=close]")
    close.get_by_label("Reason").fill("answered at first contact")
    close.get_by_role("button", name="Close with reason").click()
    expect(detail.locator(".detail-head")).to_contain_text("Closed")
    expect(detail).to_contain_text("No desk action for a ticket in this state.")
    ticket = live_server.call("agent", "GET", f"/api/v1/tickets/{int(number[3:])}")
    assert ticket["status"] == "closed" and ticket["first_contact_resolution"] is True
    assert ticket["close_reason"] == "answered at first contact"

    # a complaint logged by mistake is cancelled with a note; the form kept the last category
    page.keyboard.press("Alt+N")
    expect(page.locator("#category-choices input[value=consultation]")).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(page.locator("#category-choices input[value=complaint]")).to_be_checked()
    page.keyboard.press("Tab")
    page.keyboard.type("Logged by mistake")
    page.keyboard.press("Enter")
    expect(created.locator("h3")).not_to_contain_text(number)
    expect(detail.locator(".detail-head")).to_contain_text("Complaint")
    cancel = detail.locator("form[data-action=cancel]")
    cancel.get_by_label("Note").fill("caller hung up")
    cancel.get_by_label("Note").press("Enter")
    expect(detail.locator(".detail-head")).to_contain_text("Cancelled")
    expect(detail.locator("table.trail")).to_contain_text("caller hung up")
    assert page.js_errors == []


def test_server_errors_are_shown_next_to_the_field(live_server, new_page, customer,
                                                   desk_users) -> None:
    page = new_page("en-US")
    page.goto(live_server.url)
    login = page.locator("#login-form")
    page.fill("#login-username", desk_users["agent"])
    page.fill("#login-password", "not-the-password")
    page.keyboard.press("Enter")
    expect(login.locator(".form-error")).to_have_text("wrong username or password")
    page.fill("#login-password", PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("#console-view")).to_be_visible()

    page.fill("#lookup-phone", "12")
    page.keyboard.press("Enter")
    phone_error = page.locator("#lookup-form [data-error-for=phone]")
    expect(phone_error).to_contain_text("phone")
    expect(page.locator("#lookup-phone")).to_have_attribute("aria-invalid", "true")

    # a repair ticket with no place at all
    page.select_option("#t-place", "none")
    page.fill("#t-description", "Leak somewhere")
    page.locator("#t-description").press("Enter")
    place_error = page.locator("#ticket-form [data-error-for~=location]")
    expect(place_error).to_have_text(
        "a repair ticket needs a place: give service_point_id or location")
    expect(page.locator("#t-place")).to_be_focused()
    # an unreadable longitude is named by the server as location.lon
    page.select_option("#t-place", "point")
    page.fill("#t-lon", "east")
    page.fill("#t-lat", "60.17")
    page.locator("#t-description").press("Enter")
    lon_error = page.locator("#ticket-form [data-error-for~=lon]")
    expect(lon_error).to_contain_text("location.lon")
    expect(page.locator("#t-lon")).to_be_focused()
    expect(place_error).to_have_text("")
    page.fill("#t-lon", "24.94")
    page.fill("#t-description", "")
    page.locator("#t-description").press("Enter")
    expect(page.locator("#ticket-form [data-error-for=description]")).to_contain_text(
        "description")
    expect(lon_error).to_have_text("")
    shot(page, "desk-en-errors")

    # a technician may sign in, but the desk's data is not theirs: the server's 403 is shown
    page.click("#logout")
    sign_in(page, live_server.url, "desk-technician")
    page.keyboard.type(customer["national"])
    page.keyboard.press("Enter")
    expect(page.locator("#lookup-form .form-error")).to_contain_text("may not do this")
    assert page.js_errors == []


def test_language_follows_the_browser_and_the_user(live_server, new_page, desk_users) -> None:
    page = new_page("zh-CN")
    page.goto(live_server.url)
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#login-view h1")).to_have_text("登录")
    shot(page, "login-zh")
    english = new_page("en-GB")
    english.goto(live_server.url)
    expect(english.locator("#login-view h1")).to_have_text("Sign in")
    # no explicit choice yet: the user's own language wins after sign-in
    sign_in(english, live_server.url, desk_users["manager"])
    expect(english.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(english.locator("#whoami")).to_have_text("经理 王伟 · 经理")
    expect(english.locator("#recent-title")).to_contain_text("最近工单")
    english.set_viewport_size({"width": 800, "height": 900})  # one column on a small screen
    assert_laid_out(english)
    shot(english, "desk-zh-narrow")
    # an explicit switch is remembered over the user's language
    english.click("#lang-toggle")
    expect(english.locator("#recent-title")).to_contain_text("Recent tickets")
    english.reload()
    expect(english.locator("#recent-title")).to_contain_text("Recent tickets")


def test_the_session_survives_a_server_restart_and_a_bad_token_asks_to_sign_in(
        own_server, new_page, customer, desk_users) -> None:
    page = new_page("en-US")
    sign_in(page, own_server.url, desk_users["agent"])
    own_server.stop()
    page.fill("#lookup-phone", customer["national"])
    page.keyboard.press("Enter")
    expect(page.locator("#lookup-form .form-error")).to_have_text(
        "Cannot reach the server; check the connection and try again.")
    own_server.start()  # same port, same secret: the JWT is still good
    page.keyboard.press("Enter")
    expect(page.locator("#lookup-results .customer")).to_contain_text("王芳")
    expect(page.locator("#lookup-form .form-error")).to_have_text("")

    page.evaluate("sessionStorage.setItem('crewline.token', 'forged')")
    page.reload()
    expect(page.locator("#login-view")).to_be_visible()
    expect(page.locator("#login-form .form-error")).to_have_text(
        "Your session has ended; please sign in again.")
    assert page.evaluate("sessionStorage.getItem('crewline.token')") is None
