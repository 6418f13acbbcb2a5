"""The server side of the handset link: MQTT uplink → database → application ack.

One paho-mqtt 2 client (CallbackAPIVersion.VERSION2, MQTT v5) subscribes through the shared
subscription ``$share/crewline/crewline/v1/devices/+/up/#``, so several bridges (replicas) split
the uplink. For each message, in order:

1. topic, size (protocol.MAX_PAYLOAD), UTF-8 JSON, JSON Schema — a failure goes to
   ``device_dead_letters`` (reason, topic, raw bytes) and the bridge carries on;
2. the device must be registered and not revoked (else dead letter ``unknown_device`` /
   ``revoked_device``);
3. ``presence`` updates the device row (no ack: it is retained state, not an event);
4. an event is inserted into ``device_messages`` keyed by (device_id, msg_id) — a redelivery hits
   the key and is only acked again, with the stored result; a new one is applied to its domain
   service in a savepoint with the device's technician as the actor (positions →
   dispatch.service.report_positions for the technician's crew; tag_scan →
   tags.service.ingest_scan). A domain refusal (CrewlineError) is stored as ``rejected`` with the
   error and acked as such — resending it would not help; anything else rolls the transaction back
   and sends no ack, so the handset resends later;
5. after the commit, ``{"msg_id", "result"}`` is published (QoS 1) on the device's ``down/ack``.

Kinds in the protocol but without a handler yet (``status``, ``ack``) are dead-lettered with the
reason ``unsupported_kind`` and not acked (the handset keeps them; see docs/protocol.md).
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import structlog
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, sessionmaker

from mobile_app.link import protocol
from mobile_app.link.protocol import ProtocolError
from server.auth.service import Principal
from server.core.clock import Clock
from server.core.errors import CrewlineError, Forbidden, InvalidInput
from server.models import Device, DeviceDeadLetter, DeviceMessage, Role, User
from server.settings import Settings

log = structlog.get_logger()

HANDLED_KINDS = ("positions", "tag_scan", "status")


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


def _validation_error(exc: ValidationError, prefix: str) -> InvalidInput:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return InvalidInput(f"{where}: {first.get('msg')}", field=f"{prefix}.{where}" if where else prefix)


class Bridge:
    def __init__(self, settings: Settings, make_session: sessionmaker, clock: Clock, *,
                 client_id: str | None = None, group: str = protocol.SHARE_GROUP) -> None:
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
        self._client: Any = None
        self._subscribed = threading.Event()
        self._connect_results: queue.Queue = queue.Queue()

    # -- the message path (no MQTT in here: tests call it directly too) ------------------------
    def handle(self, topic: str, payload: bytes) -> Outcome:
        now = self.clock.now()
        try:
            t, message = protocol.decode(topic, payload)
        except ProtocolError as exc:
            device_id = None
            with contextlib.suppress(ProtocolError):
                device_id = protocol.parse_topic(topic).device_id
            return self._dead_letter(now, topic, device_id, exc.reason, exc.message, payload)
        if t.direction != "up":
            return self._dead_letter(now, topic, t.device_id, "bad_topic", "not an uplink topic",
                                     payload)
        with self.make_session() as session:
            device = session.get(Device, t.device_id)
            if device is None or device.revoked_at is not None:
                reason = "unknown_device" if device is None else "revoked_device"
                session.rollback()
                return self._dead_letter(now, topic, t.device_id, reason,
                                         f"device {t.device_id!r} is not registered"
                                         if device is None else "device revoked", payload)
            if t.kind == "presence":
                device.presence, device.presence_at = message["state"], now
                session.commit()
                return Outcome("presence", t.device_id)
            if t.kind not in HANDLED_KINDS:
                session.rollback()
                return self._dead_letter(now, topic, t.device_id, "unsupported_kind",
                                         f"kind {t.kind!r} has no server handler yet", payload)
            return self._apply(session, device, t.kind, message, now)

    def _apply(self, session: Session, device: Device, kind: str, message: dict[str, Any],
               now: datetime) -> Outcome:
        msg_id = uuid.UUID(message["msg_id"])
        row_id = session.scalar(
            pg_insert(DeviceMessage).values(device_id=device.id, msg_id=msg_id, kind=kind,
                                            received_at=now, payload=message, result="accepted")
            .on_conflict_do_nothing(constraint="uq_device_messages_device_id_msg_id")
            .returning(DeviceMessage.id))
        if row_id is None:  # redelivery: acknowledge again with the stored result, no effect
            stored = session.scalar(select(DeviceMessage).where(
                DeviceMessage.device_id == device.id, DeviceMessage.msg_id == msg_id))
            session.rollback()
            assert stored is not None
            ack = protocol.ack(message["msg_id"], stored.result, stored.error)
            return Outcome("duplicate", device.id, ack=ack)
        user = session.get(User, device.user_id)
        actor = Principal(id=user.id, username=user.username, role=Role(user.role))
        savepoint = session.begin_nested()
        try:
            if kind == "positions":
                self._positions(session, actor, message, now)
            elif kind == "status":
                self._status(session, actor, message, now)
            else:
                self._tag_scan(session, actor, message, now)
            savepoint.commit()
            result, error = "accepted", None
        except CrewlineError as exc:
            savepoint.rollback()
            result, error = "rejected", _error_dict(exc)
            session.execute(DeviceMessage.__table__.update()
                            .where(DeviceMessage.id == row_id)
                            .values(result=result, error=error))
        session.commit()
        return Outcome(result, device.id, ack=protocol.ack(message["msg_id"], result, error))

    def _positions(self, session: Session, actor: Principal, message: dict[str, Any],
                   now: datetime) -> None:
        from server.crews import service as crews
        from server.crews.schemas import FixIn
        from server.dispatch import service as dispatch

        crew_id = crews.crew_of(session, actor.id)
        if crew_id is None:
            raise InvalidInput(f"technician {actor.username!r} is in no crew", field="fixes",
                               code="no_crew")
        try:
            fixes = [FixIn(**f) for f in message["fixes"]]
        except ValidationError as exc:
            raise _validation_error(exc, "fixes") from None
        dispatch.report_positions(session, crew_id, fixes, actor, now, self.dispatch_cfg)

    def _status(self, session: Session, actor: Principal, message: dict[str, Any],
                now: datetime) -> None:
        """A technician moves their crew's ticket (accepted, en route, on site, resolved) through
        the same lifecycle rules, audit trail and SMS as the HTTP API, with themselves as actor.
        The server's clock stamps the change; the handset's ``at`` stays in the stored message."""
        from server.crews import service as crews
        from server.dispatch import service as dispatch
        from server.tickets import service as tickets
        from server.tickets.schemas import TransitionIn

        ticket_id = message["ticket_id"]
        crew_id = crews.crew_of(session, actor.id)
        holder = dispatch.assigned_crew(session, ticket_id)
        if crew_id is None or holder != crew_id:
            raise Forbidden(f"ticket {ticket_id} is not assigned to {actor.username}'s crew",
                            field="ticket_id", code="not_your_job")
        body = TransitionIn(to=message["status"], note=message.get("note"),
                            resolution_code=message.get("resolution_code"))
        tickets.transition(session, ticket_id, body, actor, now, self.dispatch_cfg.ticket_policy)

    def _tag_scan(self, session: Session, actor: Principal, message: dict[str, Any],
                  now: datetime) -> None:
        from server.tags import service as tags
        from server.tags.schemas import ScanIn

        try:
            scan = ScanIn(**message["scan"], client_id=message["msg_id"])
        except ValidationError as exc:
            raise _validation_error(exc, "scan") from None
        tags.ingest_scan(session, scan, actor, now, self.keyring, source="mqtt")

    def _dead_letter(self, now: datetime, topic: str, device_id: str | None, reason: str,
                     detail: str, payload: bytes) -> Outcome:
        with self.make_session() as session:
            session.add(DeviceDeadLetter(received_at=now, topic=topic[:1000], device_id=device_id,
                                         reason=reason, detail=detail, payload=payload))
            session.commit()
        log.warning("mqtt.dead_letter", topic=topic, reason=reason, detail=detail,
                    size=len(payload))
        return Outcome("dead_letter", device_id, reason=reason)

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
        try:
            outcome = self.handle(msg.topic, bytes(msg.payload))
        except Exception:  # the database is away, a bug: no ack, the handset resends later
            log.exception("mqtt.uplink_failed", topic=msg.topic)
            return
        if outcome.ack is not None and outcome.device_id is not None:
            client.publish(protocol.down_topic(outcome.device_id, "ack"),
                           protocol.encode("down", "ack", outcome.ack), qos=1)

    def start(self, timeout: float = 10) -> None:
        """Connect, subscribe and process in paho's network thread (reconnects by itself)."""
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
        # A short session: with a persistent one the broker would keep routing a share of the
        # uplink to a bridge that is gone (messaging guide).
        client.connect(self.target.host, self.target.port, clean_start=True)
        client.loop_start()
        self._client = client
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
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()
