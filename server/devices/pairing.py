"""Pairing a handset with a one-time code: the only writer of device_pairing_codes/_failures.

A dispatcher creates a code for a technician (shown as text and as a QR payload in the console);
the handset, which has no credentials yet, trades the code once for its MQTT credentials
(``service.register``). Codes are 8 Crockford base-32 characters (40 bits), live
``pairing_code_minutes`` (10), are spent atomically by the first successful pair, and only an
HMAC-SHA256 of them (keyed with the server secret) is stored. Wrong, expired and spent codes are
recorded per client address: ``pairing_max_failures`` of them within ``pairing_lockout_minutes``
lock that address out (429 ``pairing_locked``), and ``pairing_max_failures_total`` from all
addresses lock pairing for everyone for the same window — at 200 guesses per 15 minutes, guessing a
live code out of 2^40 is hopeless.

Services never commit: the router commits (also after a refused code, so the failure counts).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, Field
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from server.auth.service import Principal
from server.core.errors import CrewlineError, InvalidInput
from server.devices import service as devices
from server.devices.broker import BrokerAdmin
from server.devices.schemas import DeviceIn, DeviceOut, MqttCredentials
from server.inspections import service as inspections  # [inspections] rounds for new handsets
from server.models import PairingCode, PairingFailure, Role, User
from server.settings import Settings

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base 32: no I, L, O, U
CODE_LENGTH = 8
_READS_AS = {"O": "0", "I": "1", "L": "1"}  # what people type for the missing letters


class PairingRefused(CrewlineError):
    """A wrong, expired or already used code. One message for all three: no oracle."""

    status_code = 403
    code = "pairing_refused"


class PairingLocked(CrewlineError):
    status_code = 429
    code = "pairing_locked"


# -- I/O ----------------------------------------------------------------------------------------
class PairingCodeIn(BaseModel):
    user_id: int = Field(ge=1, description="the technician who will carry the handset")


class PairingCodeOut(BaseModel):
    id: int = Field(description="for GET /pairing-codes/{id}: whether the code was used")
    code: str = Field(description="shown once, e.g. 'K7QD-3M9X'; the handset accepts it with or "
                                  "without the dash, in any case")
    qr_payload: str = Field(description="crewline://pair?server=<base URL>&code=<code>")
    user_id: int
    expires_at: datetime


class PairingCodeState(BaseModel):
    """What the console polls while it shows a code: never the code itself."""

    id: int
    user_id: int
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    device_id: str | None
    state: str = Field(description="'pending', 'used' or 'expired'")


class QrIn(BaseModel):
    payload: str = Field(min_length=1, max_length=512, description="a pairing code's qr_payload")


class PairIn(BaseModel):
    code: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=100, description="e.g. 'Van 7 phone'")


class Broker(BaseModel):
    host: str
    port: int
    tls: bool


class PairedUser(BaseModel):
    id: int
    username: str
    full_name: str
    language: str


class Paired(BaseModel):
    """Everything a handset needs; the password is in this response only."""

    device: DeviceOut
    mqtt: MqttCredentials
    broker: Broker
    user: PairedUser


# -- codes --------------------------------------------------------------------------------------
def normalize(code: str) -> str:
    """Upper case, no separators, the letters people type for 0 and 1 mapped to them."""
    return "".join(_READS_AS.get(c, c) for c in code.upper() if c not in " -_.")


def display(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def code_hash(secret: str, code: str) -> str:
    return hmac.new(secret.encode(), b"pairing:" + normalize(code).encode(),
                    hashlib.sha256).hexdigest()


def broker_of(settings: Settings) -> Broker:
    u = urlsplit(settings.handset_broker_url or settings.mqtt_url)
    tls = u.scheme == "mqtts"
    return Broker(host=u.hostname or "127.0.0.1", port=u.port or (8883 if tls else 1883), tls=tls)


def create_code(session: Session, data: PairingCodeIn, actor: Principal, now: datetime,
                settings: Settings, server_url: str) -> PairingCodeOut:
    user = session.get(User, data.user_id)
    if user is None:
        raise InvalidInput(f"no user {data.user_id}", field="user_id")
    if user.role != Role.technician.value or not user.is_active:
        raise InvalidInput(f"user {data.user_id} is not an active technician", field="user_id")
    secret = settings.secret_key.get_secret_value()
    code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    expires = now + timedelta(minutes=settings.pairing_code_minutes)
    row = PairingCode(code_hash=code_hash(secret, code), user_id=user.id,
                      created_by=actor.id, created_at=now, expires_at=expires)
    session.add(row)
    session.flush()
    return PairingCodeOut(id=row.id, code=display(code), user_id=user.id, expires_at=expires,
                          qr_payload=f"crewline://pair?server={quote(server_url, safe='')}"
                                     f"&code={code}")


def code_state(session: Session, code_id: int, now: datetime) -> PairingCodeState:
    from server.core.errors import NotFound

    row = session.get(PairingCode, code_id)
    if row is None:
        raise NotFound(f"no pairing code {code_id}", field="code_id")
    state = "used" if row.used_at is not None else "expired" if row.expires_at <= now else "pending"
    return PairingCodeState(id=row.id, user_id=row.user_id, created_at=row.created_at,
                            expires_at=row.expires_at, used_at=row.used_at, device_id=row.device_id,
                            state=state)


def cancel_code(session: Session, code_id: int, now: datetime) -> PairingCodeState:
    """Void an unused code now (the console's "Close"); a used or expired one is left as it is."""
    session.execute(update(PairingCode)
                    .where(PairingCode.id == code_id, PairingCode.used_at.is_(None),
                           PairingCode.expires_at > now)
                    .values(expires_at=now))
    return code_state(session, code_id, now)


def qr_svg(payload: str) -> bytes:
    """The pairing QR as a self-contained SVG (segno; error correction M, 4-module quiet zone,
    black on white, no fixed size: the page scales it). Only pairing payloads are drawn."""
    import io

    import segno

    if not payload.startswith("crewline://pair?"):
        raise InvalidInput("only a pairing code's qr_payload is drawn", field="payload")
    buf = io.BytesIO()
    segno.make(payload, error="m", micro=False).save(
        buf, kind="svg", border=4, dark="#000", light="#fff", xmldecl=False, omitsize=True,
        svgclass="qr", lineclass=None, nl=False)
    return buf.getvalue()


def check_lockout(session: Session, client: str, now: datetime, settings: Settings) -> None:
    since = now - timedelta(minutes=settings.pairing_lockout_minutes)
    mine, total = session.execute(
        select(func.count().filter(PairingFailure.client == client), func.count())
        .where(PairingFailure.at > since)).one()
    if mine >= settings.pairing_max_failures or total >= settings.pairing_max_failures_total:
        minutes = round(settings.pairing_lockout_minutes)
        raise PairingLocked(f"too many wrong pairing codes; try again in up to {minutes} minutes",
                            field="code", details={"retry_after_s": int(minutes * 60)})


def pair(session: Session, data: PairIn, client: str, now: datetime, settings: Settings,
         admin: BrokerAdmin) -> Paired:
    """Spend the code and register the device. A refusal adds a failure row before raising; the
    caller commits it. Two handsets racing with one code: exactly one wins (conditional UPDATE)."""
    check_lockout(session, client, now, settings)
    code = normalize(data.code)
    spent = None
    if len(code) == CODE_LENGTH and all(c in ALPHABET for c in code):
        spent = session.execute(
            update(PairingCode)
            .where(PairingCode.code_hash == code_hash(settings.secret_key.get_secret_value(), code),
                   PairingCode.used_at.is_(None), PairingCode.expires_at > now)
            .values(used_at=now)
            .returning(PairingCode.id, PairingCode.user_id, PairingCode.created_by)).one_or_none()
    if spent is None:
        session.add(PairingFailure(client=client[:64], at=now))
        session.flush()
        raise PairingRefused("this pairing code is wrong, expired or already used; ask the "
                             "dispatcher for a new one", field="code")
    creator = session.get(User, spent.created_by)
    actor = Principal(id=creator.id, username=creator.username, role=Role(creator.role))
    created = devices.register(session, DeviceIn(user_id=spent.user_id, name=data.name), actor, now,
                               admin)
    session.execute(update(PairingCode).where(PairingCode.id == spent.id)
                    .values(device_id=created.device.id))
    inspections.deliver_to_device(session, created.device.id, now)  # [inspections] open rounds
    user = session.get(User, spent.user_id)
    return Paired(device=created.device, mqtt=created.mqtt, broker=broker_of(settings),
                  user=PairedUser(id=user.id, username=user.username,
                                  full_name=user.full_name or "", language=user.language or "en"))


# -- the handset's own HTTP questions (HTTP Basic with its MQTT credentials) ---------------------
class ScanVerdictOut(BaseModel):
    msg_id: str
    verdict: str
    reason: str
    site_id: int | None
    received_at: datetime


def authenticate_device(session: Session, device_id: str, password: str):
    """The device row for valid, unrevoked credentials; NotAuthenticated otherwise."""
    from argon2.exceptions import VerifyMismatchError

    from server.core.errors import NotAuthenticated
    from server.models import Device

    device = session.get(Device, device_id) if device_id else None
    try:
        ok = device is not None and device.revoked_at is None and \
            devices._hasher.verify(device.password_hash, password)
    except (VerifyMismatchError, ValueError):
        ok = False
    if not ok:
        raise NotAuthenticated("unknown or revoked device, or a wrong password")
    return device


def scan_verdict(session: Session, device, msg_id: str) -> ScanVerdictOut:
    """The server's verdict on a tag scan the device sent over MQTT (its msg_id), once stored."""
    import uuid

    from server.core.errors import NotFound
    from server.models import TagScan

    try:
        key = uuid.UUID(msg_id)
    except ValueError:
        raise InvalidInput("msg_id is not a UUID", field="msg_id") from None
    scan = session.scalar(select(TagScan).where(TagScan.client_id == key,
                                                TagScan.actor_id == device.user_id))
    if scan is None:
        raise NotFound(f"no scan {msg_id} from this device yet", field="msg_id",
                       code="scan_not_received")
    return ScanVerdictOut(msg_id=msg_id, verdict=scan.verdict, reason=scan.reason,
                          site_id=scan.site_id, received_at=scan.received_at)
