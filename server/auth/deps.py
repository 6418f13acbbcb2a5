"""FastAPI dependencies: who is calling, and may they?"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from server.auth.service import Principal, decode_token
from server.core.clock import Clock
from server.core.errors import Forbidden, NotAuthenticated
from server.models import Role
from server.settings import Settings

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_clock(request: Request) -> Clock:
    return request.app.state.clock


def get_session(request: Request) -> Iterator[Session]:
    """A session per request; the endpoint commits, anything unfinished is rolled back."""
    session = request.app.state.sessionmaker()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


def current_principal(request: Request, token: str | None = Depends(oauth2_scheme)) -> Principal:
    if not token:
        raise NotAuthenticated("log in first: send 'Authorization: Bearer <token>'")
    claims = decode_token(token, request.app.state.settings.secret_key.get_secret_value(),
                          request.app.state.clock.now())
    try:
        user_id = int(claims["sub"])
    except (KeyError, ValueError):
        raise NotAuthenticated("invalid access token", code="invalid_token") from None
    principal = request.app.state.user_cache.get(request.app.state.sessionmaker, user_id)
    if principal is None:
        raise NotAuthenticated("this account is disabled or no longer exists", code="inactive_user")
    return principal


def require(*roles: Role):
    """A dependency that lets only ``roles`` through (admin is always allowed)."""
    allowed = {Role.admin, *roles}

    def _check(principal: Principal = Depends(current_principal)) -> Principal:
        if principal.role not in allowed:
            raise Forbidden(
                f"role {principal.role.value!r} may not do this; allowed: "
                + ", ".join(sorted(r.value for r in allowed)))
        return principal

    return _check


# endpoint families
STAFF_DESK = (Role.agent, Role.dispatcher, Role.manager)  # customer data, ticket desk
ANY_ROLE = tuple(Role)
