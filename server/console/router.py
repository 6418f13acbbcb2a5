"""HTTP and WebSocket endpoints of the web console (docs/web.md): the dispatch queue, crews for
the map, the offline basemap, the wall screen's summary and live updates."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import APIRouter, Depends, Path, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import Response
from sqlalchemy.orm import Session

from server.auth.deps import ANY_ROLE, get_clock, get_session, require
from server.auth.service import Principal, decode_token
from server.console import live, service
from server.core.clock import Clock
from server.core.errors import CrewlineError, InvalidInput, NotAuthenticated
from server.models import Role

DISPATCH = (Role.dispatcher, Role.manager)
WALL = (Role.dispatcher, Role.manager, Role.agent)
AUTH_TIMEOUT_S = 10.0


@asynccontextmanager
async def _lifespan(app):
    yield
    hub = getattr(app.state, "live_hub", None)
    if hub is not None:
        await hub.close()


router = APIRouter(prefix="/api/v1", tags=["console"], lifespan=_lifespan)
TILES = service.TileCache()


def _fresh_since(request_or_ws, clock: Clock):
    minutes = request_or_ws.app.state.settings.dispatch_stale_after_minutes
    return clock.now() - timedelta(minutes=minutes)


@router.get("/console/config")
def config(request: Request, _: Principal = Depends(require(*ANY_ROLE)),
           session: Session = Depends(get_session)) -> dict:
    """What the map needs to open: a tile server (or none: the built-in basemap), its
    attribution, where the roads are, and how often crews move on the page."""
    s = request.app.state.settings
    return {"tile_url": s.tile_url or None, "attribution": s.tile_attribution,
            "basemap": "tiles" if s.tile_url else "roads",
            "bounds": service.road_bounds(session),
            "min_zoom": service.MIN_ZOOM, "max_zoom": service.MAX_ZOOM,
            "position_interval_s": s.live_position_interval_s}


@router.get("/console/tickets")
def tickets(limit: int = Query(500, ge=1, le=5000),
            _: Principal = Depends(require(*WALL)),
            session: Session = Depends(get_session)) -> list[dict]:
    """Open tickets for the queue and the map, the nearest SLA deadline first."""
    return service.queue(session, limit=limit)


@router.get("/console/crews")
def crews(request: Request, _: Principal = Depends(require(*DISPATCH)),
          session: Session = Depends(get_session), clock: Clock = Depends(get_clock)) -> list[dict]:
    """Active crews with status, shift, position, heading and speed (``stale``: no recent fix)."""
    return service.crews(session, _fresh_since(request, clock))


@router.get("/console/basemap/{z}/{x}/{y}.json")
def basemap(z: int = Path(ge=service.MIN_ZOOM, le=service.MAX_ZOOM), x: int = Path(ge=0),
            y: int = Path(ge=0), _: Principal = Depends(require(*ANY_ROLE)),
            session: Session = Depends(get_session)) -> Response:
    """One tile of the built-in basemap: the road graph's lines in it, simplified for the zoom."""
    if x >= 2 ** z or y >= 2 ** z:
        raise InvalidInput(f"tile {x}/{y} is outside zoom {z} (0…{2 ** z - 1})",
                           field="x" if x >= 2 ** z else "y")
    key = (z, x, y)
    body = TILES.get(key)
    if body is None:
        body = service.basemap_tile(session, z, x, y)
        TILES.put(key, body)
    return Response(body, media_type="application/json",
                    headers={"Cache-Control": "private, max-age=60"})


@router.get("/console/summary")
def summary(request: Request, _: Principal = Depends(require(*WALL)),
            session: Session = Depends(get_session), clock: Clock = Depends(get_clock)) -> dict:
    """The wall screen: open tickets by category and status, SLA breaches, crews by status, SMS
    today (the local day of ``CREWLINE_SMS_TIMEZONE``)."""
    return service.summary(session, clock.now(), request.app.state.settings.sms_timezone,
                           _fresh_since(request, clock))


def _authenticate(app, token: object) -> tuple[Principal, int]:
    """The principal of a JWT (as for HTTP: signature, expiry, active user) and its expiry."""
    if not isinstance(token, str) or not token:
        raise NotAuthenticated("send {\"type\": \"auth\", \"token\": <JWT>} first")
    claims = decode_token(token, app.state.settings.secret_key.get_secret_value(),
                          app.state.clock.now())
    try:
        user_id = int(claims["sub"])
    except (KeyError, ValueError):
        raise NotAuthenticated("invalid access token", code="invalid_token") from None
    principal = app.state.user_cache.get(app.state.sessionmaker, user_id)
    if principal is None:
        raise NotAuthenticated("this account is disabled or no longer exists", code="inactive_user")
    return principal, claims["exp"]


@router.websocket("/live")
async def live_socket(ws: WebSocket) -> None:
    """Live updates; see server/console/live.py for the protocol."""
    await ws.accept()
    try:
        first = await asyncio.wait_for(ws.receive_json(), AUTH_TIMEOUT_S)
    except (TimeoutError, ValueError, WebSocketDisconnect):
        with contextlib.suppress(Exception):
            await ws.close(4408, "send the auth message first")
        return
    try:
        token = first.get("token") if isinstance(first, dict) and first.get("type") == "auth" \
            else None
        principal, expires = await asyncio.to_thread(_authenticate, ws.app, token)
    except CrewlineError as exc:
        await ws.send_json(exc.to_dict())
        await ws.close(4401, exc.code)
        return
    topics = live.TOPICS.get(principal.role)
    if topics is None:
        await ws.send_json({"error": {"code": "forbidden", "message":
                                      f"role {principal.role.value!r} may not use live updates"}})
        await ws.close(4403, "forbidden")
        return
    hub = live.hub_of(ws.app)
    try:
        await asyncio.wait_for(hub.connected.wait(), AUTH_TIMEOUT_S)
    except TimeoutError:
        await ws.close(1011, "live updates unavailable")
        return
    client = live.Client(ws, principal.role, topics)
    hub.add(client)
    expires_in = max(0.0, expires - ws.app.state.clock.now().timestamp())

    async def send() -> None:
        while True:
            message = await client.queue.get()
            if client.overflowed:
                await ws.close(1013, "too far behind; reconnect")
                return
            await ws.send_text(message)

    async def receive() -> None:
        while True:
            message = await ws.receive_json()
            if isinstance(message, dict) and message.get("type") == "ping":
                client.offer(service.dumps({"type": "pong"}))

    try:
        await ws.send_json({"type": "ready", "role": principal.role.value,
                            "topics": sorted(topics),
                            "position_interval_s": hub.interval})
        tasks = [asyncio.create_task(send()), asyncio.create_task(receive())]
        done, pending = await asyncio.wait(tasks, timeout=expires_in,
                                           return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in done:  # a disconnect ends receive(): expected, not an error to log
            if not task.cancelled():
                task.exception()
        if not done:  # the token expired: the page signs in again
            with contextlib.suppress(Exception):
                await ws.close(4401, "token_expired")
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.remove(client)
