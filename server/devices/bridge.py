"""The server side of the handset link: uplink → database → application ack, and the durable
downlink → broker.

One paho-mqtt 2 client (CallbackAPIVersion.VERSION2, MQTT v5) subscribes through the shared
subscription ``$share/crewline/crewline/v1/devices/+/up/#``, so several bridges (replicas, or
several processes on one host) split the uplink.

Uplink. paho's network thread only queues what arrives; a worker thread drains the queue in
batches (up to ``batch_max`` messages, waiting at most ``batch_wait`` seconds for more) and
handles each batch in ONE transaction:

1. topic, size (protocol.MAX_PAYLOAD), UTF-8 JSON, JSON Schema — a failure goes to
   ``device_dead_letters`` (reason, topic, raw bytes) and the bridge carries on;
2. the device must be registered and not revoked (else dead letter ``unknown_device`` /
   ``revoked_device``); a kind without a registered handler is ``unsupported_kind``;
3. ``presence`` updates the device row (no ack: it is retained state, not an event);
4. the events are inserted into ``device_messages`` with one multi-row ``INSERT … ON CONFLICT
   (device_id, msg_id) DO NOTHING RETURNING`` — a redelivery hits the key and is only acked
   again, with the stored result; each new one is applied by its handler
   (server/devices/handlers.py) in a savepoint with the device's technician as the actor. A
   domain refusal (CrewlineError) is stored as ``rejected`` with the error and acked as such;
5. after the commit, ``{"msg_id", "result"}`` is published (QoS 1) on each device's ``down/ack``.

If the batch's transaction fails for any other reason (a deadlock with another bridge, a bug
triggered by one message, the database away), the batch is retried one message per transaction,
so one poison message costs only itself; what still fails is not acked and the handset resends it.
paho acknowledges QoS 1 (PUBACK) when a message is queued, not when it is stored: a bridge that
dies loses its queue, which the handsets' outboxes and the application acks repair.

Downlink. A publisher thread owns one PostgreSQL connection that LISTENs on ``crewline_downlink``
and holds a session advisory lock, so exactly one bridge publishes at a time (another takes over
within ``poll_interval`` when it dies). Woken by NOTIFY (sent on commit by
server/devices/downlink.py) or every ``poll_interval`` seconds, it publishes committed
``device_downlink`` rows whose ``published_at`` is NULL in id order (QoS 1), and stamps
``published_at`` only when the broker's PUBACK for that row arrives. After a broker restart the
unconfirmed rows are simply published again (the handset drops seqs it already has). A resync
request (uplink ``ack`` with ``resync``) resets ``published_at`` of the rows after the handset's
seq, which this loop then publishes again.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import structlog
from sqlalchemy import BigInteger, String, any_, bindparam, select, text, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session, sessionmaker

from mobile_app.link import protocol
from mobile_app.link.protocol import ProtocolError
from server.auth.service import Principal
from server.core.clock import Clock
from server.core.errors import CrewlineError
from server.devices import applier, downlink, handlers
from server.devices.handlers import HandlerContext
from server.models import Device, DeviceDeadLetter, DeviceMessage, Role, User
from server.settings import Settings

log = structlog.get_logger()

# pg_try_advisory_lock key of the downlink publisher ("crewline downlink" folded into int8)
PUBLISHER_LOCK = 0x6372_6577_646C_6E6B


# The payloads travel as one JSON array (the received bytes joined: no re-serialisation, no
# per-element array escaping), the short columns as arrays; one statement for the whole batch.
_INSERT_MESSAGES = text("""
INSERT INTO device_messages (device_id, msg_id, kind, received_at, payload, result, applied_at)
SELECT t.d, t.m, t.k, :now, p.value, 'accepted',
       CASE WHEN t.a THEN CAST(:now AS timestamptz) END
FROM unnest(CAST(:d AS varchar[]), CAST(:m AS uuid[]), CAST(:k AS varchar[]),
            CAST(:a AS boolean[])) WITH ORDINALITY AS t(d, m, k, a, n)
JOIN jsonb_array_elements(CAST(:p AS jsonb)) WITH ORDINALITY AS p(value, n) ON p.n = t.n
ON CONFLICT ON CONSTRAINT uq_device_messages_device_id_msg_id DO NOTHING
RETURNING device_id, msg_id, id
""")


# A batch's devices and their technicians: one array parameter, so the SQL text is the same for
# every batch (an IN list of N parameters is a new statement for each N, parsed every time).
_DEVICES = select(Device).where(Device.id == any_(bindparam("ids", type_=ARRAY(String))))
_USERS = select(User).where(User.id == any_(bindparam("ids", type_=ARRAY(BigInteger))))


@dataclass(frozen=True)
class Outcome:
    """What the bridge did with one message (returned for tests and logs)."""

    status: str  # accepted | rejected | duplicate | presence | dead_letter | failed
    device_id: str | None = None
    reason: str | None = None  # dead-letter reason
    ack: dict[str, Any] | None = None  # the application ack to publish


@dataclass(frozen=True)
class MqttTarget:
    host: str
    port: int
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> MqttTarget:
        u = urlsplit(url)
        if u.scheme != "mqtt" or not u.hostname:
            raise ValueError(f"CREWLINE_MQTT_URL must look like mqtt://user:password@host:port, not {url!r}")
        return cls(u.hostname, u.port or 1883, unquote(u.username) if u.username else None,
                   unquote(u.password) if u.password else None)


def _error_dict(exc: CrewlineError) -> dict[str, Any]:
    return {"code": exc.code, "message": exc.message[:500], "field": exc.field}


@dataclass
class _Item:
    index: int
    topic: str
    payload: bytes
    t: protocol.Topic | None = None
    message: dict[str, Any] | None = None


class _DeadLetter(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


class Bridge:
    def __init__(self, settings: Settings, make_session: sessionmaker, clock: Clock, *,
                 client_id: str | None = None, group: str = protocol.SHARE_GROUP,
                 batch_max: int = 200, batch_wait: float = 0.005, publish_downlink: bool = True,
                 poll_interval: float = 2.0, max_in_flight: int = 1000,
                 apply_deferred: bool = True, apply_interval: float = 1.0) -> None:
        from server.dispatch.service import DispatchConfig
        from server.tags.keys import keyring_from_settings

        self.settings = settings
        self.make_session = make_session
        self.clock = clock
        self.target = MqttTarget.parse(settings.mqtt_url)
        self.client_id = client_id or (
            f"crewline-bridge-{socket.gethostname()[:20]}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        self.subscription = f"$share/{group}/{protocol.UPLINK_FILTER}"
        self.dispatch_cfg = DispatchConfig.from_settings(settings)
        self.keyring = keyring_from_settings(settings)
        self.ctx = HandlerContext(settings, self.dispatch_cfg, self.keyring)
        self.handlers = handlers.load()
        self.batch_max, self.batch_wait = batch_max, batch_wait
        self.publish_downlink, self.poll_interval = publish_downlink, poll_interval
        self.max_in_flight = max_in_flight
        self._client: Any = None
        self._subscribed = threading.Event()
        self._connected = threading.Event()
        self._connect_results: queue.Queue = queue.Queue()
        self._inbox: queue.Queue = queue.Queue(maxsize=10_000)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        # downlink bookkeeping: paho mid → device_downlink.id, and ids the broker confirmed
        self._pub_lock = threading.Lock()
        # mid → ((row id, generation), sent at)
        self._in_flight: dict[int, tuple[tuple[int, int], float]] = {}
        self._early: dict[int, float] = {}
        self._confirmed: list[tuple[int, int]] = []
        self._dl_client: Any = None
        self._dl_connect_results: queue.Queue = queue.Queue()
        self.republish_after = 30.0  # seconds without PUBACK: publish the row again
        self._wake = threading.Event()
        self.is_publisher = threading.Event()
        self._deferred_pending = False
        self._apply_wake = threading.Event()
        self.apply_deferred = apply_deferred
        self.apply_interval = apply_interval  # seconds between the starts of applier rounds
        self.stats = {"batches": 0, "messages": 0, "fallbacks": 0, "downlink_published": 0}

    # -- the uplink path (no MQTT in here: tests call it directly too) --------------------------
    def handle(self, topic: str, payload: bytes) -> Outcome:
        """One message in its own transaction (raises if the database fails)."""
        return self.handle_batch([(topic, payload)], fallback=False)[0]

    def handle_batch(self, messages: list[tuple[str, bytes]], *, fallback: bool = True
                     ) -> list[Outcome]:
        """Messages in one transaction; outcomes in the same order. With ``fallback``, a failed
        batch is retried one message per transaction and a message that still fails gets the
        outcome ``failed`` (not acked); without it the exception propagates."""
        now = self.clock.now()
        items = [_Item(i, topic, payload) for i, (topic, payload) in enumerate(messages)]
        outcomes: dict[int, Outcome] = {}
        letters: list[tuple[_Item, str | None, str, str]] = []
        valid: list[_Item] = []
        for it in items:
            try:
                it.t, it.message = protocol.decode(it.topic, it.payload)
                if it.t.direction != "up":
                    raise ProtocolError("bad_topic", "not an uplink topic")
                valid.append(it)
            except ProtocolError as exc:
                device_id = None
                with contextlib.suppress(ProtocolError):
                    device_id = protocol.parse_topic(it.topic).device_id
                letters.append((it, device_id, exc.reason, exc.message))
        if letters:
            outcomes.update(self._write_dead_letters(letters, now))
        if valid:
            try:
                with self.make_session() as session:
                    outcomes.update(self._process(session, valid, now))
            except Exception:
                if not fallback or len(valid) == 1:
                    if fallback:
                        log.exception("mqtt.uplink_failed", topic=valid[0].topic)
                        outcomes[valid[0].index] = Outcome("failed", valid[0].t.device_id)
                    else:
                        raise
                else:
                    self.stats["fallbacks"] += 1
                    log.warning("mqtt.batch_failed_retrying_one_by_one", size=len(valid),
                                exc_info=True)
                    for it in valid:
                        try:
                            with self.make_session() as session:
                                outcomes.update(self._process(session, [it], now))
                        except DataError as exc:  # PostgreSQL refuses its data (\u0000 in jsonb)
                            outcomes.update(self._write_dead_letters(
                                [(it, it.t.device_id, "unstorable", str(exc.orig)[:500])], now))
                        except Exception:
                            log.exception("mqtt.uplink_failed", topic=it.topic)
                            outcomes[it.index] = Outcome("failed", it.t.device_id)
        return [outcomes[it.index] for it in items]

    def _process(self, session: Session, items: list[_Item], now: datetime) -> dict[int, Outcome]:
        out: dict[int, Outcome] = {}
        letters: list[tuple[_Item, str | None, str, str]] = []
        ids = sorted({it.t.device_id for it in items})
        devices = {d.id: d for d in session.scalars(_DEVICES, {"ids": ids})}
        presence: dict[str, str] = {}
        events: list[_Item] = []
        for it in items:
            device = devices.get(it.t.device_id)
            if device is None or device.revoked_at is not None:
                reason = "unknown_device" if device is None else "revoked_device"
                detail = (f"device {it.t.device_id!r} is not registered" if device is None
                          else "device revoked")
                letters.append((it, it.t.device_id, reason, detail))
            elif it.t.kind == "presence":
                presence[device.id] = it.message["state"]
                out[it.index] = Outcome("presence", device.id)
            elif it.t.kind not in self.handlers:
                letters.append((it, device.id, "unsupported_kind",
                                f"kind {it.t.kind!r} has no server handler"))
            else:
                events.append(it)
        for device_id in sorted(presence):  # device rows in id order (see downlink.py)
            session.execute(text("UPDATE devices SET presence = :p, presence_at = :now "
                                 "WHERE id = :d"), {"p": presence[device_id], "now": now,
                                                    "d": device_id})
        if letters:
            session.execute(DeviceDeadLetter.__table__.insert(), [
                self._letter_row(it, device_id, reason, detail, now)
                for it, device_id, reason, detail in letters])
        if events:
            out.update(self._events(session, devices, events, now))
        session.commit()
        for it, device_id, reason, detail in letters:
            self._log_letter(it, reason, detail)
            out[it.index] = Outcome("dead_letter", device_id, reason=reason)
        return out

    def _events(self, session: Session, devices: dict[str, Device], events: list[_Item],
                now: datetime) -> dict[int, Outcome]:
        out: dict[int, Outcome] = {}
        first: dict[tuple[str, uuid.UUID], _Item] = {}
        repeats: list[_Item] = []  # the same msg_id twice in this batch
        for it in events:
            key = (it.t.device_id, uuid.UUID(it.message["msg_id"]))
            if key in first:
                repeats.append(it)
            else:
                first[key] = it
        # one statement, one parameter per column (unnest): no per-row SQL to compile
        rows = list(first.items())
        inserted = {(r.device_id, r.msg_id): r.id for r in session.execute(_INSERT_MESSAGES, {
            "d": [d for (d, _), _ in rows], "m": [m for (_, m), _ in rows],
            "k": [it.t.kind for _, it in rows],
            "p": (b"[" + b",".join(it.payload for _, it in rows) + b"]").decode(),
            "a": [not self.handlers[it.t.kind].deferred for _, it in rows], "now": now})}
        stored: dict[tuple[str, uuid.UUID], tuple[str, Any]] = {}
        old = [k for k in first if k not in inserted]
        if old:
            stored = {(r.device_id, r.msg_id): (r.result, r.error) for r in session.execute(
                select(DeviceMessage.device_id, DeviceMessage.msg_id, DeviceMessage.result,
                       DeviceMessage.error)
                .where(tuple_(DeviceMessage.device_id, DeviceMessage.msg_id).in_(old)))}
        # the technicians of the events applied now (a deferred one is applied by the applier)
        user_ids = {devices[key[0]].user_id for key in inserted
                    if not self.handlers[first[key].t.kind].deferred}
        users = ({u.id: u for u in session.scalars(_USERS, {"ids": sorted(user_ids)})}
                 if user_ids else {})
        for key, it in first.items():
            device = devices[key[0]]
            if key not in inserted:  # redelivery: ack again with the stored result, no effect
                result, error = stored[key]
                out[it.index] = Outcome("duplicate", device.id,
                                        ack=protocol.ack(it.message["msg_id"], result, error, now))
                continue
            if self.handlers[it.t.kind].deferred:  # stored = accepted; the applier applies it
                self._deferred_pending = True
                stored[key] = ("accepted", None)
                out[it.index] = Outcome("accepted", device.id,
                                        ack=protocol.ack(it.message["msg_id"],
                                                         server_time=now))
                continue
            user = users[device.user_id]
            actor = Principal(id=user.id, username=user.username, role=Role(user.role))
            savepoint = session.begin_nested()
            try:
                self.handlers[it.t.kind](session, actor, device, it.message, now, self.ctx)
                savepoint.commit()
                result, error = "accepted", None
            except CrewlineError as exc:
                savepoint.rollback()
                result, error = "rejected", _error_dict(exc)
                session.execute(DeviceMessage.__table__.update()
                                .where(DeviceMessage.id == inserted[key])
                                .values(result=result, error=error))
            stored[key] = (result, error)
            out[it.index] = Outcome(result, device.id,
                                    ack=protocol.ack(it.message["msg_id"], result, error, now))
        for it in repeats:
            result, error = stored[(it.t.device_id, uuid.UUID(it.message["msg_id"]))]
            out[it.index] = Outcome("duplicate", it.t.device_id,
                                    ack=protocol.ack(it.message["msg_id"], result, error, now))
        return out

    def _letter_row(self, it: _Item, device_id: str | None, reason: str, detail: str,
                    now: datetime) -> dict[str, Any]:
        return {"received_at": now, "topic": it.topic[:1000], "device_id": device_id,
                "reason": reason, "detail": detail, "payload": it.payload}

    def _log_letter(self, it: _Item, reason: str, detail: str) -> None:
        log.warning("mqtt.dead_letter", topic=it.topic, reason=reason, detail=detail,
                    size=len(it.payload))

    def _write_dead_letters(self, letters, now: datetime) -> dict[int, Outcome]:
        with self.make_session() as session:
            session.execute(DeviceDeadLetter.__table__.insert(), [
                self._letter_row(it, device_id, reason, detail, now)
                for it, device_id, reason, detail in letters])
            session.commit()
        out = {}
        for it, device_id, reason, detail in letters:
            self._log_letter(it, reason, detail)
            out[it.index] = Outcome("dead_letter", device_id, reason=reason)
        return out

    # -- MQTT -----------------------------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connect_results.put(reason_code)
        if not reason_code.is_failure:
            client.subscribe(self.subscription, qos=1)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if reason_codes and not reason_codes[0].is_failure:
            self._subscribed.set()
        else:
            log.error("mqtt.subscribe_failed", subscription=self.subscription,
                      reason=str(reason_codes))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._subscribed.clear()
        log.info("mqtt.disconnected", reason=str(reason_code))

    def _on_message(self, client, userdata, msg) -> None:
        # blocks paho's network thread when the worker falls behind: TCP back-pressure
        self._inbox.put((msg.topic, bytes(msg.payload)))

    # the downlink client (its own connection: every PUBACK on it is a downlink row's)
    def _on_dl_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._dl_connect_results.put(reason_code)
        if not reason_code.is_failure:
            self._connected.set()
            self._wake.set()

    def _on_dl_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._pub_lock:
            entry = self._in_flight.pop(mid, None)
            if entry is not None:
                self._confirmed.append(entry[0])
            else:  # the PUBACK beat the publisher's bookkeeping
                self._early[mid] = time.monotonic()

    def _uplink_worker(self) -> None:
        while not self._stopping.is_set():
            try:
                first = self._inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            batch = [first]
            deadline = time.monotonic() + self.batch_wait
            while len(batch) < self.batch_max:
                try:
                    batch.append(self._inbox.get_nowait())
                except queue.Empty:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        batch.append(self._inbox.get(timeout=left))
                    except queue.Empty:
                        break
            try:
                outcomes = self.handle_batch(batch)
            except Exception:  # dead letters could not be written either: the database is away
                log.exception("mqtt.batch_lost", size=len(batch))
                continue
            self.stats["batches"] += 1
            self.stats["messages"] += len(batch)
            if self._deferred_pending:
                self._deferred_pending = False
                self._apply_wake.set()
            client = self._client
            for o in outcomes:
                if o.ack is not None and o.device_id is not None and client is not None:
                    # QoS 0: a lost ack costs a resend, never a second effect (the handset
                    # resends unacked events on every connection and every 30 s; the stored
                    # result is acked again), and no PUBACK traffic on the hot path
                    client.publish(protocol.down_topic(o.device_id, "ack"),
                                   protocol.encode("down", "ack", o.ack), qos=0)

    # -- deferred uplink (positions) ----------------------------------------------------------------
    def apply_now(self) -> int:
        """One applier round (tests call it directly)."""
        return applier.apply_round(self.make_session, self.handlers, self.ctx, self.clock.now())

    def _apply_worker(self) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                n = self.apply_now()
            except Exception:
                log.warning("mqtt.apply_round_failed", exc_info=True)
                n = 0
            self.stats["applied"] = self.stats.get("applied", 0) + n
            if n == 0:
                self._apply_wake.wait(self.poll_interval)
                self._apply_wake.clear()
            else:  # at most one round per apply_interval: bigger groups, fewer statements
                self._stopping.wait(max(0.0, self.apply_interval - (time.monotonic() - started)))

    # -- downlink publisher -----------------------------------------------------------------------
    def _listen_connection(self):
        import psycopg

        engine = self.make_session.kw["bind"]
        url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = psycopg.connect(url, autocommit=True, application_name="crewline-bridge-downlink")
        return conn

    def _downlink_worker(self) -> None:
        conn = None
        while not self._stopping.is_set():
            try:
                if conn is None or conn.closed:
                    conn = self._listen_connection()
                    conn.execute(f"LISTEN {downlink.CHANNEL}")
                if not self.is_publisher.is_set():
                    got = conn.execute("SELECT pg_try_advisory_lock(%s)", (PUBLISHER_LOCK,)
                                       ).fetchone()[0]
                    if got:
                        self.is_publisher.set()
                        log.info("mqtt.downlink_publisher", client_id=self.client_id)
                if self.is_publisher.is_set():
                    self._publish_pending()
                # wait for a NOTIFY, a PUBACK to record, a reconnect or the poll interval
                deadline = time.monotonic() + self.poll_interval
                while not self._stopping.is_set() and time.monotonic() < deadline:
                    if self._wake.is_set():
                        self._wake.clear()
                        break
                    if list(conn.notifies(timeout=0.05, stop_after=1)):
                        break
                    with self._pub_lock:
                        if self._confirmed:
                            break
            except Exception:
                log.warning("mqtt.downlink_loop_failed", exc_info=True)
                self.is_publisher.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                conn = None
                self._stopping.wait(1.0)
        self.is_publisher.clear()
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _record_confirmed(self) -> None:
        with self._pub_lock:
            done, self._confirmed = self._confirmed, []
        if done:
            with self.make_session() as session:
                downlink.mark_published(session, done, self.clock.now())
                session.commit()
            self.stats["downlink_published"] += len(done)

    def _publish_pending(self) -> None:
        self._record_confirmed()
        client = self._dl_client
        if client is None or not self._connected.is_set():
            return
        now = time.monotonic()
        with self._pub_lock:
            for mid, (_, sent) in list(self._in_flight.items()):
                if now - sent > self.republish_after:  # lost with a connection: send again
                    del self._in_flight[mid]
            for mid, seen in list(self._early.items()):
                if now - seen > 10:
                    del self._early[mid]
        after = 0
        while not self._stopping.is_set() and self._connected.is_set():
            with self._pub_lock:
                busy = {key for key, _ in self._in_flight.values()}
            if len(busy) >= self.max_in_flight:
                return  # the rest after PUBACKs arrive
            with self.make_session() as session:
                rows = downlink.unpublished(session, after_id=after, limit=500)
            if not rows:
                return
            for row_id, device_id, _seq, kind, payload, generation in rows:
                after = row_id
                if (row_id, generation) in busy:
                    continue
                data = protocol.encode("down", kind, payload)
                # not under _pub_lock: paho calls on_publish holding its own lock (inversion)
                info = client.publish(protocol.down_topic(device_id, kind), data, qos=1)
                if info.rc != 0:
                    return  # not connected: published again after the reconnect
                with self._pub_lock:
                    if self._early.pop(info.mid, None) is not None:
                        self._confirmed.append((row_id, generation))
                    else:
                        self._in_flight[info.mid] = ((row_id, generation), time.monotonic())
            self._record_confirmed()

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self, timeout: float = 10) -> None:
        """Connect, subscribe, start the uplink worker and the downlink publisher."""
        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=mqtt.MQTTv5)
        if self.target.username:
            client.username_pw_set(self.target.username, self.target.password)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.max_inflight_messages_set(200)
        self._stopping.clear()
        self._client = client
        if self.publish_downlink:
            dl = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id + "-dl",
                             protocol=mqtt.MQTTv5)
            if self.target.username:
                dl.username_pw_set(self.target.username, self.target.password)
            dl.on_connect, dl.on_disconnect = self._on_dl_connect, self._on_dl_disconnect
            dl.on_publish = self._on_publish
            dl.reconnect_delay_set(min_delay=1, max_delay=10)
            dl.max_inflight_messages_set(100)
            dl.connect_async(self.target.host, self.target.port, clean_start=True)
            dl.loop_start()
            self._dl_client = dl
        workers = [self._uplink_worker]
        if self.publish_downlink:
            workers.append(self._downlink_worker)
        if self.apply_deferred:
            workers.append(self._apply_worker)
        for target in workers:
            t = threading.Thread(target=target, name=f"bridge-{target.__name__}", daemon=True)
            t.start()
            self._threads.append(t)
        # A short session: with a persistent one the broker would keep routing a share of the
        # uplink to a bridge that is gone (messaging guide).
        client.connect(self.target.host, self.target.port, clean_start=True)
        client.loop_start()
        try:
            rc = self._connect_results.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise TimeoutError(f"no CONNACK from {self.target.host}:{self.target.port}") from None
        if rc.is_failure:
            self.stop()
            raise ConnectionError(f"MQTT broker refused the bridge: {rc}")
        if not self._subscribed.wait(timeout):
            self.stop()
            raise TimeoutError(f"no SUBACK for {self.subscription}")
        log.info("mqtt.bridge_started", client_id=self.client_id, subscription=self.subscription)

    def stop(self) -> None:
        self._stopping.set()
        self._apply_wake.set()
        for attr in ("_client", "_dl_client"):
            client = getattr(self, attr)
            setattr(self, attr, None)
            if client is not None:
                client.disconnect()
                client.loop_stop()
        for t in self._threads:
            t.join(timeout=10)
        self._threads.clear()
