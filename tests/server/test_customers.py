"""Caller-ID lookup in every common phone format, customer records, CSV import."""

import subprocess
import sys

import pytest
from sqlalchemy import text

from server.core.errors import InvalidInput
from server.customers.phones import normalize
from tests.support import cli_env

from .conftest import HELSINKI


@pytest.mark.parametrize("typed", [
    "+8613800138000", "+86 138 0013 8000", "+86-138-0013-8000", "13800138000", "138 0013 8000",
    "138-0013-8000", "008613800138000", "8613800138000", "(+86) 138 0013 8000",
    "１３８００１３８０００",
])
def test_lookup_finds_mobile_in_any_format(api, customer, typed):
    r = api.get("agent", "/api/v1/customers/lookup", params={"phone": typed})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["normalized"] == "+8613800138000"
    assert [m["customer"]["account_no"] for m in body["matches"]] == ["W-100001"]


@pytest.mark.parametrize("typed", ["010-6552 9988", "(010) 65529988", "+86 10 6552 9988",
                                   "01065529988", "0086 10 6552 9988"])
def test_lookup_finds_landline_in_any_format(api, customer, typed):
    body = api.get("agent", "/api/v1/customers/lookup", params={"phone": typed}).json()
    assert body["normalized"] == "+861065529988"
    assert len(body["matches"]) == 1


def test_lookup_returns_service_points_and_only_open_tickets(api, customer):
    sp = customer["service_points"][0]
    open_id = api.post("agent", "/api/v1/tickets", json={
        "category": "repair", "description": "leak", "customer_id": customer["id"]}
    ).json()["ticket"]["id"]
    done_id = api.post("agent", "/api/v1/tickets", json={
        "category": "query", "description": "bill", "customer_id": customer["id"]}
    ).json()["ticket"]["id"]
    api.post("agent", f"/api/v1/tickets/{done_id}/transitions",
             json={"to": "resolved", "resolution_code": "answered"})
    match = api.get("agent", "/api/v1/customers/lookup",
                    params={"phone": "13800138000"}).json()["matches"][0]
    assert match["customer"]["service_points"][0]["location"] == HELSINKI
    assert match["customer"]["service_points"][0]["id"] == sp["id"]
    assert [t["id"] for t in match["open_tickets"]] == [open_id]


def test_unknown_caller_is_an_empty_answer(api, customer):
    body = api.get("agent", "/api/v1/customers/lookup", params={"phone": "139 1234 5678"}).json()
    assert body == {"query": "139 1234 5678", "normalized": "+8613912345678", "matches": []}


@pytest.mark.parametrize("typed", ["", "hello", "123", "+86 138", "1" * 40])
def test_invalid_phone_is_422_naming_the_field(api, typed):
    r = api.get("agent", "/api/v1/customers/lookup", params={"phone": typed})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "phone"


def test_shared_number_finds_every_household(api, customer):
    r = api.post("agent", "/api/v1/customers", json={
        "account_no": "W-100002", "name": "Li Ming Jr", "phones": ["+86 138 0013 8000"],
        "preferred_language": "en"})
    assert r.status_code == 201
    body = api.get("agent", "/api/v1/customers/lookup", params={"phone": "13800138000"}).json()
    assert [m["customer"]["account_no"] for m in body["matches"]] == ["W-100001", "W-100002"]


def test_create_customer_errors(api, customer):
    r = api.post("agent", "/api/v1/customers", json={"account_no": "W-100001", "name": "dup"})
    assert r.status_code == 409 and r.json()["error"]["field"] == "account_no"
    r = api.post("agent", "/api/v1/customers", json={
        "account_no": "W-3", "name": "x", "phones": ["12"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "phones[0]"
    r = api.post("agent", "/api/v1/customers", json={
        "account_no": "W-4", "name": "x",
        "service_points": [{"address": "a", "location": {"lon": 200, "lat": 10}}]})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "service_points.0.location.lon"
    r = api.post("agent", "/api/v1/customers", json={
        "account_no": "W-5", "name": "x", "preferred_language": "fr"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "preferred_language"


def test_normalize_is_strict_about_garbage():
    with pytest.raises(InvalidInput) as exc:
        normalize("call me maybe", field="reporter_phone")
    assert exc.value.field == "reporter_phone"


# -- CSV import ----------------------------------------------------------------------------------
GOOD = """account_no,name,phones,language,sms_consent,address,lon,lat
A-1,王芳,13900139001,zh-CN,yes,Aleksanterinkatu 1,24.9469,60.1687
A-2,Emma Laine,+86 139 0013 9002;010-6000 0001,en,no,Esplanadi 5,24.9489,60.1675
"""
BAD_ROWS = """account_no,name,phones,language,sms_consent,address,lon,lat
B-1,Good Row,13900139011,zh-CN,yes,Street 1,24.94,60.17
B-2,,13900139012,zh-CN,yes,Street 2,24.94,60.17
B-3,Bad Phone,12345,zh-CN,yes,Street 3,24.94,60.17
B-4,Bad Lon,13900139014,zh-CN,yes,Street 4,999,60.17
B-5,Bad Lang,13900139015,fr,yes,Street 5,24.94,60.17
B-6,Bad Consent,13900139016,en,maybe,Street 6,24.94,60.17
B-1,Repeated,13900139017,en,yes,Street 7,24.94,60.17
B-8,Good Too,13900139018,en,yes,Street 8,24.95,60.17
"""


def upload(api, data, mode=None, role="manager"):
    params = {"mode": mode} if mode else {}
    return api.post(role, "/api/v1/customers/import", params=params,
                    files={"file": ("customers.csv", data, "text/csv")})


def count(engine, table="customers"):
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_import_good_file(api, engine):
    r = upload(api, GOOD)
    assert r.status_code == 200, r.text
    assert r.json() | {"errors": []} == {"mode": "all_or_nothing", "rows": 2, "inserted": 2,
                                          "updated": 0, "skipped": 0, "committed": True,
                                          "errors": []}
    body = api.get("agent", "/api/v1/customers/lookup", params={"phone": "010 6000 0001"}).json()
    c = body["matches"][0]["customer"]
    assert (c["account_no"], c["preferred_language"], c["sms_consent"]) == ("A-2", "en", False)


def test_import_all_or_nothing_reports_every_bad_row_and_writes_nothing(api, engine):
    r = upload(api, BAD_ROWS)
    body = r.json()
    assert body["committed"] is False and body["inserted"] == 0
    assert [(e["row"], e["field"]) for e in body["errors"]] == [
        (3, "name"), (4, "phones"), (5, "lon"), (6, "language"), (7, "sms_consent"),
        (8, "account_no")]
    assert "line 2" in body["errors"][-1]["reason"]
    assert count(engine) == 0 and count(engine, "service_points") == 0


def test_import_skip_invalid_writes_the_good_rows(api, engine):
    body = upload(api, BAD_ROWS, mode="skip_invalid").json()
    assert body["committed"] is True
    assert (body["inserted"], body["skipped"], len(body["errors"])) == (2, 6, 6)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT account_no FROM customers ORDER BY 1")).scalars().all() \
            == ["B-1", "B-8"]


def test_reimport_updates_instead_of_duplicating(api, engine):
    upload(api, GOOD)
    changed = GOOD.replace("王芳", "王芳芳").replace("13900139001", "13900139099")
    body = upload(api, changed).json()
    assert (body["inserted"], body["updated"]) == (0, 2)
    assert count(engine) == 2 and count(engine, "service_points") == 2
    assert api.get("agent", "/api/v1/customers/lookup",
                   params={"phone": "13900139001"}).json()["matches"] == []
    match = api.get("agent", "/api/v1/customers/lookup",
                    params={"phone": "13900139099"}).json()["matches"][0]
    assert match["customer"]["name"] == "王芳芳"


@pytest.mark.parametrize("data,fragment", [
    ("name,phones\nx,1\n", "missing column"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
])
def test_import_unreadable_files(api, data, fragment):
    r = upload(api, data)
    assert r.status_code == 422 and r.json()["error"]["field"] == "file"
    assert fragment in r.json()["error"]["message"]


def test_import_extra_cells_is_a_row_error(api):
    body = upload(api, GOOD.strip() + ",extra\n").json()
    assert body["errors"] == [{"row": 3, "field": None, "reason": "more cells than header columns"}]


def test_cli_import_with_progress_and_exit_codes(settings, engine, tmp_path):
    env = cli_env(CREWLINE_DATABASE_URL=settings.database_url, CREWLINE_ENV="test")
    bad = tmp_path / "bad.csv"
    bad.write_text(BAD_ROWS, encoding="utf-8")
    cmd = [sys.executable, "-m", "server.cli", "import", "customers"]
    proc = subprocess.run([*cmd, str(bad)], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1
    assert "line 4: phones:" in proc.stderr and '"committed": false' in proc.stdout
    assert count(engine) == 0
    proc = subprocess.run([*cmd, str(bad), "--skip-invalid"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0 and '"inserted": 2' in proc.stdout
    assert count(engine) == 2
