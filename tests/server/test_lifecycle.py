"""Every state pair of the ticket lifecycle, callbacks, and the append-only audit trail."""

import itertools

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from server.tickets.lifecycle import TRANSITIONS, Status

from .conftest import HELSINKI

PATH_TO = {
    Status.new: [],
    Status.assigned: ["assigned"],
    Status.accepted: ["assigned", "accepted"],
    Status.en_route: ["assigned", "accepted", "en_route"],
    Status.on_site: ["assigned", "accepted", "en_route", "on_site"],
    Status.resolved: ["assigned", "accepted", "en_route", "on_site", "resolved"],
    Status.closed: ["assigned", "accepted", "en_route", "on_site", "resolved", "closed"],
    Status.cancelled: ["cancelled"],
}
EXTRA = {"resolution_code": "pipe_replaced", "reason": "customer confirmed by letter"}


def new_ticket(api, category="repair", role="agent"):
    r = api.post(role, "/api/v1/tickets", json={
        "category": category, "description": "test", "location": HELSINKI})
    assert r.status_code == 201, r.text
    return r.json()["ticket"]["id"]


def move(api, ticket_id, to, role="admin", **extra):
    return api.post(role, f"/api/v1/tickets/{ticket_id}/transitions", json={"to": to, **extra})


def drive(api, ticket_id, status):
    for step in PATH_TO[status]:
        r = move(api, ticket_id, step, **EXTRA)
        assert r.status_code == 200, r.text


PAIRS = [(a, b) for a, b in itertools.product(Status, Status) if a != b]


@pytest.mark.parametrize("src,dst", PAIRS, ids=[f"{a.value}->{b.value}" for a, b in PAIRS])
def test_every_state_pair(api, src, dst):
    ticket_id = new_ticket(api)
    drive(api, ticket_id, src)
    before = api.get("admin", f"/api/v1/tickets/{ticket_id}").json()
    r = move(api, ticket_id, dst.value, **EXTRA)
    allowed = (src, dst) in TRANSITIONS and (src, dst) != (Status.new, Status.resolved)
    if allowed:
        assert r.status_code == 200, r.text
        after = r.json()
        assert after["status"] == dst.value
        last = after["events"][-1]
        assert (last["from_status"], last["to_status"], last["actor"]) == (src.value, dst.value,
                                                                            "admin")
        assert len(after["events"]) == len(before["events"]) + 1
    else:
        assert r.status_code == 409, r.text
        error = r.json()["error"]
        assert error["code"] in ("invalid_transition", "dispatch_required")
        assert error["field"] == "to"
        after = api.get("admin", f"/api/v1/tickets/{ticket_id}").json()
        assert after["status"] == src.value
        assert after["events"] == before["events"]  # nothing half-written


def test_same_state_is_refused(api):
    ticket_id = new_ticket(api)
    r = move(api, ticket_id, "new")
    assert r.status_code == 409 and "already new" in r.json()["error"]["message"]


def test_roles_per_transition(api):
    ticket_id = new_ticket(api)
    r = move(api, ticket_id, "assigned", role="agent")
    assert r.status_code == 403 and "agent" in r.json()["error"]["message"]
    assert move(api, ticket_id, "assigned", role="dispatcher").status_code == 200
    assert move(api, ticket_id, "accepted", role="technician").status_code == 200
    r = move(api, ticket_id, "cancelled", role="technician")
    assert r.status_code == 403
    assert move(api, ticket_id, "en_route", role="technician").status_code == 200
    assert move(api, ticket_id, "on_site", role="technician").status_code == 200
    r = move(api, ticket_id, "resolved", role="technician")
    assert r.status_code == 422 and r.json()["error"]["field"] == "resolution_code"
    r = move(api, ticket_id, "resolved", role="technician", resolution_code="valve_fixed",
             note="replaced gasket")
    assert r.status_code == 200
    assert r.json()["resolution_code"] == "valve_fixed" and r.json()["resolved_at"]


@pytest.mark.parametrize("category", ["consultation", "query"])
def test_first_contact_resolution_needs_no_dispatch_or_callback(api, category):
    ticket_id = new_ticket(api, category)
    r = move(api, ticket_id, "resolved", role="agent", resolution_code="answered")
    assert r.status_code == 200 and r.json()["first_contact_resolution"] is True
    r = move(api, ticket_id, "closed", role="agent")
    assert r.status_code == 200 and r.json()["status"] == "closed"


@pytest.mark.parametrize("category", ["repair", "complaint", "help_request", "report",
                                      "outage_report"])
def test_other_categories_cannot_be_resolved_at_first_contact(api, category):
    ticket_id = new_ticket(api, category)
    r = move(api, ticket_id, "resolved", role="agent", resolution_code="answered")
    assert r.status_code == 409 and r.json()["error"]["code"] == "dispatch_required"


def resolved_field_ticket(api):
    ticket_id = new_ticket(api)
    drive(api, ticket_id, Status.resolved)
    return ticket_id


def test_field_ticket_closes_only_after_callback_or_reason(api):
    ticket_id = resolved_field_ticket(api)
    r = move(api, ticket_id, "closed", role="agent")
    assert r.status_code == 409 and r.json()["error"]["code"] == "callback_required"
    assert "回访" in r.json()["error"]["message"]
    r = move(api, ticket_id, "closed", role="agent", reason="customer moved away")
    assert r.status_code == 200
    assert r.json()["close_reason"] == "customer moved away" and r.json()["closed_at"]


def test_satisfied_callback_closes(api):
    ticket_id = resolved_field_ticket(api)
    r = api.post("agent", f"/api/v1/tickets/{ticket_id}/callback",
                 json={"outcome": "satisfied", "note": "很满意"})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "closed" and body["callback_outcome"] == "satisfied"
    kinds = [e["kind"] for e in body["events"]]
    assert kinds[-2:] == ["callback", "closed"]


def test_dissatisfied_callback_reopens_with_fresh_sla(api):
    ticket_id = resolved_field_ticket(api)
    r = api.post("agent", f"/api/v1/tickets/{ticket_id}/callback",
                 json={"outcome": "dissatisfied", "note": "still leaking"})
    body = r.json()
    assert body["status"] == "new" and body["reopen_count"] == 1
    assert body["callback_outcome"] is None and body["resolved_at"] is None
    assert body["events"][-1]["kind"] == "reopened"
    running = [c for c in body["sla"] if c["stopped_at"] is None]
    assert {c["clock"] for c in running} == {"assign", "arrive", "resolve"}
    assert all(c["cycle"] == 1 for c in running)


def test_unreachable_callback_is_recorded_then_close_allowed(api):
    ticket_id = resolved_field_ticket(api)
    r = api.post("agent", f"/api/v1/tickets/{ticket_id}/callback", json={"outcome": "unreachable"})
    assert r.status_code == 200 and r.json()["status"] == "resolved"
    assert move(api, ticket_id, "closed", role="agent").status_code == 200


def test_callback_on_open_ticket_is_409(api):
    ticket_id = new_ticket(api)
    r = api.post("agent", f"/api/v1/tickets/{ticket_id}/callback", json={"outcome": "satisfied"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_resolved"
    r = api.post("agent", f"/api/v1/tickets/{ticket_id}/callback", json={"outcome": "meh"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "outcome"


def test_audit_trail_is_append_only(api, engine):
    ticket_id = new_ticket(api)
    move(api, ticket_id, "cancelled", note="caller hung up")
    for statement in ("UPDATE ticket_events SET note = 'rewritten'",
                      "DELETE FROM ticket_events"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    events = api.get("admin", f"/api/v1/tickets/{ticket_id}").json()["events"]
    assert [(e["kind"], e["actor"], e["note"]) for e in events] == [
        ("created", "agent", None), ("cancelled", "admin", "caller hung up")]


def test_unknown_ticket_is_404(api):
    r = move(api, 424242, "cancelled")
    assert r.status_code == 404 and r.json()["error"]["field"] == "ticket_id"
