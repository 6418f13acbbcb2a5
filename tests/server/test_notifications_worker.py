"""The real worker process (`crewline worker`), the real twilio SDK and the local Twilio server:
killed exactly between Twilio's acceptance and our record of it, restarted, one SMS only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from tests.support import cli_env
from tests.support.twilio_server import TwilioTestServer

from .test_notifications import MOBILE, new_ticket


def _worker(settings, twilio: TwilioTestServer, tmp_path, **extra: str) -> subprocess.Popen:
    env = cli_env(
        CREWLINE_DATABASE_URL=settings.database_url, CREWLINE_ENV="test",
        CREWLINE_SMS_PROVIDER="twilio", CREWLINE_TWILIO_ACCOUNT_SID=twilio.account_sid,
        CREWLINE_TWILIO_AUTH_TOKEN=twilio.auth_token, CREWLINE_TWILIO_FROM="+15005550006",
        CREWLINE_TWILIO_API_BASE_URL=twilio.base_url, CREWLINE_SMS_TIMEOUT_SECONDS="1",
        CREWLINE_SMS_SENDING_LEASE_SECONDS="2", CREWLINE_SMS_MESSAGES_PER_SECOND="50",
        # the real clock may be inside quiet hours; this test is about crashes
        CREWLINE_SMS_QUIET_START="00:00", CREWLINE_SMS_QUIET_END="00:00",
        CREWLINE_PUBLIC_BASE_URL="https://crewline.example.com", **extra)
    return subprocess.Popen([sys.executable, "-m", "server.cli", "worker"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _stop(worker: subprocess.Popen) -> str:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
    return worker.stdout.read() if worker.stdout else ""


def _messages(engine):
    with engine.connect() as conn:
        return conn.execute(text("SELECT id, status, provider_message_id, attempts, body "
                                 "FROM sms_messages ORDER BY id")).mappings().all()


def _wait(predicate, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
def test_worker_killed_after_acceptance_sends_exactly_one_sms(api, engine, settings, tmp_path,
                                                               customer):
    with TwilioTestServer() as twilio:
        new_ticket(api, customer)
        worker = _worker(settings, twilio, tmp_path, CREWLINE_SMS_CRASH_AFTER_ACCEPT="1")
        try:
            worker.wait(60)
        finally:
            output = _stop(worker)
        assert worker.returncode == 86, output  # the crash hook, right after Twilio accepted
        [sms] = twilio.messages
        [row] = _messages(engine)
        # Twilio has the message, we have no record of it: the dangerous state
        assert (row["status"], row["provider_message_id"]) == ("sending", None), output
        assert sms.to == MOBILE and sms.body == row["body"]

        worker = _worker(settings, twilio, tmp_path)
        try:
            settled = _wait(lambda: _messages(engine)[0]["status"] == "sent")
            time.sleep(1.5)  # more sweeps: they must find nothing to send
        finally:
            output = _stop(worker)
        assert settled, output
        [row] = _messages(engine)
        assert row["provider_message_id"] == sms.sid and row["attempts"] == 1
        assert len(twilio.messages) == 1
        assert len([r for r in twilio.requests if r.method == "POST"]) == 1
        lookups = [r for r in twilio.requests if r.method == "GET"]
        assert lookups and all(r.path.endswith("/Messages.json") for r in lookups)


@pytest.mark.slow
def test_restarted_worker_sends_what_the_crash_left_unsent(api, engine, settings, tmp_path,
                                                          customer):
    """Killed with several claimed: the accepted one is found, the others are sent once."""
    with TwilioTestServer() as twilio:
        for i in range(5):
            new_ticket(api, customer, description=f"leak {i}")
        worker = _worker(settings, twilio, tmp_path, CREWLINE_SMS_CRASH_AFTER_ACCEPT="1")
        try:
            worker.wait(60)
        finally:
            output = _stop(worker)
        assert worker.returncode == 86, output
        assert len(twilio.messages) == 1
        assert [r["status"] for r in _messages(engine)] == ["sending"] * 5  # one batch claimed
        worker = _worker(settings, twilio, tmp_path)
        try:
            settled = _wait(lambda: {r["status"] for r in _messages(engine)} == {"sent"})
            time.sleep(1.5)
        finally:
            output = _stop(worker)
        assert settled, output
        bodies = [m.body for m in twilio.messages]
        assert len(bodies) == 5 and len(set(bodies)) == 5
        rows = _messages(engine)
        assert {r["provider_message_id"] for r in rows} == {m.sid for m in twilio.messages}


@pytest.fixture
def live_app(settings, clock):
    """The app served by uvicorn on a free port, so the Twilio test server can call it."""
    import threading

    import uvicorn
    from pydantic import SecretStr

    from server.app import create_app
    from server.bench.common import free_port
    from tests.support.twilio_server import DEFAULT_AUTH_TOKEN

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    application = create_app(settings.model_copy(update={
        "twilio_auth_token": SecretStr(DEFAULT_AUTH_TOKEN), "public_base_url": base}),
        clock=clock)
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert _wait(lambda: server.started, 20)
    try:
        yield application, base
    finally:
        server.should_exit = True
        thread.join(10)
        application.state.engine.dispose()


def test_twilio_calls_our_webhooks_over_http(live_app, api, engine, clock, customer):
    """The local Twilio server POSTs signed status callbacks (to the URL the loop gave it) and an
    inbound STOP to the real HTTP server."""
    from server.notifications.outbox import Outbox, Pacer
    from server.notifications.service import SmsPolicy
    from sms_gateway import SmsGatewayConfig, build_provider

    application, base = live_app
    with TwilioTestServer() as twilio:
        provider = build_provider(SmsGatewayConfig(
            provider="twilio", account_sid=twilio.account_sid, auth_token=twilio.auth_token,
            from_number="+15005550006", api_base_url=twilio.base_url))
        box = Outbox(application.state.sessionmaker, provider, clock,
                     SmsPolicy(public_base_url=base), Pacer(1000))
        new_ticket(api, customer)
        box.run(max_seconds=5)
        [sms] = twilio.messages
        deliveries = twilio.run_lifecycle(sms.sid, "delivered")
        assert [d.response_status for d in deliveries] == [204, 204, 204]
        with engine.connect() as conn:
            row = conn.execute(text("SELECT status, provider_status FROM sms_messages")).one()
        assert tuple(row) == ("delivered", "delivered")
        reply = twilio.send_inbound(base + "/api/v1/sms/inbound", from_=MOBILE,
                                    to="+15005550006", body="退订")
        assert reply.response_status == 200
        with engine.connect() as conn:
            assert conn.execute(text("SELECT sms_consent FROM customers")).scalar_one() is False


def test_concurrent_out_of_order_callbacks_end_at_the_latest_status(live_app, api, engine, clock,
                                                                     customer):
    import random
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from server.notifications.outbox import Outbox, Pacer
    from server.notifications.service import SmsPolicy
    from sms_gateway import SmsGatewayConfig, build_provider

    application, base = live_app
    with TwilioTestServer() as twilio:
        provider = build_provider(SmsGatewayConfig(
            provider="twilio", account_sid=twilio.account_sid, auth_token=twilio.auth_token,
            from_number="+15005550006", api_base_url=twilio.base_url))
        new_ticket(api, customer)
        Outbox(application.state.sessionmaker, provider, clock, SmsPolicy(public_base_url=base),
               Pacer(1000)).run(max_seconds=5)
        [sms] = twilio.messages
        statuses = ["queued", "sent", "delivered"] * 8
        random.Random(7).shuffle(statuses)
        url = sms.status_callback

        def post(status: str) -> int:
            params = {"AccountSid": twilio.account_sid, "MessageSid": sms.sid,
                      "MessageStatus": status, "To": MOBILE, "From": "+15005550006"}
            return httpx.post(url, data=params, timeout=20,
                              headers={"X-Twilio-Signature": twilio.sign(url, params)}).status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(post, statuses))
        assert codes == [204] * len(statuses)
        with engine.connect() as conn:
            row = conn.execute(text("SELECT status, provider_status FROM sms_messages")).one()
        assert tuple(row) == ("delivered", "delivered")
