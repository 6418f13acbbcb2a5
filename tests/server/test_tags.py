"""Tag registry over HTTP: sites CRUD, enrol, revoke, move, look up; roles and errors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from server.settings import Settings
from tests.server.tags_support import HELSINKI, PLAIN_UID, SUN_UID, enroll, make_site


def delete(api, role, url):
    return api.client.delete(url, headers=api.headers(role))


# --- sites -----------------------------------------------------------------------------------

def test_site_crud(api, clock):
    site = make_site(api, address="Hämeentie 1, Helsinki", kind="asset")
    assert site["kind"] == "asset" and site["location"] == HELSINKI
    assert site["active_tags"] == 0 and site["address"] == "Hämeentie 1, Helsinki"
    assert api.get("admin", f"/api/v1/sites/{site['id']}").json() == site

    clock.advance(minutes=5)
    r = api.patch("manager", f"/api/v1/sites/{site['id']}",
                  json={"name": "Valve V-12", "address": None})
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["name"] == "Valve V-12" and patched["address"] is None
    assert patched["kind"] == "asset" and patched["location"] == HELSINKI
    assert patched["updated_at"] > site["updated_at"]

    other = make_site(api, name="Substation Kallio")
    names = [s["name"] for s in api.get("manager", "/api/v1/sites").json()]
    assert names == ["Substation Kallio", "Valve V-12"]
    assert [s["name"] for s in api.get("manager", "/api/v1/sites",
                                       params={"kind": "asset"}).json()] == ["Valve V-12"]
    assert [s["name"] for s in api.get("manager", "/api/v1/sites",
                                       params={"q": "kall"}).json()] == ["Substation Kallio"]
    assert api.get("manager", "/api/v1/sites", params={"q": "%"}).json() == []

    assert delete(api, "manager", f"/api/v1/sites/{other['id']}").status_code == 204
    r = api.get("manager", f"/api/v1/sites/{other['id']}")
    assert r.status_code == 404 and r.json()["error"]["field"] == "site_id"


@pytest.mark.parametrize("body, field", [
    ({"kind": "site", "location": HELSINKI}, "name"),
    ({"name": "   ", "location": HELSINKI}, "name"),
    ({"name": "x", "kind": "tower", "location": HELSINKI}, "kind"),
    ({"name": "x"}, "location"),
    ({"name": "x", "location": {"lon": 200, "lat": 60}}, "location.lon"),
    ({"name": "x", "location": HELSINKI, "address": "a" * 301}, "address"),
])
def test_site_validation_names_the_field(api, body, field):
    r = api.post("manager", "/api/v1/sites", json=body)
    assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text


def test_site_patch_errors(api):
    site = make_site(api)
    for body, field in (({"name": None}, "name"), ({"location": None}, "location"),
                        ({}, "body"), ({"kind": "tower"}, "kind")):
        r = api.patch("manager", f"/api/v1/sites/{site['id']}", json=body)
        assert r.status_code == 422 and r.json()["error"]["field"] == field, (body, r.text)
    r = api.patch("manager", "/api/v1/sites/999999", json={"name": "x"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_a_site_in_use_cannot_be_deleted(api):
    site = make_site(api)
    tag = enroll(api, site["id"]).json()
    r = delete(api, "admin", f"/api/v1/sites/{site['id']}")
    assert r.status_code == 409 and r.json()["error"]["code"] == "site_in_use"
    # a moved-away tag still names the site in its history
    other = make_site(api, name="Other")
    assert api.post("manager", f"/api/v1/tags/{tag['id']}/move",
                    json={"site_id": other["id"]}).status_code == 200
    assert delete(api, "admin", f"/api/v1/sites/{site['id']}").status_code == 409
    assert delete(api, "admin", "/api/v1/sites/999999").status_code == 404


# --- roles -----------------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["agent", "dispatcher", "technician"])
def test_registry_is_for_managers_and_admins(api, role):
    site = make_site(api)
    tag = enroll(api, site["id"]).json()
    calls = [
        ("post", "/api/v1/sites", {"name": "x", "location": HELSINKI}),
        ("get", "/api/v1/sites", None), ("get", f"/api/v1/sites/{site['id']}", None),
        ("patch", f"/api/v1/sites/{site['id']}", {"name": "y"}),
        ("post", "/api/v1/tags", {"uid": PLAIN_UID, "tag_type": "type2", "site_id": site["id"]}),
        ("get", "/api/v1/tags", None), ("get", f"/api/v1/tags/{tag['id']}", None),
        ("get", "/api/v1/tags/lookup?uid=" + SUN_UID, None),
        ("post", f"/api/v1/tags/{tag['id']}/revoke", {"reason": "x"}),
        ("post", f"/api/v1/tags/{tag['id']}/move", {"site_id": site["id"]}),
        ("get", "/api/v1/tags/scans", None),
    ]
    for method, url, body in calls:
        kwargs = {"json": body} if body is not None else {}
        r = getattr(api, method)(role, url, **kwargs)
        assert r.status_code == 403, (method, url, r.text)
        assert r.json()["error"]["code"] == "forbidden"
    assert delete(api, role, f"/api/v1/sites/{site['id']}").status_code == 403
    assert api.get("admin", f"/api/v1/tags/{tag['id']}").json()["status"] == "active"


def test_everything_needs_a_login(client):
    for method, url in (("get", "/api/v1/sites"), ("post", "/api/v1/tags"),
                        ("post", "/api/v1/tags/scans"), ("get", "/api/v1/tags/scans")):
        r = getattr(client, method)(url)
        assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated"


# --- enrol -----------------------------------------------------------------------------------

def test_enrol_normalises_the_uid_and_records_who(api, clock):
    site = make_site(api)
    r = enroll(api, site["id"], "04:de:5f:1e:ac:c0:40", note="north door")
    assert r.status_code == 201, r.text
    tag = r.json()
    assert tag["uid"] == SUN_UID and tag["sun_enabled"] and tag["key_version"] == 1
    assert tag["status"] == "active" and tag["last_counter"] is None
    assert tag["enrolled_by"] == api.user_ids["manager"]
    assert tag["enrolled_at"].startswith("2026-01-05T08:00:00")
    plain = enroll(api, site["id"], "a1:b2:c3:d4", sun=False, tag_type="type2", role="admin")
    assert plain.status_code == 201 and plain.json()["uid"] == "A1B2C3D4"
    assert plain.json()["key_version"] is None
    detail = api.get("manager", f"/api/v1/tags/{tag['id']}").json()
    assert [(e["kind"], e["actor"], e["to_site_id"], e["note"]) for e in detail["events"]] == [
        ("enrolled", "manager", site["id"], "north door")]
    assert api.get("manager", f"/api/v1/sites/{site['id']}").json()["active_tags"] == 2


@pytest.mark.parametrize("body, field, code", [
    ({"uid": "zz11"}, "uid", "invalid_input"),
    ({"uid": "0102"}, "uid", "invalid_input"),
    ({"uid": ""}, "uid", "validation_error"),
    ({"tag_type": "type2"}, "sun_enabled", "invalid_input"),
    ({"uid": "A1B2C3D4"}, "uid", "invalid_input"),
    ({"key_version": 7}, "key_version", "invalid_input"),
    ({"key_version": -1}, "key_version", "validation_error"),
    ({"sun_enabled": False, "key_version": 1}, "key_version", "invalid_input"),
    ({"site_id": 999999}, "site_id", "invalid_input"),
    ({"site_id": 0}, "site_id", "validation_error"),
    ({"tag_type": "nfc"}, "tag_type", "validation_error"),
])
def test_enrol_errors_name_the_field(api, body, field, code):
    site = make_site(api)
    payload = {"uid": SUN_UID, "tag_type": "type4", "sun_enabled": True, "site_id": site["id"],
               **body}
    r = api.post("manager", "/api/v1/tags", json=payload)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field and r.json()["error"]["code"] == code
    assert api.get("manager", "/api/v1/tags").json() == []


def test_one_active_tag_per_uid(api):
    site = make_site(api)
    first = enroll(api, site["id"]).json()
    r = enroll(api, site["id"], "04 de 5f 1e ac c0 40")
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "tag_already_enrolled" and err["field"] == "uid"
    assert f"tag {first['id']}" in err["message"]


def test_concurrent_enrolments_of_one_uid(api):
    site = make_site(api)
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: enroll(api, site["id"]).status_code, range(8)))
    assert sorted(codes) == [201] + [409] * 7
    assert len(api.get("manager", "/api/v1/tags").json()) == 1


def test_key_version_defaults_to_the_current_one(app, api):
    from rfid import KeyRing

    app.state.tag_keyring = KeyRing({1: bytes(range(16)), 2: bytes(range(1, 17))},
                                    current_version=2)
    site = make_site(api)
    assert enroll(api, site["id"]).json()["key_version"] == 2
    assert enroll(api, site["id"], PLAIN_UID, key_version=1).json()["key_version"] == 1


# --- revoke, move, look up -------------------------------------------------------------------

def test_revoke_then_enrol_the_uid_again(api, clock):
    site = make_site(api)
    tag = enroll(api, site["id"]).json()
    clock.advance(hours=1)
    r = api.post("admin", f"/api/v1/tags/{tag['id']}/revoke", json={"reason": "cloned"})
    assert r.status_code == 200
    assert r.json()["status"] == "revoked" and r.json()["revoke_reason"] == "cloned"
    assert r.json()["revoked_at"].startswith("2026-01-05T09:00:00")
    r = api.post("admin", f"/api/v1/tags/{tag['id']}/revoke", json={"reason": "again"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "tag_revoked"
    r = api.post("admin", f"/api/v1/tags/{tag['id']}/revoke", json={"reason": " "})
    assert r.status_code == 422 and r.json()["error"]["field"] == "reason"
    assert api.post("admin", "/api/v1/tags/999999/revoke",
                    json={"reason": "x"}).status_code == 404

    assert api.get("manager", "/api/v1/tags/lookup",
                   params={"uid": SUN_UID}).json()["id"] == tag["id"]
    again = enroll(api, site["id"]).json()
    assert again["id"] != tag["id"]
    looked = api.get("manager", "/api/v1/tags/lookup", params={"uid": "04-DE-5F-1E-AC-C0-40"})
    assert looked.json()["id"] == again["id"]
    assert [t["id"] for t in api.get("manager", "/api/v1/tags",
                                     params={"status": "revoked"}).json()] == [tag["id"]]
    assert [t["id"] for t in api.get("manager", "/api/v1/tags",
                                     params={"uid": SUN_UID}).json()] == [again["id"], tag["id"]]
    kinds = [e["kind"] for e in api.get("manager", f"/api/v1/tags/{tag['id']}").json()["events"]]
    assert kinds == ["enrolled", "revoked"]


def test_lookup_errors(api):
    r = api.get("manager", "/api/v1/tags/lookup", params={"uid": SUN_UID})
    assert r.status_code == 404 and r.json()["error"]["field"] == "uid"
    r = api.get("manager", "/api/v1/tags/lookup", params={"uid": "not-a-uid"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "uid"
    r = api.get("manager", "/api/v1/tags", params={"uid": "12"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "uid"
    r = api.get("manager", "/api/v1/tags", params={"status": "lost"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "status"
    assert api.get("manager", "/api/v1/tags/424242").status_code == 404


def test_move(api):
    a, b = make_site(api, name="A"), make_site(api, name="B")
    tag = enroll(api, a["id"]).json()
    r = api.post("manager", f"/api/v1/tags/{tag['id']}/move",
                 json={"site_id": b["id"], "note": "door replaced"})
    assert r.status_code == 200 and r.json()["site_id"] == b["id"]
    assert [t["id"] for t in api.get("manager", "/api/v1/tags",
                                     params={"site_id": b["id"]}).json()] == [tag["id"]]
    assert api.get("manager", "/api/v1/tags", params={"site_id": a["id"]}).json() == []
    events = api.get("manager", f"/api/v1/tags/{tag['id']}").json()["events"]
    assert [(e["kind"], e["from_site_id"], e["to_site_id"]) for e in events] == [
        ("enrolled", None, a["id"]), ("moved", a["id"], b["id"])]

    r = api.post("manager", f"/api/v1/tags/{tag['id']}/move", json={"site_id": b["id"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "site_id"
    r = api.post("manager", f"/api/v1/tags/{tag['id']}/move", json={"site_id": 999999})
    assert r.status_code == 422 and r.json()["error"]["field"] == "site_id"
    api.post("manager", f"/api/v1/tags/{tag['id']}/revoke", json={"reason": "gone"})
    r = api.post("manager", f"/api/v1/tags/{tag['id']}/move", json={"site_id": a["id"]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "tag_revoked"


def test_tag_history_is_append_only(api, engine):
    site = make_site(api)
    enroll(api, site["id"])
    with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
        conn.execute(text("UPDATE tag_events SET note = 'rewritten'"))


def test_no_raw_keys_are_stored(api, engine):
    site = make_site(api)
    enroll(api, site["id"])
    with engine.connect() as conn:
        columns = conn.execute(text(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'tags'"
        )).scalars().all()
    assert not [c for c in columns if "key" in c and c != "key_version"]


# --- settings --------------------------------------------------------------------------------

def test_production_refuses_the_development_tag_key():
    good = {"env": "production", "secret_key": "s" * 40, "_env_file": None}
    with pytest.raises(ValueError, match="TAG_MASTER_KEYS"):
        Settings(**good)
    with pytest.raises(ValueError, match="TAG_MASTER_KEYS"):
        Settings(**good, tag_master_keys={1: "00" * 16})
    with pytest.raises(ValueError, match="32 hex digits"):
        Settings(_env_file=None, tag_master_keys={1: "abc"})
    with pytest.raises(ValueError, match="TAG_KEY_VERSION"):
        Settings(_env_file=None, tag_key_version=3)
    ok = Settings(**good, tag_master_keys={1: "8f" * 16, 2: "1e" * 16}, tag_key_version=1)
    assert ok.tag_key_version == 1


def test_master_keys_from_the_environment(monkeypatch):
    from server.tags.keys import keyring_from_settings

    monkeypatch.setenv("CREWLINE_TAG_MASTER_KEYS", '{"3": "' + "ab" * 16 + '"}')
    ring = keyring_from_settings(Settings(_env_file=None))
    assert ring.versions == (3,)
    assert "ab" * 16 not in repr(Settings(_env_file=None))
