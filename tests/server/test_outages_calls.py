"""Outages and the flood of calls: tickets absorbed by an active outage, the caller-ID hint,
inference of suspected outages from bursts of calls, the public status, and the IVR's TwiML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from server.outages import inference
from sms_gateway import TwilioSignatureValidator

from .outage_support import INSIDE, add_customer, declare, messages, polygon

PUBLIC = "https://crewline.example.com"
TOKEN = "test-auth-token-0123456789abcdef"


@pytest.fixture
def app(settings, clock):
    """The app with Twilio signatures checked against TOKEN at the public URL."""
    from server.app import create_app

    configured = settings.model_copy(update={"twilio_auth_token": SecretStr(TOKEN),
                                             "public_base_url": PUBLIC})
    application = create_app(configured, clock=clock)
    yield application
    application.state.engine.dispose()


def ticket(api, lon, lat, *, category="outage_report", description="家里停水了", **body):
    r = api.post("agent", "/api/v1/tickets", json={
        "category": category, "description": description, "location": {"lon": lon, "lat": lat},
        **body})
    assert r.status_code == 201, r.text
    return r.json()["ticket"]


def linked(engine) -> dict[int, tuple[int, str]]:
    with engine.connect() as conn:
        return {r.ticket_id: (r.outage_id, r.source) for r in conn.execute(text(
            "SELECT ticket_id, outage_id, source FROM outage_tickets"))}


# -- call absorption -----------------------------------------------------------------------------

def test_new_tickets_inside_an_active_outage_link_to_it(api, engine):
    outage = declare(api, polygon())
    low = declare(api, {"kind": "buffer", "center": {"lon": 25.0, "lat": 60.2}, "radius_m": 300},
                  type="low_pressure", area_name="Pasila")
    no_water = ticket(api, *INSIDE)
    english = ticket(api, 24.903, 60.161, category="repair", description="No water since noon")
    pressure = ticket(api, 25.0, 60.2005, category="repair", description="水压很低")
    leak_in_low_pressure = ticket(api, 25.0, 60.2, category="repair", description="burst pipe")
    complaint = ticket(api, *INSIDE, category="complaint", description="bill too high")
    outside = ticket(api, 24.95, 60.25)
    in_hole = ticket(api, 24.91, 60.165)
    links = linked(engine)
    assert links == {no_water["id"]: (outage["id"], "auto"), english["id"]: (outage["id"], "auto"),
                     pressure["id"]: (low["id"], "auto")}
    for t in (leak_in_low_pressure, complaint, outside, in_hole):
        assert t["id"] not in links
    detail = api.get("agent", f"/api/v1/outages/{outage['id']}").json()
    assert [t["ticket_id"] for t in detail["tickets"]] == [no_water["id"], english["id"]]
    assert detail["linked_tickets"] == 2
    events = api.get("agent", f"/api/v1/tickets/{no_water['id']}").json()["events"]
    assert [e["kind"] for e in events] == ["created", "outage_linked"]
    assert events[1]["data"] == {"outage_id": outage["id"], "ref": outage["ref"], "source": "auto"}


def test_suspected_restored_and_future_outages_absorb_nothing(api, engine, clock):
    declare(api, polygon(), status="suspected", etr=None)
    restored = declare(api, polygon())
    api.post("dispatcher", f"/api/v1/outages/{restored['id']}/transitions", json={"to": "restored"})
    start = clock.now() + timedelta(hours=3)
    declare(api, polygon(), type="planned_maintenance", starts_at=start.isoformat(),
            etr=(start + timedelta(hours=2)).isoformat())
    ticket(api, *INSIDE)
    assert linked(engine) == {}


def test_caller_id_lookup_tells_the_agent_about_the_outage(api, engine):
    inside = add_customer(engine, *INSIDE, phone="+8613800138000")
    add_customer(engine, 24.95, 60.25, phone="+8613800138001")
    outage = declare(api, polygon(), area_name="Kamppi")
    r = api.get("agent", "/api/v1/customers/lookup?phone=138 0013 8000")
    assert r.status_code == 200
    [match] = r.json()["matches"]
    [hint] = match["outages"]
    assert hint["ref"] == outage["ref"] and hint["service_point_id"] == inside["service_point_id"]
    assert hint["etr"].startswith("2026-01-05T10:00:00")
    assert hint["hint"] == {"zh-CN": f"位于停水 {outage['ref']}（Kamppi）范围内，预计恢复 01-05 18:00",
                            "en": f"inside water outage {outage['ref']} (Kamppi), ETR 01-05 18:00"}
    other = api.get("agent", "/api/v1/customers/lookup?phone=13800138001").json()
    assert other["matches"][0]["outages"] == []


# -- inference -----------------------------------------------------------------------------------

def burst(api, clock, center, n, *, step_m=40.0, description="停水了", category="outage_report"):
    """``n`` calls a few tens of metres apart, a minute apart."""
    lon, lat = center
    made = []
    for i in range(n):
        made.append(ticket(api, lon + (i % 3) * step_m / 55_600, lat + (i // 3) * step_m / 111_300,
                           description=description, category=category))
        clock.advance(minutes=1)
    return made


def infer(app, clock, **policy):
    with app.state.sessionmaker() as session:
        result = inference.run(session, clock.now(), inference.InferencePolicy(**policy))
        session.commit()
    return result


def test_a_burst_of_calls_raises_one_suspected_outage_and_scattered_calls_none(app, api, engine,
                                                                               clock):
    calls = burst(api, clock, (24.93, 60.17), 7)
    scattered = [ticket(api, 24.80 + i * 0.05, 60.10 + i * 0.03) for i in range(6)]
    first = infer(app, clock)
    assert len(first.raised) == 1
    outage = api.get("dispatcher", f"/api/v1/outages/{first.raised[0]}").json()
    assert (outage["status"], outage["source"], outage["type"]) == ("suspected", "inferred",
                                                                    "water_outage")
    assert sorted(t["ticket_id"] for t in outage["tickets"]) == [t["id"] for t in calls]
    assert all(t["source"] == "inferred" for t in outage["tickets"])
    assert not set(linked(engine)) & {t["id"] for t in scattered}
    # the proposed area covers every call (hull + buffer)
    with engine.connect() as conn:
        assert conn.execute(text(
            "SELECT bool_and(ST_Covers(o.area, t.location)) FROM outages o, tickets t "
            "WHERE o.id = :o AND t.id = ANY(:ids)"),
            {"o": outage["id"], "ids": [t["id"] for t in calls]}).scalar_one()
    assert messages(engine) == []  # suspected: nobody is texted
    # repeat runs raise nothing new; later calls in the same place join the same outage
    assert infer(app, clock).raised == []
    later = burst(api, clock, (24.9302, 60.1701), 5)
    again = infer(app, clock)
    assert again.raised == [] and again.attached == {outage["id"]: 5}
    assert {linked(engine)[t["id"]][0] for t in later} == {outage["id"]}
    assert api.get("agent", "/api/v1/outages?active=true").json()[0]["linked_tickets"] == 12


def test_low_pressure_bursts_propose_a_low_pressure_outage_and_dismissal_sticks(app, api,
                                                                                engine, clock):
    burst(api, clock, (24.96, 60.18), 6, category="repair", description="water pressure is low")
    [raised] = infer(app, clock).raised
    outage = api.get("dispatcher", f"/api/v1/outages/{raised}").json()
    assert outage["type"] == "low_pressure"
    api.post("dispatcher", f"/api/v1/outages/{raised}/transitions", json={"to": "dismissed"})
    burst(api, clock, (24.9601, 60.1801), 6, category="repair", description="low pressure")
    result = infer(app, clock)
    assert (result.raised, result.ignored_clusters) == ([], 1)


def test_calls_outside_the_window_or_unrelated_do_not_cluster(app, api, clock):
    burst(api, clock, (24.93, 60.17), 3)
    clock.advance(minutes=45)
    api.renew_tokens()
    burst(api, clock, (24.93, 60.17), 3)
    burst(api, clock, (24.95, 60.17), 6, category="complaint", description="rude agent")
    assert infer(app, clock, window_minutes=30).raised == []


def test_inference_endpoint_for_dispatchers(api, clock):
    burst(api, clock, (24.93, 60.17), 5)
    assert api.post("agent", "/api/v1/outages/infer").status_code == 403
    r = api.post("dispatcher", "/api/v1/outages/infer")
    assert r.status_code == 200 and [o["status"] for o in r.json()] == ["suspected"]
    assert api.post("dispatcher", "/api/v1/outages/infer").json() == []


# -- public status -------------------------------------------------------------------------------

def test_public_status_without_login_and_without_customer_data(api, engine):
    add_customer(engine, *INSIDE, address="Kalevankatu 1")
    add_customer(engine, 24.95, 60.25, address="Kaukana 9")
    outage = declare(api, polygon(), area_name="Kamppi")
    declare(api, polygon(), status="suspected", etr=None)  # not public
    r = api.client.get("/api/v1/outages/public")
    assert r.status_code == 200
    [feature] = r.json()["features"]
    assert feature["properties"] == {"ref": outage["ref"], "type": "water_outage",
                                     "status": "confirmed", "area_name": "Kamppi",
                                     "starts_at": "2026-01-05T08:00:00Z",
                                     "etr": "2026-01-05T10:00:00Z"}
    def numbers(value):
        return [value] if isinstance(value, float | int) else [n for v in value for n in numbers(v)]

    coordinates = numbers(feature["geometry"]["coordinates"])
    assert coordinates and all(round(c, 3) == c for c in coordinates)
    assert "customer" not in r.text and "+86" not in r.text

    hit = api.client.get(f"/api/v1/outages/public/check?lon={INSIDE[0]}&lat={INSIDE[1]}").json()
    assert [o["ref"] for o in hit["outages"]] == [outage["ref"]]
    assert api.client.get("/api/v1/outages/public/check?lon=24.91&lat=60.165").json()["outages"] \
        == []  # in the hole
    # a point is echoed at the public precision (3 decimals), like the public areas
    echoed = api.client.get("/api/v1/outages/public/check?lon=24.9123456&lat=60.1654321").json()
    assert echoed["point"] == {"lon": 24.912, "lat": 60.165}
    by_address = api.client.get("/api/v1/outages/public/check?address=kalevankatu 1").json()
    assert [o["ref"] for o in by_address["outages"]] == [outage["ref"]]
    assert by_address["point"] is None  # the service point's place is never told
    # an address we do not know looks exactly like a customer's outside every outage
    known = api.client.get("/api/v1/outages/public/check?address=Kaukana 9")
    unknown = api.client.get("/api/v1/outages/public/check?address=Nowhere 1")
    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json()) \
        == (200, {"point": None, "outages": []})
    assert "Kaukana" not in known.text and "Nowhere" not in unknown.text
    r = api.client.get("/api/v1/outages/public/check?lon=24.9")
    assert (r.status_code, r.json()["error"]["field"]) == (422, "lat")
    assert api.client.post("/api/v1/outages/public").status_code == 405


# -- IVR -----------------------------------------------------------------------------------------

def call(client, path, params, *, signature=None):
    signature = signature if signature is not None else TwilioSignatureValidator(TOKEN).sign(
        PUBLIC + path, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def voice_params(caller):
    return {"CallSid": "CA" + "0" * 32, "AccountSid": "AC" + "1" * 32, "From": caller,
            "To": "+15005550006", "CallStatus": "ringing", "Direction": "inbound"}


def twiml(response) -> ET.Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.content)
    assert root.tag == "Response"
    return root


def test_ivr_announces_the_outage_in_chinese_and_offers_sms(api, client, engine):
    add_customer(engine, *INSIDE, phone="+8613800138000")
    outage = declare(api, polygon(), area_name="Kamppi")
    root = twiml(call(client, "/api/v1/outages/ivr/voice", voice_params("+8613800138000")))
    assert [child.tag for child in root] == ["Say", "Gather", "Say", "Enqueue"]
    announce = root[0]
    assert announce.get("language") == "zh-CN" and announce.get("voice") == "alice"
    assert "Kamppi" in announce.text and "停水" in announce.text
    assert "1月5日18点00分" in announce.text  # 10:00 UTC in Shanghai
    gather = root[1]
    assert gather.get("numDigits") == "1" and gather.get("method") == "POST"
    action = urlparse(gather.get("action"))
    assert f"{action.scheme}://{action.netloc}" == PUBLIC
    assert action.path == "/api/v1/outages/ivr/gather"
    assert parse_qs(action.query) == {"outage_id": [str(outage["id"])], "lang": ["zh-CN"]}
    assert "请按1" in gather[0].text and gather[0].get("language") == "zh-CN"
    assert root[3].text == "crewline-agents"


def test_ivr_in_english_for_english_customers(api, client, engine):
    add_customer(engine, *INSIDE, phone="+358401234567", language="en")
    declare(api, polygon(), area_name="Kamppi", type="emergency_repair")
    root = twiml(call(client, "/api/v1/outages/ivr/voice", voice_params("+358401234567")))
    assert root[0].get("language") == "en-US"
    assert "an emergency repair in Kamppi" in root[0].text and "January 5 at 18:00" in root[0].text
    assert "press 1" in root[1][0].text


def test_ivr_callers_outside_go_straight_to_an_agent(api, client, engine):
    add_customer(engine, 24.95, 60.25, phone="+8613800138001")
    declare(api, polygon())
    for caller in ("+8613800138001", "+8613999999999", "anonymous"):
        root = twiml(call(client, "/api/v1/outages/ivr/voice", voice_params(caller)))
        assert [child.tag for child in root] == ["Say", "Enqueue"]


def test_ivr_press_1_subscribes_the_caller_to_updates(app, api, client, engine):
    customer = add_customer(engine, *INSIDE, phone="+8613800138000", consent=False)
    outage = declare(api, polygon())
    [refused] = messages(engine)
    assert refused["status"] == "suppressed"  # no consent: the notice was not sent
    path = f"/api/v1/outages/ivr/gather?outage_id={outage['id']}&lang=zh-CN"
    params = {**voice_params("+8613800138000"), "Digits": "1"}
    root = twiml(call(client, path, params))
    assert [child.tag for child in root] == ["Say", "Say", "Enqueue"]
    assert "短信通知" in root[0].text
    twiml(call(client, path, params))  # pressed again on another call: still one subscription
    with engine.connect() as conn:
        subs = conn.execute(text("SELECT outage_id, e164, customer_id, language "
                                 "FROM outage_subscriptions")).all()
    assert subs == [(outage["id"], "+8613800138000", customer["id"], "zh-CN")]
    # the request is consent for this outage: the ETR change and the restoration reach them
    api.patch("dispatcher", f"/api/v1/outages/{outage['id']}",
              json={"etr": "2026-01-05T20:00:00+08:00"})
    api.post("dispatcher", f"/api/v1/outages/{outage['id']}/transitions", json={"to": "restored"})
    sent = [(m["template"], m["status"]) for m in messages(engine)]
    assert sent == [("outage_notice", "suppressed"), ("etr_change", "pending"),
                    ("restoration", "pending")]


def test_ivr_press_1_from_a_landline_is_declined_politely(api, client, engine):
    add_customer(engine, *INSIDE, phone="+861065529988", kind="landline")
    outage = declare(api, polygon())
    root = twiml(call(client, f"/api/v1/outages/ivr/gather?outage_id={outage['id']}&lang=en",
                      {**voice_params("+861065529988"), "Digits": "1"}))
    assert "cannot receive text messages" in root[0].text and root[-1].tag == "Enqueue"
    other = twiml(call(client, f"/api/v1/outages/ivr/gather?outage_id={outage['id']}&lang=en",
                       {**voice_params("+861065529988"), "Digits": "2"}))
    assert [child.tag for child in other] == ["Say", "Enqueue"]


def test_ivr_dials_a_configured_number_instead_of_queueing(settings, clock, engine):
    from fastapi.testclient import TestClient

    from server.app import create_app

    application = create_app(settings.model_copy(update={
        "twilio_auth_token": SecretStr(TOKEN), "public_base_url": PUBLIC,
        "ivr_agent_number": "+861012345678"}), clock=clock)
    with TestClient(application) as c:
        root = twiml(call(c, "/api/v1/outages/ivr/voice", voice_params("+8613800138009")))
    application.state.engine.dispose()
    assert [child.tag for child in root] == ["Say", "Dial"] and root[1].text == "+861012345678"


def test_ivr_webhooks_are_signature_checked(api, client, engine):
    outage = declare(api, polygon())
    params = voice_params("+8613800138000")
    r = client.post("/api/v1/outages/ivr/voice", data=params)
    assert (r.status_code, r.json()["error"]["code"]) == (401, "not_authenticated")
    r = call(client, "/api/v1/outages/ivr/voice", params, signature="bm90IHJpZ2h0")
    assert r.status_code == 403
    assert r.json()["error"] == {"code": "invalid_signature", "field": "X-Twilio-Signature",
                                 "message": "X-Twilio-Signature does not match this request"}
    # signed for another outage id: the query is covered by the signature
    path = f"/api/v1/outages/ivr/gather?outage_id={outage['id']}&lang=zh-CN"
    signature = TwilioSignatureValidator(TOKEN).sign(PUBLIC + path, {**params, "Digits": "1"})
    r = client.post(f"/api/v1/outages/ivr/gather?outage_id={outage['id'] + 1}&lang=zh-CN",
                    data={**params, "Digits": "1"}, headers={"X-Twilio-Signature": signature})
    assert r.status_code == 403
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM outage_subscriptions")).scalar_one() == 0
    # an outage that does not exist (any more): no subscription, the caller still gets through
    root = twiml(call(client, "/api/v1/outages/ivr/gather?outage_id=999&lang=en",
                      {**params, "Digits": "1"}))
    assert [child.tag for child in root] == ["Say", "Enqueue"]
    assert root[0].text == "Connecting you to an agent. Please hold."


def test_concurrent_inference_runs_raise_one_outage(app, api, clock):
    import threading

    burst(api, clock, (24.93, 60.17), 6)
    barrier = threading.Barrier(3)
    raised, errors = [], []

    def run():
        try:
            barrier.wait(5)
            raised.extend(infer(app, clock).raised)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert errors == [] and len(raised) == 1
    assert len(api.get("agent", "/api/v1/outages").json()) == 1
