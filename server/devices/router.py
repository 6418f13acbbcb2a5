"""HTTP for handset registration. Thin: parse, authorize, call the service."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from server.auth.deps import get_clock, get_session, require
from server.auth.service import Principal
from server.core.clock import Clock
from server.devices import service
from server.devices.broker import BrokerAdmin, MosquittoFilesAdmin
from server.devices.schemas import DeviceCreated, DeviceIn, DeviceOut
from server.models import Role

log = structlog.get_logger()
router = APIRouter(prefix="/api/v1/devices", tags=["devices"])
MANAGE = (Role.dispatcher, Role.manager)  # admin is always allowed


def get_broker_admin(request: Request) -> BrokerAdmin:
    admin = getattr(request.app.state, "broker_admin", None)
    if admin is None:
        settings = request.app.state.settings
        admin = request.app.state.broker_admin = MosquittoFilesAdmin(
            settings.mqtt_auth_dir, settings.mqtt_url)
    return admin


@router.post("", response_model=DeviceCreated, status_code=201)
def register(body: DeviceIn, principal: Principal = Depends(require(*MANAGE)),
             session: Session = Depends(get_session), clock: Clock = Depends(get_clock),
             admin: BrokerAdmin = Depends(get_broker_admin)) -> DeviceCreated:
    """Register a technician's handset; the MQTT password is in this response only."""
    created = service.register(session, body, principal, clock.now(), admin)
    try:
        session.commit()
    except Exception:
        admin.remove_device(created.device.id)  # no credentials without a device row
        raise
    return created


@router.get("", response_model=list[DeviceOut])
def list_devices(user_id: int | None = None, include_revoked: bool = False,
                 _: Principal = Depends(require(*MANAGE)),
                 session: Session = Depends(get_session)) -> list[DeviceOut]:
    return service.list_devices(session, user_id=user_id, include_revoked=include_revoked)


@router.get("/{device_id}", response_model=DeviceOut)
def get_device(device_id: str, _: Principal = Depends(require(*MANAGE)),
               session: Session = Depends(get_session)) -> DeviceOut:
    return service.out(service.get(session, device_id))


@router.delete("/{device_id}", response_model=DeviceOut)
def revoke(device_id: str, principal: Principal = Depends(require(*MANAGE)),
           session: Session = Depends(get_session), clock: Clock = Depends(get_clock),
           admin: BrokerAdmin = Depends(get_broker_admin)) -> DeviceOut:
    """Revoke: the device's password leaves the broker (its next connection is refused), its
    open session is cut (takeover), anything it still sends is dead-lettered."""
    out = service.revoke(session, device_id, principal, clock.now(), admin)
    session.commit()
    try:
        admin.disconnect_device(device_id)
    except Exception:  # the broker reload drops it anyway; the revocation itself is committed
        log.warning("devices.disconnect_failed", device_id=device_id, exc_info=True)
    return out
