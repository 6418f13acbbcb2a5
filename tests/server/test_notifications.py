"""SMS notifications: outbox in the event's transaction, consent, quiet hours, the send loop
against the real twilio SDK + local Twilio server, webhooks, templates, staff views."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from server.notifications import service
from server.notifications.outbox import Outbox, Pacer
from server.notifications.service import SmsPolicy
from sms_gateway import LogProvider, SmsGatewayConfig, build_provider
from tests.support.twilio_server import DEFAULT_AUTH_TOKEN, TwilioTestServer

from .conftest import HELSINKI

PUBLIC = "https://crewline.example.com"
MOBILE = "+8613800138000"  # the `customer` fixture's mobile


@pytest.fixture
def app(settings, clock):
    """The app with webhook signatures checked against the local Twilio server's token."""
    from server.app import create_app

    configured = settings.model_copy(update={
        "twilio_auth_token": SecretStr(DEFAULT_AUTH_TOKEN), "public_base_url": PUBLIC})
    application = create_app(configured, clock=clock)
    yield application
    application.state.engine.dispose()


@pytest.fixture
def twilio():
    with TwilioTestServer() as server:
        yield server


def provider_for(server: TwilioTestServer, **overrides):
    return build_provider(SmsGatewayConfig(
        provider="twilio", account_sid=server.account_sid, auth_token=server.auth_token,
        from_number="+15005550006", api_base_url=server.base_url,
        **{"timeout_seconds": 5.0, **overrides}))


@pytest.fixture
def policy():
    return SmsPolicy(public_base_url=PUBLIC, lease_seconds=60)


@pytest.fixture
def outbox(app, twilio, clock, policy):
    return Outbox(app.state.sessionmaker, provider_for(twilio), clock, policy, Pacer(1000))


def rows(engine, where="true", **params):
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT * FROM sms_messages WHERE {where} ORDER BY id"),
                            params).mappings().all()


def new_ticket(api, customer=None, role="agent", **body):
    body.setdefault("category", "repair")
    body.setdefault("description", "burst pipe")
    if customer is not None:
        body.setdefault("customer_id", customer["id"])
    else:
        body.setdefault("location", HELSINKI)
    r = api.post(role, "/api/v1/tickets", json=body)
    assert r.status_code == 201, r.text
    return r.json()["ticket"]


def post_signed(client, twilio, path, params, *, signature=None, url=None):
    signature = signature if signature is not None else twilio.sign(url or PUBLIC + path, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def status_params(twilio, sid, status, **extra):
    return {"AccountSid": twilio.account_sid, "MessageSid": sid, "MessageStatus": status,
            "SmsSid": sid, "SmsStatus": status, "To": MOBILE, "From": "+15005550006", **extra}


def inbound_params(twilio, body, sender=MOBILE, sid=None):
    sid = sid or "SM" + uuid.uuid4().hex
    return {"AccountSid": twilio.account_sid, "MessageSid": sid, "SmsMessageSid": sid,
            "From": sender, "To": "+15005550006", "Body": body, "NumSegments": "1"}


# -- enqueue -------------------------------------------------------------------------------------

def test_ticket_creation_queues_the_received_sms_in_its_transaction(api, engine, customer):
    t = new_ticket(api, customer)
    [m] = rows(engine)
    assert m["ticket_id"] == t["id"] and m["customer_id"] == customer["id"]
    assert m["template"] == "ticket_received" and m["status"] == "pending"
    assert m["to_e164"] == MOBILE and m["language"] == "zh-CN"
    assert "CL-0000001" in m["body"] and m["body"].startswith("【Crewline】")
    assert (m["encoding"], m["segments"]) == ("UCS-2", 1)
    assert m["dedupe_key"].startswith(f"ticket:{t['id']}:ticket_received:")


def test_nothing_is_queued_for_work_that_rolled_back(app, engine, customer, users):
    from server.auth.service import Principal
    from server.models import Role
    from server.tickets import service as tickets
    from server.tickets.schemas import TicketIn

    actor = Principal(users["agent"], "agent", Role.agent)
    with app.state.sessionmaker() as session:
        tickets.create(session, TicketIn(category="repair", description="x",
                                         customer_id=customer["id"]),
                       actor, datetime(2026, 1, 5, 8, tzinfo=UTC), tickets.Policy())
        assert session.execute(text("SELECT count(*) FROM sms_messages")).scalar_one() == 1
        session.rollback()
    assert rows(engine) == []


def test_language_recipient_and_no_recipient(api, engine):
    # English reporter on a mobile: English text, GSM-7
    new_ticket(api, reporter_phone="+358 40 9001234", language="en")
    # a landline reporter and no customer: nobody to text
    new_ticket(api, reporter_phone="010-6552 9988")
    [m] = rows(engine)
    assert m["to_e164"] == "+358409001234" and m["language"] == "en"
    assert m["encoding"] == "GSM-7" and m["body"].startswith("Crewline: we logged your report")


def test_landline_reporter_falls_back_to_the_customers_mobile(api, engine, customer):
    new_ticket(api, customer, reporter_phone="010-6552 9988")
    assert [m["to_e164"] for m in rows(engine)] == [MOBILE]


def test_no_identical_repeat_for_a_ticket(app, api, engine, customer, clock):
    t = new_ticket(api, customer)
    with app.state.sessionmaker() as session:
        assert service.on_ticket_event(session, t["id"], "created", clock.now()) is None
        first = service.on_ticket_assigned(session, t["id"], 1200, clock.now())
        assert service.on_ticket_assigned(session, t["id"], 1200, clock.now()) is None
        changed = service.on_ticket_assigned(session, t["id"], 1800, clock.now())
        session.commit()
    assert first and changed and first != changed
    bodies = [m["body"] for m in rows(engine, "template = 'crew_assigned'")]
    # 08:00 UTC + 20 min = 16:20 in Asia/Shanghai
    assert "预计20分钟后（约16:20）到达" in bodies[0] and "30分钟" in bodies[1]


def test_eta_must_not_be_negative(app, api, customer, clock):
    from server.core.errors import InvalidInput

    t = new_ticket(api, customer)
    with app.state.sessionmaker() as session, pytest.raises(InvalidInput) as info:
        service.on_ticket_assigned(session, t["id"], -1, clock.now())
    assert info.value.field == "eta_seconds"


def test_customer_without_consent_is_never_texted(api, engine, outbox, twilio):
    r = api.post("manager", "/api/v1/customers", json={
        "account_no": "W-2", "name": "No SMS", "phones": ["139 0013 9000"],
        "preferred_language": "en", "sms_consent": False,
        "service_points": [{"address": "Aleksanterinkatu 1", "location": HELSINKI}]})
    assert r.status_code == 201
    new_ticket(api, r.json())
    [m] = rows(engine)
    assert (m["status"], m["error_code"]) == ("suppressed", "no_consent")
    outbox.run(max_seconds=5)
    assert twilio.messages == []


def test_consent_withdrawn_after_queueing_is_respected_at_send_time(app, api, engine, outbox,
                                                                    twilio, customer):
    new_ticket(api, customer)
    with app.state.sessionmaker() as session:
        session.execute(text("UPDATE customers SET sms_consent = false"))
        session.commit()
    outbox.run(max_seconds=5)
    assert twilio.messages == []
    assert [(m["status"], m["error_code"]) for m in rows(engine)] == [("suppressed", "no_consent")]


# -- the send loop -------------------------------------------------------------------------------

def test_worker_sends_through_the_twilio_sdk(api, engine, outbox, twilio, customer):
    new_ticket(api, customer)
    stats = outbox.run(max_seconds=5)
    assert stats.sent == 1
    [m] = rows(engine)
    [sms] = twilio.messages
    assert m["status"] == "sent" and m["provider"] == "twilio"
    assert m["provider_message_id"] == sms.sid and m["provider_status"] == "queued"
    assert m["attempts"] == 1 and m["sent_at"] is not None and m["claimed_at"] is None
    assert sms.to == MOBILE and sms.body == m["body"]
    assert sms.status_callback == f"{PUBLIC}/api/v1/sms/status?ref={m['id']}"
    assert outbox.run(max_seconds=5).claimed == 0  # nothing twice
    assert len(twilio.messages) == 1


def test_log_provider_for_the_demo(app, api, engine, clock, policy, customer):
    provider = LogProvider()
    box = Outbox(app.state.sessionmaker, provider, clock, policy, Pacer(1000))
    new_ticket(api, customer)
    box.run(max_seconds=5)
    [m] = rows(engine)
    [logged] = provider.messages()
    assert m["status"] == "sent" and m["provider"] == "log"
    assert m["provider_message_id"] == logged.message_id and logged.body == m["body"]


def test_transient_errors_back_off_then_succeed(api, engine, outbox, twilio, clock, customer):
    new_ticket(api, customer)
    twilio.fail_next(1, status=503)
    outbox.run(max_seconds=5)
    [m] = rows(engine)
    assert (m["status"], m["attempts"], m["error_code"]) == ("pending", 1, "sms.transient")
    assert m["next_attempt_at"] == clock.now() + timedelta(seconds=5)
    assert outbox.run(max_seconds=5).claimed == 0  # not due yet
    twilio.throttle_next(1)  # 429 on the next try
    clock.advance(seconds=5)
    outbox.run(max_seconds=5)
    [m] = rows(engine)
    assert (m["status"], m["attempts"], m["error_code"]) == ("pending", 2, "sms.rate_limited")
    assert m["next_attempt_at"] == clock.now() + timedelta(seconds=10)
    clock.advance(seconds=10)
    outbox.run(max_seconds=5)
    [m] = rows(engine)
    assert (m["status"], m["attempts"]) == ("sent", 3)
    assert len(twilio.messages) == 1


def test_gives_up_after_max_attempts(app, api, engine, twilio, clock, customer):
    box = Outbox(app.state.sessionmaker, provider_for(twilio), clock,
                 SmsPolicy(public_base_url=PUBLIC, max_attempts=2), Pacer(1000))
    new_ticket(api, customer)
    twilio.fail_next(5, status=500)
    box.run(max_seconds=5)
    clock.advance(seconds=5)
    box.run(max_seconds=5)
    [m] = rows(engine)
    assert (m["status"], m["attempts"], m["error_code"]) == ("failed", 2, "too_many_attempts")


def test_permanent_errors_are_not_retried(api, engine, outbox, twilio, clock):
    twilio_invalid = "+358400900999"
    twilio._invalid.add(twilio_invalid)  # the server's knob for 21211
    new_ticket(api, reporter_phone=twilio_invalid, language="en")
    outbox.run(max_seconds=5)
    clock.advance(hours=1)
    outbox.run(max_seconds=5)
    [m] = rows(engine)
    assert (m["status"], m["attempts"], m["error_code"]) == ("failed", 1,
                                                             "sms.invalid_recipient")
    assert len([r for r in twilio.requests if r.method == "POST"]) == 1


def test_provider_opt_out_is_recorded_as_consent(api, engine, outbox, twilio, customer):
    twilio.opt_out(MOBILE)
    new_ticket(api, customer)
    outbox.run(max_seconds=5)
    [m] = rows(engine)
    assert (m["status"], m["error_code"]) == ("failed", "sms.recipient_opted_out")
    assert api.get("agent", f"/api/v1/customers/{customer['id']}").json()["sms_consent"] is False
    with engine.connect() as conn:
        assert conn.execute(text("SELECT source FROM sms_opt_outs WHERE e164 = :e"),
                            {"e": MOBILE}).scalar_one() == "provider"
    new_ticket(api, customer, description="second")
    assert rows(engine)[-1]["status"] == "suppressed"


def test_bad_credentials_pause_the_loop_without_failing_messages(app, api, engine, twilio,
                                                                 clock, policy, customer):
    wrong = build_provider(SmsGatewayConfig(
        provider="twilio", account_sid=twilio.account_sid, auth_token="wrong",
        from_number="+15005550006", api_base_url=twilio.base_url))
    box = Outbox(app.state.sessionmaker, wrong, clock, policy, Pacer(1000))
    new_ticket(api, customer)
    new_ticket(api, customer, description="another")
    stats = box.run(max_seconds=5)
    assert stats.paused and stats.sent == 0
    assert [(m["status"], m["attempts"]) for m in rows(engine)] == [("pending", 0)] * 2


def test_answer_lost_after_acceptance_is_reconciled_not_resent(app, api, engine, twilio, clock,
                                                               policy, customer):
    slow = Outbox(app.state.sessionmaker, provider_for(twilio, timeout_seconds=0.3), clock,
                  policy, Pacer(1000))
    new_ticket(api, customer)
    twilio.delay_next(1.0)  # Twilio creates the message, the answer comes too late
    stats = slow.run(max_seconds=5)
    assert stats.unknown == 1
    [m] = rows(engine)
    assert m["status"] == "sending" and m["error_code"] == "sms.transient"
    assert len(twilio.messages) == 1
    assert slow.run(max_seconds=5).claimed == 0  # inside the lease: hands off
    clock.advance(seconds=61)
    stats = slow.run(max_seconds=5)
    assert (stats.reconciled_found, stats.claimed) == (1, 0)
    [m] = rows(engine)
    [sms] = twilio.messages
    assert m["status"] == "sent" and m["provider_message_id"] == sms.sid
    assert len([r for r in twilio.requests if r.method == "POST"]) == 1


def test_a_claim_never_handed_over_is_sent_after_the_lease(app, api, engine, outbox, twilio,
                                                          clock, policy, customer):
    new_ticket(api, customer)
    with app.state.sessionmaker() as session:  # a loop that claimed, committed, then died
        assert len(service.claim_due(session, clock.now(), policy, 10)) == 1
        session.commit()
    assert outbox.run(max_seconds=5).claimed == 0
    clock.advance(seconds=61)
    stats = outbox.run(max_seconds=5)
    assert (stats.reconciled_resend, stats.sent) == (1, 1)
    [m] = rows(engine)
    assert m["status"] == "sent" and m["attempts"] == 2
    assert len(twilio.messages) == 1


def test_concurrent_loops_send_each_message_once(app, api, engine, twilio, clock, policy):
    for i in range(30):
        new_ticket(api, reporter_phone=f"+35840090{i:04d}", language="en")
    loops = [Outbox(app.state.sessionmaker, provider_for(twilio), clock, policy, Pacer(1000),
                    batch_size=4) for _ in range(3)]
    threads = [threading.Thread(target=box.run, kwargs={"max_seconds": 20}) for box in loops]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [m["status"] for m in rows(engine)] == ["sent"] * 30
    bodies = [m.body for m in twilio.messages]
    assert len(bodies) == 30 and len(set(bodies)) == 30


def test_pacing_respects_messages_per_second(app, api, engine, twilio, clock, policy):
    for i in range(6):
        new_ticket(api, reporter_phone=f"+35840091{i:04d}", language="en")
    box = Outbox(app.state.sessionmaker, provider_for(twilio), clock, policy, Pacer(10))
    started = time.monotonic()
    assert box.run(max_seconds=10).sent == 6
    assert time.monotonic() - started >= 0.5  # 6 sends at 10/s: 5 intervals of 0.1 s


def test_pacer_spaces_sends_evenly():
    now = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(round(seconds, 6))
        now[0] += seconds

    pacer = Pacer(4, monotonic=lambda: now[0], sleep=sleep)
    for _ in range(5):
        pacer.wait()
    assert slept == [0.25] * 4 and now[0] == 1.0


def test_pacer_catches_up_lost_time_within_its_burst_but_no_more():
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    pacer = Pacer(10, burst=2, monotonic=lambda: now[0], sleep=sleep)
    times = []

    def send(after=0.0):
        now[0] += after
        pacer.wait()
        times.append(round(now[0], 6))

    send()
    send(after=0.35)  # a slow answer: slots 0.1, 0.2, 0.3 were missed
    for _ in range(4):
        send()
    # two missed slots are caught up at once, the rest is lost; then back on a 0.1 s schedule
    assert times == [0.0, 0.35, 0.35, 0.35, 0.45, 0.55]
    send(after=10)  # idle for 10 s: still no more than the burst at once
    for _ in range(3):
        send()
    assert times[6:] == [10.55, 10.55, 10.55, 10.65]


# -- quiet hours ---------------------------------------------------------------------------------

def test_quiet_hours_hold_normal_messages_until_morning(app, api, engine, outbox, twilio, clock,
                                                        customer):
    clock.set(datetime(2026, 1, 5, 14, 30, tzinfo=UTC))  # 22:30 in Asia/Shanghai
    new_ticket(api, customer)
    new_ticket(api, customer, priority="emergency", description="gas smell")
    with app.state.sessionmaker() as session:
        service.on_outage_notice(session, "OUT-1", [customer["id"]], area="东城区",
                                 etr="23:30", now=clock.now())
        session.commit()
    outbox.run(max_seconds=5)
    by_template = {(m["template"], m["urgent"]): m for m in rows(engine)}
    normal = by_template[("ticket_received", False)]
    assert normal["status"] == "pending" and normal["error_code"] == "quiet_hours"
    assert normal["next_attempt_at"] == datetime(2026, 1, 6, 0, 0, tzinfo=UTC)  # 08:00 local
    assert by_template[("ticket_received", True)]["status"] == "sent"
    assert by_template[("outage_notice", True)]["status"] == "sent"
    assert len(twilio.messages) == 2
    clock.set(datetime(2026, 1, 6, 0, 0, tzinfo=UTC))
    outbox.run(max_seconds=5)
    assert {m["status"] for m in rows(engine)} == {"sent"}


def test_quiet_hours_policy():
    policy = SmsPolicy(timezone="Asia/Shanghai")
    assert policy.quiet_until(datetime(2026, 1, 5, 12, 59, tzinfo=UTC)) is None  # 20:59
    assert policy.quiet_until(datetime(2026, 1, 5, 13, 0, tzinfo=UTC)) == \
        datetime(2026, 1, 6, 0, 0, tzinfo=UTC)
    assert policy.quiet_until(datetime(2026, 1, 5, 23, 59, tzinfo=UTC)) == \
        datetime(2026, 1, 6, 0, 0, tzinfo=UTC)  # 07:59 local
    assert policy.quiet_until(datetime(2026, 1, 6, 0, 0, tzinfo=UTC)) is None
    assert SmsPolicy(quiet_start=None, quiet_end=None).quiet_until(
        datetime(2026, 1, 5, 14, tzinfo=UTC)) is None


# -- outage functions ----------------------------------------------------------------------------

def test_outage_messages_by_language_without_repeats(app, api, engine, customer, clock):
    r = api.post("manager", "/api/v1/customers", json={
        "account_no": "W-3", "name": "Anna", "phones": ["+358 40 1234567"],
        "preferred_language": "en", "sms_consent": True,
        "service_points": [{"address": "Aleksanterinkatu 2", "location": HELSINKI}]})
    english = r.json()
    ids = [customer["id"], english["id"]]
    with app.state.sessionmaker() as session:
        assert service.on_outage_notice(session, "OUT-7", ids, area="Kamppi", etr="18:00",
                                        now=clock.now()) == 2
        assert service.on_outage_notice(session, "OUT-7", ids, area="Kamppi", etr="18:00",
                                        now=clock.now()) == 0
        assert service.on_etr_change(session, "OUT-7", ids, area="Kamppi", etr="19:30",
                                     now=clock.now()) == 2
        assert service.on_etr_change(session, "OUT-7", ids, area="Kamppi", etr="19:30",
                                     now=clock.now()) == 0
        assert service.on_restoration(session, "OUT-7", ids, area="Kamppi" * 10,
                                      now=clock.now()) == 2
        session.commit()
    ms = rows(engine)
    assert len(ms) == 6 and all(m["urgent"] and m["outage_ref"] == "OUT-7" for m in ms)
    en = [m for m in ms if m["language"] == "en"]
    assert en[0]["body"] == ("Crewline: supply interrupted in Kamppi. Expected restoration 18:00."
                             " We apologise for the inconvenience.")
    assert "KamppiKamppiKampp..." in en[2]["body"] and en[2]["encoding"] == "GSM-7"
    assert [m["encoding"] for m in ms if m["language"] == "zh-CN"] == ["UCS-2"] * 3


# -- status callbacks ----------------------------------------------------------------------------

def test_status_callbacks_move_forward_only(client, api, engine, outbox, twilio, customer):
    new_ticket(api, customer)
    outbox.run(max_seconds=5)
    [m] = rows(engine)
    sid, path = m["provider_message_id"], f"/api/v1/sms/status?ref={m['id']}"
    for status in ("sent", "delivered", "sent", "queued", "undelivered"):
        r = post_signed(client, twilio, path, status_params(twilio, sid, status))
        assert r.status_code == 204, r.text
    [m] = rows(engine)
    assert (m["status"], m["provider_status"]) == ("delivered", "delivered")
    assert m["delivered_at"] is not None


def test_undelivered_callback_records_the_error(client, api, engine, outbox, twilio, customer):
    new_ticket(api, customer)
    outbox.run(max_seconds=5)
    [m] = rows(engine)
    r = post_signed(client, twilio, "/api/v1/sms/status",
                    status_params(twilio, m["provider_message_id"], "undelivered",
                                  ErrorCode="30003"))
    assert r.status_code == 204
    [m] = rows(engine)
    assert (m["status"], m["error_code"]) == ("undelivered", "provider_30003")


def test_callback_before_the_record_attaches_by_reference(app, client, api, engine, twilio,
                                                          clock, policy, customer):
    """The loop died after Twilio accepted; Twilio's callback (carrying our ref) arrives first."""
    new_ticket(api, customer)
    with app.state.sessionmaker() as session:
        [claim] = service.claim_due(session, clock.now(), policy, 10)
        session.commit()
    r = post_signed(client, twilio, f"/api/v1/sms/status?ref={claim.id}",
                    status_params(twilio, "SM" + "a" * 32, "sent"))
    assert r.status_code == 204
    [m] = rows(engine)
    assert (m["status"], m["provider_message_id"]) == ("sent", "SM" + "a" * 32)


@pytest.mark.parametrize("signature,status,code", [
    ("", 401, "not_authenticated"), ("bm90IGEgc2lnbmF0dXJl", 403, "invalid_signature")])
def test_unsigned_or_badly_signed_webhooks_are_refused(client, api, engine, outbox, twilio,
                                                       customer, signature, status, code):
    new_ticket(api, customer)
    outbox.run(max_seconds=5)
    [before] = rows(engine)
    params = status_params(twilio, before["provider_message_id"], "delivered")
    r = post_signed(client, twilio, "/api/v1/sms/status", params, signature=signature)
    assert r.status_code == status
    assert r.json()["error"]["code"] == code
    assert r.json()["error"]["field"] == "X-Twilio-Signature"
    r = post_signed(client, twilio, "/api/v1/sms/inbound", inbound_params(twilio, "STOP"),
                    signature=signature)
    assert r.status_code == status
    assert rows(engine) == [before]
    assert api.get("agent", f"/api/v1/customers/{customer['id']}").json()["sms_consent"]


def test_signature_must_cover_the_public_url_and_every_field(client, api, twilio, customer):
    params = inbound_params(twilio, "STOP")
    # signed for the app's own address instead of the public one Twilio called
    r = post_signed(client, twilio, "/api/v1/sms/inbound", params,
                    url="http://testserver/api/v1/sms/inbound")
    assert r.status_code == 403
    # a field changed after signing
    signature = twilio.sign(PUBLIC + "/api/v1/sms/inbound", params)
    r = post_signed(client, twilio, "/api/v1/sms/inbound", {**params, "From": "+8613900000000"},
                    signature=signature)
    assert r.status_code == 403
    assert api.get("agent", f"/api/v1/customers/{customer['id']}").json()["sms_consent"]


def test_webhooks_are_refused_without_a_configured_token(settings, clock, twilio):
    from fastapi.testclient import TestClient

    from server.app import create_app

    application = create_app(settings, clock=clock)
    try:
        with TestClient(application) as c:
            r = post_signed(c, twilio, "/api/v1/sms/inbound", inbound_params(twilio, "STOP"))
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "webhook_not_configured"
    finally:
        application.state.engine.dispose()


def test_signed_but_malformed_webhook_is_422(client, twilio):
    r = post_signed(client, twilio, "/api/v1/sms/status", {"MessageSid": "SM1"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_webhook"
    r = post_signed(client, twilio, "/api/v1/sms/inbound",
                    inbound_params(twilio, "hi", sender="not-a-number"))
    assert r.status_code == 422 and r.json()["error"]["field"] == "From"


# -- inbound -------------------------------------------------------------------------------------

@pytest.mark.parametrize("keyword", ["STOP", "退订", "td", " Unsubscribe "])
def test_opt_out_keywords_withdraw_consent_everywhere(client, api, engine, twilio, customer,
                                                      keyword):
    other = api.post("manager", "/api/v1/customers", json={
        "account_no": "W-9", "name": "Same phone", "phones": ["138 0013 8000"],
        "preferred_language": "en", "sms_consent": True,
        "service_points": [{"address": "Aleksanterinkatu 3", "location": HELSINKI}]}).json()
    new_ticket(api, customer)  # queued, not sent yet
    r = post_signed(client, twilio, "/api/v1/sms/inbound", inbound_params(twilio, keyword))
    assert r.status_code == 200
    assert r.text.endswith("<Response></Response>")
    for c in (customer, other):
        assert api.get("agent", f"/api/v1/customers/{c['id']}").json()["sms_consent"] is False
    assert [(m["status"], m["error_code"]) for m in rows(engine)] == [("suppressed",
                                                                      "opted_out")]
    new_ticket(api, other)
    assert rows(engine)[-1]["status"] == "suppressed"
    with engine.connect() as conn:
        audit = conn.execute(text("SELECT intent, action FROM sms_inbound")).all()
    assert [tuple(a) for a in audit] == [("opt_out", "opted_out")]


def test_start_opts_back_in_and_replies(client, api, engine, twilio, customer):
    post_signed(client, twilio, "/api/v1/sms/inbound", inbound_params(twilio, "STOP"))
    r = post_signed(client, twilio, "/api/v1/sms/inbound", inbound_params(twilio, "START"))
    assert r.status_code == 200 and "application/xml" in r.headers["content-type"]
    assert "<Message>【Crewline】您已恢复接收服务通知短信。回复TD退订。</Message>" in r.text
    assert api.get("agent", f"/api/v1/customers/{customer['id']}").json()["sms_consent"] is True
    new_ticket(api, customer)
    assert rows(engine)[-1]["status"] == "pending"


def test_help_replies_in_the_customers_language(client, twilio, customer):
    r = post_signed(client, twilio, "/api/v1/sms/inbound", inbound_params(twilio, "帮助"))
    assert "回复TD退订" in r.text
    r = post_signed(client, twilio, "/api/v1/sms/inbound",
                    inbound_params(twilio, "HELP", sender="+358409001234"))
    assert "<Message>【Crewline】" in r.text  # unknown number: the default language


def test_redelivered_inbound_is_processed_once(client, api, engine, outbox, twilio, customer):
    t = resolved_and_texted(api, outbox, customer)
    params = inbound_params(twilio, "5")
    for _ in range(2):
        assert post_signed(client, twilio, "/api/v1/sms/inbound", params).status_code == 200
    events = [e for e in api.get("agent", f"/api/v1/tickets/{t['id']}").json()["events"]
              if e["kind"] == "sms_survey"]
    assert len(events) == 1


def resolved_and_texted(api, outbox, customer):
    t = new_ticket(api, customer, category="consultation")
    r = api.post("agent", f"/api/v1/tickets/{t['id']}/transitions",
                 json={"to": "resolved", "resolution_code": "advice_given"})
    assert r.status_code == 200, r.text
    outbox.run(max_seconds=5)
    return t


def test_survey_score_and_confirmation_are_recorded_on_the_ticket(client, api, engine, outbox,
                                                                  twilio, customer):
    t = resolved_and_texted(api, outbox, customer)
    resolved = rows(engine, "template = 'ticket_resolved'")
    assert resolved[0]["status"] == "sent" and "回复Y" in resolved[0]["body"]
    for body in ("５", "Y"):
        r = post_signed(client, twilio, "/api/v1/sms/inbound", inbound_params(twilio, body))
        assert r.status_code == 200
    events = api.get("agent", f"/api/v1/tickets/{t['id']}").json()["events"]
    survey = [e for e in events if e["kind"] == "sms_survey"]
    confirm = [e for e in events if e["kind"] == "sms_confirmation"]
    assert survey[0]["data"]["score"] == 5 and survey[0]["actor"] is None
    assert confirm[0]["data"]["resolved"] is True
    with engine.connect() as conn:
        actions = conn.execute(text("SELECT action, ticket_id FROM sms_inbound ORDER BY id")).all()
    assert [tuple(a) for a in actions] == [("survey_recorded", t["id"]),
                                          ("confirmed_resolved", t["id"])]


def test_n_reply_reopens_a_ticket_awaiting_its_callback_once(client, api, engine, outbox, twilio,
                                                             customer):
    t = resolved_and_texted(api, outbox, customer)
    r = post_signed(client, twilio, "/api/v1/sms/inbound", inbound_params(twilio, "N"))
    assert r.status_code == 200
    ticket = api.get("agent", f"/api/v1/tickets/{t['id']}").json()
    assert ticket["status"] == "new" and ticket["reopen_count"] == 1
    reopened = [e for e in ticket["events"] if e["kind"] == "reopened"]
    assert len(reopened) == 1 and reopened[0]["actor"] is None
    assert reopened[0]["data"] == {"source": "sms_reply"}
    assert any(c["cycle"] == 1 and c["stopped_at"] is None for c in ticket["sla"])  # clocks anew
    # a second N (another message) finds no ticket awaiting an answer: recorded, nothing else
    r = post_signed(client, twilio, "/api/v1/sms/inbound", inbound_params(twilio, "n"))
    assert r.status_code == 200
    again = api.get("agent", f"/api/v1/tickets/{t['id']}").json()
    assert again["reopen_count"] == 1 and again["status"] == "new"
    with engine.connect() as conn:
        actions = conn.execute(text("SELECT action FROM sms_inbound ORDER BY id")).scalars().all()
    assert actions == ["reopened", "no_survey"]


def test_score_without_a_survey_changes_no_ticket(client, api, engine, twilio, customer):
    t = new_ticket(api, customer)
    r = post_signed(client, twilio, "/api/v1/sms/inbound", inbound_params(twilio, "1"))
    assert r.status_code == 200
    events = api.get("agent", f"/api/v1/tickets/{t['id']}").json()["events"]
    assert [e["kind"] for e in events] == ["created"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT action FROM sms_inbound")).scalar_one() == "no_survey"


# -- staff endpoints -----------------------------------------------------------------------------

def test_message_list_roles_and_masking(api, customer):
    t = new_ticket(api, customer)
    for role in ("agent", "manager"):
        r = api.get(role, "/api/v1/sms/messages")
        assert r.status_code == 200
        assert r.json()[0]["to"] == "+86*******8000"
    full = api.get("admin", f"/api/v1/sms/messages?ticket_id={t['id']}&status=pending").json()
    assert full[0]["to"] == MOBILE and full[0]["template"] == "ticket_received"
    for role in ("dispatcher", "technician"):
        assert api.get(role, "/api/v1/sms/messages").status_code == 403
    r = api.get("agent", "/api/v1/sms/messages?status=lost")
    assert r.status_code == 422 and r.json()["error"]["field"] == "status"
    assert api.get("agent", "/api/v1/sms/messages?status=sent").json() == []
    assert api.client.get("/api/v1/sms/messages").status_code == 401


def test_template_over_the_segment_budget_is_rejected(api, engine):
    long = "【Crewline】" + "您的报修已受理，" * 20 + "工单号{number}。"
    r = api.put("manager", "/api/v1/sms/templates/ticket_received/zh-CN", json={"body": long})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "template_over_budget" and err["field"] == "body"
    assert "UCS-2" in err["message"] and "budget is 2" in err["message"]
    r = api.put("manager", "/api/v1/sms/templates/ticket_received/en",
                json={"body": "Ticket {number} for {customer_name}"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "template_unknown_placeholder"
    r = api.put("manager", "/api/v1/sms/templates/ticket_received/en", json={"body": "{number"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "template_malformed"
    r = api.put("manager", "/api/v1/sms/templates/no_such/en", json={"body": "x"})
    assert r.status_code == 422
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sms_templates")).scalar_one() == 0


def test_saved_template_is_used_for_new_messages(api, engine):
    body = "Crewline: got it, ticket {number}. Reply STOP to opt out."
    assert api.put("agent", "/api/v1/sms/templates/ticket_received/en",
                   json={"body": body}).status_code == 403
    r = api.put("manager", "/api/v1/sms/templates/ticket_received/en", json={"body": body})
    assert r.status_code == 200
    assert r.json() | {"body": None} == {"key": "ticket_received", "language": "en", "body": None,
                                         "encoding": "GSM-7", "segments": 1, "segment_budget": 2}
    new_ticket(api, reporter_phone="+358409001234", language="en")
    assert rows(engine)[0]["body"] == "Crewline: got it, ticket CL-0000001. Reply STOP to opt out."
    listed = {(t["key"], t["language"]): t
              for t in api.get("agent", "/api/v1/sms/templates").json()}
    assert listed[("ticket_received", "en")]["custom"] is True
    assert listed[("ticket_received", "zh-CN")]["custom"] is False
    assert listed[("outage_notice", "en")]["urgent"] is True


def test_built_in_templates_fit_the_default_budget():
    from server.notifications import templates

    for key, texts in templates.DEFAULTS.items():
        for language, body in texts.items():
            assert templates.check(key, language, body, 2).segment_count <= 2


def test_phone_numbers_are_masked_in_logs(api, outbox, twilio, customer, capsys):
    twilio.opt_out(MOBILE)
    new_ticket(api, customer)
    capsys.readouterr()
    outbox.run(max_seconds=5)
    logged = capsys.readouterr()
    output = logged.out + logged.err
    assert "sms not sent" in output and "+86*******8000" in output
    assert MOBILE not in output and "13800138000" not in output


def test_a_batch_held_for_quiet_hours_does_not_stall_urgent_messages(app, api, engine, twilio,
                                                                     clock, policy, customer):
    clock.set(datetime(2026, 1, 5, 14, 30, tzinfo=UTC))  # 22:30 in Asia/Shanghai
    for i in range(12):
        new_ticket(api, reporter_phone=f"+35840092{i:04d}", language="en")
    new_ticket(api, customer, priority="emergency", description="gas smell")
    box = Outbox(app.state.sessionmaker, provider_for(twilio), clock, policy, Pacer(1000),
                 batch_size=5)
    assert box.run(max_seconds=10).sent == 1
    assert [m.to for m in twilio.messages] == [MOBILE]
    assert len(rows(engine, "error_code = 'quiet_hours'")) == 12
