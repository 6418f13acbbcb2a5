"""Devices: the only writer of devices, device_messages and device_dead_letters.

Services never commit; the caller owns the transaction. Registration and revocation write the
broker's files before the caller commits (see router.py for the compensation on commit failure).
"""

from __future__ import annotations

import secrets
from datetime import datetime

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from mobile_app.link import protocol
from server.auth.service import Principal
from server.core.errors import Conflict, InvalidInput, NotFound
from server.devices.broker import BrokerAdmin
from server.devices.schemas import (
    DeviceCreated,
    DeviceIn,
    DeviceOut,
    MqttCredentials,
    TechnicianDevices,
)
from server.models import Device, Role, User

_hasher = PasswordHasher()


def new_device_id() -> str:
    return "hs-" + secrets.token_hex(8)


def out(d: Device) -> DeviceOut:
    return DeviceOut(id=d.id, user_id=d.user_id, name=d.name, created_at=d.created_at,
                     created_by=d.created_by, revoked_at=d.revoked_at, presence=d.presence,
                     presence_at=d.presence_at,
                     link_state="ok" if d.resync_stuck_at is None else "needs_repair",
                     needs_repair_since=d.resync_stuck_at)


def register(session: Session, data: DeviceIn, actor: Principal, now: datetime,
             admin: BrokerAdmin) -> DeviceCreated:
    user = session.get(User, data.user_id)
    if user is None:
        raise InvalidInput(f"no user {data.user_id}", field="user_id")
    if user.role != Role.technician.value or not user.is_active:
        raise InvalidInput(f"user {data.user_id} is not an active technician", field="user_id")
    device_id = new_device_id()
    password = secrets.token_urlsafe(24)
    device = Device(id=device_id, user_id=user.id, name=data.name.strip(),
                    password_hash=_hasher.hash(password), created_at=now, created_by=actor.id)
    session.add(device)
    session.flush()
    admin.add_device(device_id, password)
    return DeviceCreated(device=out(device), mqtt=MqttCredentials(
        username=device_id, password=password, client_id=device_id,
        uplink_prefix=f"{protocol.TOPIC_ROOT}/{device_id}/up/",
        downlink_filter=protocol.down_filter(device_id)))


def get(session: Session, device_id: str, *, lock: bool = False) -> Device:
    q = select(Device).where(Device.id == device_id)
    if lock:
        q = q.with_for_update()
    device = session.scalar(q)
    if device is None:
        raise NotFound(f"no device {device_id!r}", field="device_id")
    return device


def revoke(session: Session, device_id: str, actor: Principal, now: datetime,
           admin: BrokerAdmin) -> DeviceOut:
    device = get(session, device_id, lock=True)
    if device.revoked_at is not None:
        raise Conflict(f"device {device_id!r} was revoked at {device.revoked_at.isoformat()}",
                       field="device_id", code="device_revoked")
    device.revoked_at, device.revoked_by = now, actor.id
    session.flush()
    admin.remove_device(device_id)
    return out(device)


def technicians(session: Session, *, include_revoked: bool = True) -> list[TechnicianDevices]:
    """Every technician (active first, then by name) with their handsets, newest first."""
    users = session.scalars(select(User).where(User.role == Role.technician.value)
                            .order_by(User.is_active.desc(), User.full_name, User.username)).all()
    q = select(Device).where(Device.user_id.in_([u.id for u in users])) \
        .order_by(Device.created_at.desc(), Device.id)
    if not include_revoked:
        q = q.where(Device.revoked_at.is_(None))
    by_user: dict[int, list[DeviceOut]] = {}
    for d in session.scalars(q):
        by_user.setdefault(d.user_id, []).append(out(d))
    return [TechnicianDevices(id=u.id, username=u.username, full_name=u.full_name or "",
                              is_active=u.is_active, devices=by_user.get(u.id, []))
            for u in users]


def list_devices(session: Session, *, user_id: int | None = None,
                 include_revoked: bool = False) -> list[DeviceOut]:
    q = select(Device).order_by(Device.created_at, Device.id)
    if user_id is not None:
        q = q.where(Device.user_id == user_id)
    if not include_revoked:
        q = q.where(Device.revoked_at.is_(None))
    return [out(d) for d in session.scalars(q)]
