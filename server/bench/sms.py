"""`crewline bench sms`: the SMS outbox — enqueue rate and the paced send loop.

1. **Enqueue**: ``notifications.service.on_ticket_event(…, "created")`` for N tickets (default
   100,000), as the ticket intake calls it inside its transaction: look up the recipient, consent
   and template override, render, insert with the dedupe key. Committed every 100 events (the
   commit belongs to the ticket's own transaction in production). Floor, same run: the same rows
   (pre-rendered) inserted by raw psycopg ``INSERT``s, one round trip each, same commit chunking.
2. **Send loop**: the production ``Outbox`` (claim with FOR UPDATE SKIP LOCKED, commit, pace,
   send through the real twilio SDK, record) against the local Twilio-compatible server
   (``sms_gateway.testing.twilio_server``, in this process) with MPS = 100 for ``--send``
   messages. Target: >= 95 % of the MPS. Floor, same run: the bare provider + pacer with no
   database. Then: no message sent twice (distinct bodies at the server, one server message per
   sent row, the same ids on both sides).

The tickets and messages it creates in ``crewline_bench`` are removed at the start and the end.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime

import psycopg

from server.bench.common import bench_database, ensure_bench_user
from server.core.clock import SystemClock
from server.core.db import make_engine, make_sessionmaker
from server.notifications import service, templates
from server.notifications.outbox import Outbox, Pacer
from server.notifications.service import SmsPolicy
from server.notifications.templates import TemplateKey
from server.settings import Settings
from sms_gateway import OutboundSms, SmsGatewayConfig, build_provider
from sms_gateway.testing.twilio_server import TwilioTestServer

MARK = "sms bench"
CHUNK = 100

_TICKETS = """
INSERT INTO tickets (category, priority, channel, status, description, reporter_phone, language,
    created_by, created_at, updated_at, first_contact_resolution, reopen_count, sla_level)
SELECT 'repair', 'normal', 'phone', 'new', %(mark)s,
       '+86139' || lpad(g::text, 8, '0'), CASE WHEN g %% 4 = 0 THEN 'en' ELSE 'zh-CN' END,
       %(user)s, now(), now(), false, 0, 0
FROM generate_series(1, %(n)s) AS g
RETURNING id, reporter_phone, language
"""

_FLOOR_INSERT = """
INSERT INTO sms_messages (ticket_id, to_e164, language, template, body, encoding, segments,
    urgent, dedupe_key, status, attempts, next_attempt_at, created_at, updated_at)
VALUES (%s, %s, %s, 'ticket_received', %s, %s, %s, false, %s, 'pending', 0, %s, %s, %s)
"""


def _cleanup(libpq: str) -> int:
    with psycopg.connect(libpq) as conn:
        conn.execute("DELETE FROM sms_messages WHERE ticket_id IN "
                     "(SELECT id FROM tickets WHERE description = %s)", (MARK,))
        conn.execute("DELETE FROM tickets WHERE description = %s", (MARK,))
        # messages other benches left due in the shared bench database (the intake bench's
        # "received" SMS) would be claimed and sent by the send loop as if they were ours
        conn.execute("DELETE FROM sms_messages WHERE status IN ('pending', 'sending')")
        return conn.execute("SELECT id FROM users WHERE username = 'bench-agent'").fetchone()[0]


def _floor_enqueue(libpq: str, tickets: list[tuple], now: datetime, tick) -> float:
    rows = []
    for ticket_id, phone, language in tickets:
        rendered = templates.render(TemplateKey.ticket_received, language,
                                    {"number": f"CL-{ticket_id:07d}"})
        digest = hashlib.md5(f"{phone}|{rendered.body}".encode(), usedforsecurity=False)
        rows.append((ticket_id, phone, language, rendered.body, rendered.encoding,
                     rendered.segments, f"floor:{ticket_id}:{digest.hexdigest()}", now, now, now))
    with psycopg.connect(libpq) as conn:
        started = time.perf_counter()
        for i in range(0, len(rows), CHUNK):
            with conn.transaction():
                for row in rows[i:i + CHUNK]:
                    conn.execute(_FLOOR_INSERT, row)
            tick(min(i + CHUNK, len(rows)))
        elapsed = time.perf_counter() - started
        conn.execute("DELETE FROM sms_messages WHERE dedupe_key LIKE 'floor:%%'")
    return elapsed


def _enqueue(sessions, tickets: list[tuple], now: datetime, tick) -> float:
    started = time.perf_counter()
    for i in range(0, len(tickets), CHUNK):
        with sessions() as session:
            for ticket_id, _, _ in tickets[i:i + CHUNK]:
                service.on_ticket_event(session, ticket_id, "created", now)
            session.commit()
        tick(min(i + CHUNK, len(tickets)))
    return time.perf_counter() - started


def _provider(server: TwilioTestServer):
    return build_provider(SmsGatewayConfig(
        provider="twilio", account_sid=server.account_sid, auth_token=server.auth_token,
        from_number="+15005550006", api_base_url=server.base_url, timeout_seconds=10.0))


def _floor_send(mps: float, count: int) -> float:
    with TwilioTestServer() as server:
        provider, pacer = _provider(server), Pacer(mps)
        started = time.perf_counter()
        for i in range(count):
            pacer.wait()
            provider.send(OutboundSms(to=f"+86138{i:08d}", body=f"floor message {i}"))
        return count / (time.perf_counter() - started)


def run(settings: Settings, *, notifications: int = 100_000, send: int = 1000,
        mps: float = 100.0, progress=None) -> dict:
    url = bench_database(settings)
    libpq = url.replace("+psycopg", "")
    ensure_bench_user(libpq)
    user_id = _cleanup(libpq)
    engine = make_engine(settings.model_copy(update={"database_url": url}), pool_size=4)
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC)
    bar = progress() if progress else None
    if bar:
        bar.start()
    try:
        with psycopg.connect(libpq) as conn:
            tickets = [tuple(r) for r in conn.execute(
                _TICKETS, {"mark": MARK, "user": user_id, "n": notifications}).fetchall()]
            conn.execute("ANALYZE tickets")

        def ticker(label: str, total: int):
            if not bar:
                return lambda n: None
            task = bar.add_task(label, total=total)
            return lambda n: bar.update(task, completed=n)

        floor_s = _floor_enqueue(libpq, tickets, now, ticker("enqueue floor (raw)", len(tickets)))
        enqueue_s = _enqueue(sessions, tickets, now, ticker("enqueue (service)", len(tickets)))
        with psycopg.connect(libpq) as conn:
            conn.execute("ANALYZE sms_messages")
            queued = conn.execute("SELECT count(*) FROM sms_messages m JOIN tickets t ON "
                                  "t.id = m.ticket_id WHERE t.description = %s AND "
                                  "m.status = 'pending'", (MARK,)).fetchone()[0]

        floor_send_rate = _floor_send(mps, min(send, 500))
        policy = SmsPolicy(quiet_start=None, quiet_end=None,
                           public_base_url=settings.public_base_url.rstrip("/"))
        with TwilioTestServer() as server:
            outbox = Outbox(sessions, _provider(server), SystemClock(), policy, Pacer(mps),
                            batch_size=max(1, min(50, int(mps))))
            task = bar.add_task(f"send loop at {mps:g}/s", total=send) if bar else None
            started = time.perf_counter()
            sent = 0
            while sent < send:
                stats = outbox.run(max_seconds=3600, max_messages=min(50, send - sent))
                if stats.claimed == 0:
                    break
                sent += stats.sent
                if bar:
                    bar.update(task, completed=sent)
            send_s = time.perf_counter() - started
            at_server = server.messages
        with psycopg.connect(libpq) as conn:
            recorded = dict(conn.execute(
                "SELECT m.provider_message_id, m.body FROM sms_messages m JOIN tickets t ON "
                "t.id = m.ticket_id WHERE t.description = %s AND m.status = 'sent'",
                (MARK,)).fetchall())
    finally:
        if bar:
            bar.stop()
        engine.dispose()
        _cleanup(libpq)
    bodies = [m.body for m in at_server]
    no_duplicates = (len(bodies) == len(set(bodies)) == len(recorded)
                     and set(recorded) == {m.sid for m in at_server})
    enqueue_rate = notifications / enqueue_s
    floor_rate = notifications / floor_s
    send_rate = sent / send_s
    return {
        "benchmark": "sms", "notifications": notifications, "queued": queued,
        "enqueue_per_s": round(enqueue_rate, 1),
        "floor_raw_insert_per_s": round(floor_rate, 1),
        "enqueue_ratio": round(enqueue_rate / floor_rate, 3),
        "mps": mps, "sent": sent, "send_seconds": round(send_s, 2),
        "send_per_s": round(send_rate, 1),
        "send_vs_mps": round(send_rate / mps, 3),
        "floor_provider_only_per_s": round(floor_send_rate, 1),
        "send_vs_floor": round(send_rate / floor_send_rate, 3),
        "server_messages": len(at_server), "no_message_sent_twice": no_duplicates,
        "target_send_vs_mps": 0.95,
        "meets_target": send_rate / mps >= 0.95 and no_duplicates,
    }
