"""Every role against every endpoint family, and no endpoint without a login."""

import re

import pytest

from .conftest import HELSINKI, ROLES

DESK = {"agent", "dispatcher", "manager", "admin"}
CSV = "account_no,name,phones,address,lon,lat\nR-1,Role Test,13900139000,Street 1,24.94,60.17\n"

# (family, method, url template, request kwargs, roles allowed)
FAMILIES = [
    ("caller lookup", "GET", "/api/v1/customers/lookup?phone=13800138000", {}, DESK),
    ("customer read", "GET", "/api/v1/customers/{customer_id}", {}, DESK),
    ("customer search", "GET", "/api/v1/customers?name=李", {}, DESK),
    ("customer create", "POST", "/api/v1/customers",
     {"json": {"account_no": "X-{role}", "name": "N", "phones": []}}, {"agent", "manager", "admin"}),
    ("customer import", "POST", "/api/v1/customers/import",
     {"files": {"file": ("c.csv", CSV, "text/csv")}}, {"manager", "admin"}),
    ("ticket list", "GET", "/api/v1/tickets", {}, DESK),
    ("ticket read", "GET", "/api/v1/tickets/{ticket_id}", {}, DESK),
    ("ticket create", "POST", "/api/v1/tickets",
     {"json": {"category": "query", "description": "when is my bill due?"}}, DESK),
    ("duplicate check", "GET", "/api/v1/tickets/duplicates?category=repair&lon=24.94&lat=60.17",
     {}, DESK),
    ("ticket transition", "POST", "/api/v1/tickets/{ticket_id}/transitions",
     {"json": {"to": "cancelled"}}, DESK),
    ("callback", "POST", "/api/v1/tickets/{ticket_id}/callback",
     {"json": {"outcome": "satisfied"}}, {"agent", "manager", "admin"}),
    ("duplicate link", "POST", "/api/v1/tickets/{ticket_id}/links",
     {"json": {"duplicate_of": 999999}}, DESK),
    ("sla read", "GET", "/api/v1/sla/policies", {}, DESK),
    ("sla write", "PUT", "/api/v1/sla/policies/repair/normal",
     {"json": {"assign_minutes": 60, "arrive_minutes": 240, "resolve_minutes": 1440}},
     {"manager", "admin"}),
    ("user list", "GET", "/api/v1/users", {}, {"admin"}),
    ("user create", "POST", "/api/v1/users",
     {"json": {"username": "u-{role}", "password": "long-enough-pw", "role": "agent"}}, {"admin"}),
    ("user disable", "PATCH", "/api/v1/users/{tech_id}", {"json": {"is_active": True}}, {"admin"}),
    ("own profile", "GET", "/api/v1/auth/me", {}, set(ROLES)),
]


@pytest.mark.parametrize("family,method,url,kwargs,allowed", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_role_matrix(api, customer, family, method, url, kwargs, allowed):
    for role in ROLES:
        ticket = api.post("agent", "/api/v1/tickets", json={  # a fresh one: some calls change it
            "category": "repair", "description": "leak", "location": HELSINKI}).json()["ticket"]
        ids = {"customer_id": customer["id"], "ticket_id": ticket["id"],
               "tech_id": api.user_ids["technician"]}
        kw = {k: (_fmt(v, role) if k == "json" else v) for k, v in kwargs.items()}
        r = api.client.request(method, url.format(**ids), headers=api.headers(role), **kw)
        if role in allowed:
            assert r.status_code not in (401, 403), (role, r.status_code, r.text)
        else:
            assert r.status_code == 403, (role, r.status_code, r.text)
            assert r.json()["error"]["code"] == "forbidden"
            assert role in r.json()["error"]["message"]


def _fmt(value, role):
    if isinstance(value, dict):
        return {k: _fmt(v, role) for k, v in value.items()}
    return value.format(role=role) if isinstance(value, str) else value


PUBLIC = {"/health", "/api/v1/auth/token", "/openapi.json", "/docs", "/docs/oauth2-redirect",
          "/redoc",
          "/api/v1/outages/public", "/api/v1/outages/public/check",  # public outage status
          "/api/v1/devices/pair"}  # a handset trades a one-time code (test_devices_pairing.py)


def test_every_other_endpoint_requires_login(app, client):
    checked = 0
    for path, operations in app.openapi()["paths"].items():
        if path in PUBLIC:
            continue
        concrete = (path.replace("{category}", "repair").replace("{priority}", "normal"))
        concrete = re.sub(r"\{[a-z_]+\}", "1", concrete)
        for method in operations:
            r = client.request(method.upper(), concrete)
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.json()["error"]["code"] == "not_authenticated"
            checked += 1
    assert checked >= 15
