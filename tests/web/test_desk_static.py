"""The desk page is public; the data it shows is not. No CDN: every asset comes from us."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from server.web.router import STATIC
from tests.web.conftest import SECRET


@pytest.fixture(scope="module")
def client(pg_url):
    from server.app import create_app
    from server.settings import Settings

    app = create_app(Settings(env="test", database_url=pg_url, secret_key=SECRET, _env_file=None))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    app.state.engine.dispose()


def test_the_desk_is_served_without_login(client) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/desk.js">' in r.text
    assert "Map data © OpenStreetMap contributors, ODbL" in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(("name", "media"), [("desk.js", "text/javascript"),
                                             ("i18n.js", "text/javascript"),
                                             ("desk.css", "text/css")])
def test_assets_have_the_right_types(client, name: str, media: str) -> None:
    r = client.get(f"/static/{name}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(media)


@pytest.mark.parametrize("path", ["/static/nope.js", "/static/../router.py",
                                  "/static/%2e%2e/router.py", "/static/..%2frouter.py",
                                  "/static//etc/passwd", "/static/"])
def test_only_the_static_files_are_served(client, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404
    assert "import" not in r.text  # never a source file
    if r.headers["content-type"].startswith("application/json"):
        assert r.json()["error"]["code"] == "not_found"


def test_no_asset_is_fetched_from_elsewhere() -> None:
    for path in STATIC.rglob("*"):
        if path.suffix in {".html", ".js", ".css"}:
            text = path.read_text()
            if path.name == "leaflet.js":  # its attribution prefix links home (a link, not a
                # fetch; the console turns that control off)
                text = text.replace('href="https://leafletjs.com"', "")
            assert not re.search(r"(src|href)=[\"']?(https?:)?//", text), path
            assert "@import" not in text and "url(http" not in text, path
            assert not re.search(r"fetch\([\"'`]https?:", text), path


def _api_calls() -> set[tuple[str, str]]:
    """Every (method, path) the page's scripts call (its own and the shared sign-in's), with ids
    made concrete."""
    script = (STATIC / "desk.js").read_text() + (STATIC / "console.js").read_text()
    calls = {(m, p) for m, p in re.findall(r'api\("(GET|POST)", [`"]([^`"]+)[`"]', script)
             if not p.endswith("/${path}")}
    # action forms post to /tickets/{id}/{path}; their paths are the first item they return
    calls |= {("POST", f"/tickets/${{state.detail.id}}/{p}")
              for p in re.findall(r'\["(transitions|callback)"', script)}
    return {(m, "/api/v1" + re.sub(r"\$\{[^}]+\}", "1", p)) for m, p in calls}


def test_every_api_call_of_the_page_needs_a_token(client) -> None:
    calls = _api_calls()
    assert {("GET", "/api/v1/customers/lookup"), ("GET", "/api/v1/tickets/duplicates"),
            ("POST", "/api/v1/tickets"), ("GET", "/api/v1/tickets"),
            ("GET", "/api/v1/tickets/1"), ("POST", "/api/v1/tickets/1/links"),
            ("POST", "/api/v1/tickets/1/transitions"), ("POST", "/api/v1/tickets/1/callback"),
            ("GET", "/api/v1/auth/me"), ("POST", "/api/v1/auth/token")} <= calls
    for method, path in sorted(calls - {("POST", "/api/v1/auth/token")}):
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            r = client.request(method, path, headers=headers, json={})
            assert r.status_code == 401, (method, path, r.text)
            assert r.json()["error"]["code"] in ("not_authenticated", "invalid_token")


def test_login_is_the_only_open_call_and_checks_the_password(client, desk_users) -> None:
    r = client.post("/api/v1/auth/token", data={"username": desk_users["agent"],
                                                "password": "wrong-password"})
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "wrong username or password"
