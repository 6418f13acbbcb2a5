"""Ticket intake: validation, places, duplicates and links."""

from datetime import timedelta

import pytest
from sqlalchemy import text

from .conftest import HELSINKI


def create(api, role="agent", **body):
    body.setdefault("description", "test")
    return api.post(role, "/api/v1/tickets", json=body)


def counts(engine):
    with engine.connect() as conn:
        return tuple(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                     for t in ("tickets", "ticket_events", "ticket_sla_clocks"))


@pytest.mark.parametrize("body,field", [
    ({"category": "plumbing", "location": HELSINKI}, "category"),
    ({"category": "repair", "location": {"lon": 181, "lat": 60}}, "location.lon"),
    ({"category": "repair", "location": {"lon": 24.9, "lat": -91}}, "location.lat"),
    ({"category": "repair", "location": {"lon": "east", "lat": 60}}, "location.lon"),
    ({"category": "repair", "location": HELSINKI, "description": "x" * 4001}, "description"),
    ({"category": "repair", "location": HELSINKI, "description": ""}, "description"),
    ({"category": "repair", "location": HELSINKI, "priority": "urgent"}, "priority"),
    ({"category": "repair", "location": HELSINKI, "channel": "pigeon"}, "channel"),
    ({"category": "repair"}, "location"),
    ({"category": "repair", "service_point_id": 99999}, "service_point_id"),
    ({"category": "repair", "customer_id": 99999, "location": HELSINKI}, "customer_id"),
    ({"category": "repair", "location": HELSINKI, "reporter_phone": "not a phone"},
     "reporter_phone"),
    ({"category": "repair", "location": HELSINKI, "language": "de"}, "language"),
])
def test_bad_input_is_422_naming_the_field_and_writes_nothing(api, engine, body, field):
    before = counts(engine)
    r = create(api, **body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == field
    assert error["code"] in ("validation_error", "invalid_input") and error["message"]
    assert counts(engine) == before


def test_non_json_body_is_a_json_error(api):
    r = api.client.post("/api/v1/tickets", content=b"{not json", headers={
        **api.headers("agent"), "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


def test_ticket_takes_place_from_customer_service_point(api, customer):
    r = create(api, category="repair", customer_id=customer["id"], reporter_phone="138 0013 8000",
               description="楼道水管漏水")
    t = r.json()["ticket"]
    assert t["service_point_id"] == customer["service_points"][0]["id"]
    assert t["location"] == HELSINKI and t["address"] == "Mannerheimintie 1, Helsinki"
    assert t["reporter_phone"] == "+8613800138000" and t["language"] == "zh-CN"
    assert t["number"] == f"CL-{t['id']:07d}" and t["status"] == "new"
    assert {c["clock"] for c in t["sla"]} == {"assign", "arrive", "resolve"}


def test_service_point_must_belong_to_customer(api, customer):
    other = api.post("agent", "/api/v1/customers", json={
        "account_no": "W-2", "name": "Other",
        "service_points": [{"address": "Other st 2", "location": HELSINKI}]}).json()
    r = create(api, category="repair", customer_id=customer["id"],
               service_point_id=other["service_points"][0]["id"])
    assert r.status_code == 422 and r.json()["error"]["field"] == "service_point_id"


def test_query_needs_no_place(api):
    r = create(api, category="query", description="账单什么时候到期？", language="zh-CN")
    assert r.status_code == 201 and r.json()["ticket"]["location"] is None


def test_duplicates_same_category_within_radius_and_window(api, clock):
    first = create(api, category="repair", location=HELSINKI).json()["ticket"]
    create(api, category="complaint", location=HELSINKI)  # other category: never a duplicate
    # about 55 m north: inside the default 100 m
    near = {"lon": HELSINKI["lon"], "lat": HELSINKI["lat"] + 0.0005}
    r = create(api, category="repair", location=near)
    dups = r.json()["possible_duplicates"]
    assert [d["id"] for d in dups] == [first["id"]]
    assert 50 < dups[0]["distance_m"] < 60
    # about 167 m north: outside
    far = {"lon": HELSINKI["lon"], "lat": HELSINKI["lat"] + 0.0015}
    assert create(api, category="repair", location=far).json()["possible_duplicates"] == []
    # 100 m east at 60° N is about 0.0018° of longitude: metres are metres, not degrees
    east = {"lon": HELSINKI["lon"] + 0.0017, "lat": HELSINKI["lat"]}
    assert len(create(api, category="repair", location=east).json()["possible_duplicates"]) >= 1
    # a day later the first tickets are outside the window
    clock.advance(timedelta(hours=25))
    api.renew_tokens()
    assert create(api, category="repair", location=HELSINKI).json()["possible_duplicates"] == []


def test_duplicate_check_before_logging(api):
    first = create(api, category="outage_report", location=HELSINKI).json()["ticket"]
    r = api.get("agent", "/api/v1/tickets/duplicates",
                params={"category": "outage_report", **HELSINKI})
    assert [d["id"] for d in r.json()] == [first["id"]]
    r = api.get("agent", "/api/v1/tickets/duplicates",
                params={"category": "outage_report", "lon": 500, "lat": 0})
    assert r.status_code == 422 and r.json()["error"]["field"] == "lon"


def test_closed_tickets_are_not_duplicates(api):
    first = create(api, category="repair", location=HELSINKI).json()["ticket"]
    api.post("admin", f"/api/v1/tickets/{first['id']}/transitions", json={"to": "cancelled"})
    assert create(api, category="repair", location=HELSINKI).json()["possible_duplicates"] == []


def test_link_duplicate_records_both_sides_and_cancels_the_new_one(api):
    original = create(api, category="repair", location=HELSINKI).json()["ticket"]
    second = create(api, category="repair", location=HELSINKI, reporter_phone="13900001111"
                    ).json()["ticket"]
    r = api.post("agent", f"/api/v1/tickets/{second['id']}/links",
                 json={"duplicate_of": original["id"], "note": "same burst pipe"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "cancelled"
    assert body["links"][0]["linked_ticket_id"] == original["id"]
    orig = api.get("agent", f"/api/v1/tickets/{original['id']}").json()
    assert orig["status"] == "new" and orig["events"][-1]["kind"] == "duplicate_reported"
    assert orig["events"][-1]["data"]["ticket_id"] == second["id"]
    again = api.post("agent", f"/api/v1/tickets/{second['id']}/links",
                     json={"duplicate_of": original["id"]})
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_linked"


def test_link_errors(api):
    a = create(api, category="repair", location=HELSINKI).json()["ticket"]
    b = create(api, category="repair", location=HELSINKI).json()["ticket"]
    r = api.post("agent", f"/api/v1/tickets/{a['id']}/links", json={"duplicate_of": a["id"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "duplicate_of"
    r = api.post("agent", f"/api/v1/tickets/{a['id']}/links", json={"duplicate_of": 987654})
    assert r.status_code == 404
    api.post("admin", f"/api/v1/tickets/{b['id']}/transitions", json={"to": "cancelled"})
    r = api.post("agent", f"/api/v1/tickets/{a['id']}/links", json={"duplicate_of": b["id"]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "link_target_closed"


def test_list_filters_and_pages(api):
    ids = [create(api, category="repair", location=HELSINKI).json()["ticket"]["id"]
           for _ in range(5)]
    q = create(api, category="query").json()["ticket"]["id"]
    r = api.get("agent", "/api/v1/tickets", params={"category": "repair", "limit": 2})
    assert [t["id"] for t in r.json()] == ids[::-1][:2]
    r = api.get("agent", "/api/v1/tickets", params={"before_id": ids[2], "category": "repair"})
    assert [t["id"] for t in r.json()] == ids[:2][::-1]
    r = api.get("agent", "/api/v1/tickets", params={"status": ["new"], "category": "query"})
    assert [t["id"] for t in r.json()] == [q]
    r = api.get("agent", "/api/v1/tickets", params={"status": ["nope"]})
    assert r.status_code == 422 and r.json()["error"]["field"].startswith("status")


def test_concurrent_transitions_never_both_win(api, app):
    """Two dispatchers acting on the same new ticket at once: one wins, one gets 409."""
    from concurrent.futures import ThreadPoolExecutor

    ticket_id = create(api, category="repair", location=HELSINKI).json()["ticket"]["id"]

    def act(to):
        return api.post("admin", f"/api/v1/tickets/{ticket_id}/transitions", json={"to": to}).status_code

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(act, ["assigned"] * 8))
    assert results.count(200) == 1 and results.count(409) == 7
    events = api.get("admin", f"/api/v1/tickets/{ticket_id}").json()["events"]
    assert len(events) == 2


def test_a_known_street_address_places_the_ticket(api, customer):
    """A passer-by reports a burst at an address: a service point with that address (any
    customer's) gives the place; an unknown address says so, naming the field."""
    r = create(api, category="repair", address="mannerheimintie 1, HELSINKI",
               reporter_phone="139 1111 2222")
    assert r.status_code == 201, r.text
    t = r.json()["ticket"]
    assert t["location"] == HELSINKI and t["customer_id"] is None
    assert t["address"] == "mannerheimintie 1, HELSINKI"
    r = create(api, category="repair", address="Nowhere street 99")
    assert r.status_code == 422 and r.json()["error"]["field"] == "location"
    assert "not a known service address" in r.json()["error"]["message"]
