"""HTTP for pairing handsets. Thin: parse, authorize, call server/devices/pairing.py.

``POST /api/v1/devices/pairing-codes`` (dispatcher, manager, admin) makes a one-time code;
``GET /api/v1/devices/pairing-codes/{id}`` tells the console whether a code it shows was used
(never the code), ``DELETE`` voids an unused one, and ``POST /api/v1/devices/pairing-codes/qr``
draws a pairing payload as an SVG QR code (same roles; the payload travels in a body, not a URL,
so it stays out of access logs). ``POST /api/v1/devices/pair`` is public (the handset has no
credentials yet) and rate-limited by wrong codes per client address;
``GET /api/v1/devices/self/scans/{msg_id}`` lets a paired handset ask, with its MQTT credentials
as HTTP Basic, for the verdict on a scan it sent over MQTT.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from sqlalchemy.orm import Session

from server.auth.deps import get_clock, get_session, require
from server.auth.service import Principal
from server.core.clock import Clock
from server.devices import pairing
from server.devices.broker import BrokerAdmin
from server.devices.router import MANAGE, get_broker_admin

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])
_basic = HTTPBasic(auto_error=False)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/pairing-codes", response_model=pairing.PairingCodeOut, status_code=201)
def create_pairing_code(body: pairing.PairingCodeIn, request: Request,
                        principal: Principal = Depends(require(*MANAGE)),
                        session: Session = Depends(get_session),
                        clock: Clock = Depends(get_clock)) -> pairing.PairingCodeOut:
    """A one-time code (and QR payload) for a technician's new handset; shown in this response only."""
    out = pairing.create_code(session, body, principal, clock.now(), request.app.state.settings,
                              str(request.base_url).rstrip("/"))
    session.commit()
    return out


NO_STORE = {"Cache-Control": "no-store"}


@router.post("/pairing-codes/qr", response_class=Response,
             responses={200: {"content": {"image/svg+xml": {}}}})
def pairing_qr(body: pairing.QrIn, _: Principal = Depends(require(*MANAGE))) -> Response:
    """The QR code of a pairing code's ``qr_payload``, as SVG (the console shows it next to the code)."""
    return Response(pairing.qr_svg(body.payload), media_type="image/svg+xml", headers=NO_STORE)


@router.get("/pairing-codes/{code_id}", response_model=pairing.PairingCodeState)
def pairing_code_state(code_id: int, response: Response, _: Principal = Depends(require(*MANAGE)),
                       session: Session = Depends(get_session),
                       clock: Clock = Depends(get_clock)) -> pairing.PairingCodeState:
    """pending, used (with the device it made) or expired."""
    response.headers.update(NO_STORE)
    return pairing.code_state(session, code_id, clock.now())


@router.delete("/pairing-codes/{code_id}", response_model=pairing.PairingCodeState)
def cancel_pairing_code(code_id: int, _: Principal = Depends(require(*MANAGE)),
                        session: Session = Depends(get_session),
                        clock: Clock = Depends(get_clock)) -> pairing.PairingCodeState:
    """Void an unused code at once (it then reads as expired)."""
    out = pairing.cancel_code(session, code_id, clock.now())
    session.commit()
    return out


@router.post("/pair", response_model=pairing.Paired, status_code=201)
def pair(body: pairing.PairIn, request: Request, session: Session = Depends(get_session),
         clock: Clock = Depends(get_clock),
         admin: BrokerAdmin = Depends(get_broker_admin)) -> pairing.Paired:
    """Public: trade a pairing code for the device's MQTT credentials (once)."""
    try:
        paired = pairing.pair(session, body, _client(request), clock.now(),
                              request.app.state.settings, admin)
    except pairing.PairingRefused:
        session.commit()  # the failure row counts towards the lockout
        raise
    try:
        session.commit()
    except Exception:
        admin.remove_device(paired.device.id)  # no credentials without a device row
        raise
    return paired


@router.get("/self/scans/{msg_id}", response_model=pairing.ScanVerdictOut)
def scan_verdict(msg_id: str, credentials: HTTPBasicCredentials | None = Depends(_basic),
                 session: Session = Depends(get_session)) -> pairing.ScanVerdictOut:
    from server.core.errors import NotAuthenticated

    if credentials is None:
        raise NotAuthenticated("send the device id and MQTT password as HTTP Basic credentials")
    device = pairing.authenticate_device(session, credentials.username, credentials.password)
    return pairing.scan_verdict(session, device, msg_id)
