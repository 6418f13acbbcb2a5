"""FastAPI dependencies: who is calling, and may they?

The cheap ones are ``async def``: FastAPI runs every plain ``def`` dependency in its thread pool,
and on the hot paths (ticket intake) those hand-offs between the event loop and worker threads
cost more CPU than the work itself. Nothing here blocks the event loop: a database round trip
(an unknown or expired user in the cache, closing a session still in a transaction) is sent to
the thread pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from server.auth.service import Principal, decode_token
from server.core.clock import Clock
from server.core.errors import Forbidden, NotAuthenticated
from server.models import Role
from server.settings import Settings

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_clock(request: Request) -> Clock:
    return request.app.state.clock


def _close(session: Session) -> None:
    session.rollback()
    session.close()


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session per request; the endpoint commits, anything unfinished is rolled back.

    Making a session does no I/O (it connects on first use); closing one that holds no
    transaction any more (the endpoint committed) does none either."""
    session = request.app.state.sessionmaker()
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(_close, session)
        else:
            session.close()


async def current_principal(request: Request,
                            token: str | None = Depends(oauth2_scheme)) -> Principal:
    if not token:
        raise NotAuthenticated("log in first: send 'Authorization: Bearer <token>'")
    claims = decode_token(token, request.app.state.settings.secret_key.get_secret_value(),
                          request.app.state.clock.now())
    try:
        user_id = int(claims["sub"])
    except (KeyError, ValueError):
        raise NotAuthenticated("invalid access token", code="invalid_token") from None
    cache = request.app.state.user_cache
    principal = cache.peek(user_id)
    if principal is cache._MISS:
        principal = await run_in_threadpool(cache.get, request.app.state.sessionmaker, user_id)
    if principal is None:
        raise NotAuthenticated("this account is disabled or no longer exists", code="inactive_user")
    return principal


def require(*roles: Role):
    """A dependency that lets only ``roles`` through (admin is always allowed)."""
    allowed = {Role.admin, *roles}

    async def _check(principal: Principal = Depends(current_principal)) -> Principal:
        if principal.role not in allowed:
            raise Forbidden(
                f"role {principal.role.value!r} may not do this; allowed: "
                + ", ".join(sorted(r.value for r in allowed)))
        return principal

    return _check


# endpoint families
STAFF_DESK = (Role.agent, Role.dispatcher, Role.manager)  # customer data, ticket desk
ANY_ROLE = tuple(Role)
