from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth import service
from server.auth.deps import current_principal, get_clock, get_session, get_settings_dep, require
from server.auth.service import Principal
from server.core.clock import Clock
from server.models import Role, User
from server.settings import Settings

router = APIRouter(prefix="/api/v1", tags=["auth"])


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    role: Role


class UserOut(BaseModel):
    id: int
    username: str
    full_name: str
    role: Role
    language: str
    is_active: bool
    phone: str | None = None


class UserIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=256)
    role: Role
    full_name: str = Field("", max_length=200)
    language: str = Field("zh-CN", pattern=r"^(zh-CN|en)$")
    phone: str | None = Field(None, max_length=32, description="mobile for job SMS (staff)")


class UserPatch(BaseModel):
    is_active: bool | None = None
    phone: str | None = Field(None, max_length=32, description="empty string removes it")


def _out(u: User) -> UserOut:
    return UserOut(id=u.id, username=u.username, full_name=u.full_name, role=Role(u.role),
                   language=u.language, is_active=u.is_active, phone=u.phone)


@router.post("/auth/token", response_model=TokenOut)
def login(form: Annotated[OAuth2PasswordRequestForm, Depends()],
          session: Session = Depends(get_session), settings: Settings = Depends(get_settings_dep),
          clock: Clock = Depends(get_clock)) -> TokenOut:
    user = service.authenticate(session, form.username, form.password)
    session.commit()
    token = service.issue_token(user, settings.secret_key.get_secret_value(),
                                settings.access_token_minutes, clock.now())
    return TokenOut(access_token=token, expires_in=settings.access_token_minutes * 60,
                    role=Role(user.role))


@router.get("/auth/me", response_model=UserOut)
def me(principal: Principal = Depends(current_principal),
       session: Session = Depends(get_session)) -> UserOut:
    return _out(session.get(User, principal.id))


@router.get("/users", response_model=list[UserOut])
def list_users(_: Principal = Depends(require()), session: Session = Depends(get_session)):
    return [_out(u) for u in session.scalars(select(User).order_by(User.id))]


@router.post("/users", response_model=UserOut, status_code=201)
def create_user(body: UserIn, request: Request, _: Principal = Depends(require()),
                session: Session = Depends(get_session)) -> UserOut:
    user = service.create_user(session, **body.model_dump(),
                               region=request.app.state.settings.default_region)
    session.commit()
    return _out(user)


@router.patch("/users/{user_id}", response_model=UserOut)
def patch_user(user_id: int, body: UserPatch, request: Request, _: Principal = Depends(require()),
               session: Session = Depends(get_session)) -> UserOut:
    user = service.update_user(session, user_id, active=body.is_active,
                               phone=body.phone or None, clear_phone=body.phone == "",
                               region=request.app.state.settings.default_region)
    session.commit()
    request.app.state.user_cache.forget(user_id)
    return _out(user)
