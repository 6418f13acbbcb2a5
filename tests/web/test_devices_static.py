"""The Devices page is public and holds no data: served with the console's headers, linked from
every console page's shared top bar, and every API call its script makes answers 401 without a
valid token."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from server.web.router import CSP, STATIC
from tests.web.conftest import SECRET

PAGES = ("index.html", "dispatch.html", "wall.html", "outages.html", "inspections.html", "sms.html",
         "devices.html")


@pytest.fixture(scope="module")
def client(pg_url):
    from server.app import create_app
    from server.settings import Settings

    app = create_app(Settings(env="test", database_url=pg_url, secret_key=SECRET, _env_file=None))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    app.state.engine.dispose()


def test_the_page_is_served_with_the_console_headers(client) -> None:
    r = client.get("/devices")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"] == CSP
    assert '<script type="module" src="/static/devices.js">' in r.text
    for name, media in (("devices.js", "text/javascript"), ("devices-i18n.js", "text/javascript"),
                        ("devices.css", "text/css")):
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(media), name


@pytest.mark.parametrize("page", PAGES)
def test_every_console_page_has_the_shared_top_bar_that_links_to_it(page: str) -> None:
    # console.js renders the navigation into these (test_console_chrome.py checks it in Chromium)
    html = (STATIC / page).read_text()
    assert re.search(r'<header class="topbar" data-subtitle="[\w.]+"( data-live)?></header>', html)
    assert '<section id="login-view" class="login" hidden></section>' in html
    assert '["/devices", "console.devices"]' in (STATIC / "console.js").read_text()


def _calls() -> set[tuple[str, str]]:
    script = (STATIC / "devices.js").read_text()
    calls = {(m, p) for m, p in re.findall(r'api\("(GET|POST|DELETE)", [`"](/[^`"]+)[`"]', script)}
    calls |= {("POST", p[len("/api/v1"):]) for p in re.findall(r'fetch\("(/api/v1/[^"]+)"', script)}
    return {(m, "/api/v1" + re.sub(r"\$\{[^}]+\}", "1", p)) for m, p in calls}


def test_every_call_of_the_page_needs_a_token(client) -> None:
    calls = _calls()
    assert calls == {("GET", "/api/v1/devices/technicians"), ("POST", "/api/v1/devices/pairing-codes"),
                     ("GET", "/api/v1/devices/pairing-codes/1"),
                     ("DELETE", "/api/v1/devices/pairing-codes/1"), ("DELETE", "/api/v1/devices/1"),
                     ("POST", "/api/v1/devices/pairing-codes/qr"),
                     ("GET", "/api/v1/devices/dead-letters"), ("GET", "/api/v1/devices/dead-letters/1")}
    for method, path in sorted(calls):
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            r = client.request(method, path, headers=headers, json={"user_id": 1, "payload": "x"})
            assert r.status_code == 401, (method, path, r.text)
