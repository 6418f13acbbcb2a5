"""HTTP for handset registration. Thin: parse, authorize, call the service."""

from __future__ import annotations

from datetime import datetime

import structlog
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from server.auth.deps import get_clock, get_session, require
from server.auth.service import Principal
from server.core.clock import Clock
from server.core.errors import CrewlineError, InvalidInput, NotAuthenticated
from server.devices import attachments, dead_letters, service
from server.devices.broker import BrokerAdmin, MosquittoFilesAdmin
from server.devices.schemas import (
    DeadLetterOut,
    DeviceCreated,
    DeviceIn,
    DeviceOut,
    TechnicianDevices,
)
from server.models import Role

log = structlog.get_logger()
router = APIRouter(prefix="/api/v1/devices", tags=["devices"])
MANAGE = (Role.dispatcher, Role.manager)  # admin is always allowed
OPERATE = (Role.manager,)  # dead letters: link operations (admin is always allowed)


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


@router.get("/technicians", response_model=list[TechnicianDevices])
def technicians(include_revoked: bool = True, _: Principal = Depends(require(*MANAGE)),
                session: Session = Depends(get_session)) -> list[TechnicianDevices]:
    """Technicians with their handsets (the console's Devices page); before /{device_id}."""
    return service.technicians(session, include_revoked=include_revoked)


@router.get("/dead-letters", response_model=list[DeadLetterOut])
def list_dead_letters(device_id: str | None = Query(None, min_length=1, max_length=64),
                      reason: str | None = Query(None, pattern=r"^[a-z_]{1,32}$"),
                      since: datetime | None = Query(
                          None, description="only letters received at or after this time "
                                            "(ISO 8601 with a UTC offset)"),
                      before_id: int | None = Query(None, ge=1),
                      limit: int = Query(50, ge=1, le=200),
                      _: Principal = Depends(require(*OPERATE)),
                      session: Session = Depends(get_session)) -> list[DeadLetterOut]:
    """Uplink payloads the bridge refused, newest first (page with ``before_id``); before
    /{device_id}."""
    if since is not None and since.tzinfo is None:
        raise InvalidInput("since needs a UTC offset, e.g. 2026-01-05T08:00:00+08:00",
                           field="since")
    return dead_letters.list_dead_letters(session, device_id=device_id, reason=reason,
                                          since=since, before_id=before_id, limit=limit)


@router.get("/dead-letters/{letter_id}", response_model=DeadLetterOut)
def get_dead_letter(letter_id: int, _: Principal = Depends(require(*OPERATE)),
                    session: Session = Depends(get_session)) -> DeadLetterOut:
    """One dead letter with its whole payload."""
    return dead_letters.get_dead_letter(session, letter_id)


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


_basic = HTTPBasic(auto_error=False, description="the device's MQTT username and password")


class PayloadTooLarge(CrewlineError):
    status_code = 413
    code = "payload_too_large"


@router.put("/self/attachments/{sha256}")
async def upload_attachment(sha256: str, request: Request,
                            creds: HTTPBasicCredentials | None = Depends(_basic),
                            session: Session = Depends(get_session),
                            clock: Clock = Depends(get_clock)) -> dict:
    """The handset uploads the file of an attachment it announced over MQTT (HTTP Basic with the
    device's own credentials; the body is the raw file). Idempotent."""
    from server.devices.pairing import authenticate_device

    if creds is None:
        raise NotAuthenticated("send the device id and MQTT password as HTTP Basic credentials")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > attachments.MAX_BYTES:
        raise PayloadTooLarge(f"files are at most {attachments.MAX_BYTES} bytes", field="bytes")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > attachments.MAX_BYTES:
            raise PayloadTooLarge(f"files are at most {attachments.MAX_BYTES} bytes",
                                  field="bytes")
    root = request.app.state.settings.attachments_dir

    def work() -> dict:  # blocking I/O: in the thread pool, not on the event loop
        device = authenticate_device(session, creds.username, creds.password)
        out = attachments.store(session, device, sha256, bytes(data), root, clock.now())
        session.commit()
        return out

    return await run_in_threadpool(work)


@router.get("/attachments/{sha256}")
def download_attachment(sha256: str, request: Request,
                        _: Principal = Depends(require(*MANAGE, Role.agent)),
                        session: Session = Depends(get_session)) -> FileResponse:
    """An uploaded photo or signature, by its sha256 (staff)."""
    path, mime = attachments.find(session, sha256, request.app.state.settings.attachments_dir)
    return FileResponse(path, media_type=mime)
