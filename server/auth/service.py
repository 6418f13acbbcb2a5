"""User accounts: the only place that writes the users table."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.core.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from server.customers import phones
from server.models import Role, User

_hasher = PasswordHasher()
# verifying against this keeps the time of an unknown-user login equal to a wrong-password one
_DUMMY_HASH = _hasher.hash("crewline-timing-equaliser")
ALGORITHM = "HS256"
MIN_PASSWORD = 8


@dataclass(frozen=True)
class Principal:
    """Who is calling: enough to authorise without another query."""

    id: int
    username: str
    role: Role


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD} characters", field="password")
    return _hasher.hash(password)


def create_user(session: Session, *, username: str, password: str, role: Role | str,
                full_name: str = "", language: str = "zh-CN", phone: str | None = None,
                region: str = "CN") -> User:
    username = username.strip()
    if not username or len(username) > 64:
        raise InvalidInput("username must be 1-64 characters", field="username")
    try:
        role = Role(role)
    except ValueError:
        raise InvalidInput(f"unknown role {role!r}; one of {', '.join(Role)}", field="role") from None
    if language not in ("zh-CN", "en"):
        raise InvalidInput("language must be zh-CN or en", field="language")
    user = User(username=username, password_hash=hash_password(password), role=role.value,
                full_name=full_name, language=language, is_active=True,
                phone=phones.normalize(phone, region, field="phone") if phone else None)
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"user {username!r} already exists", field="username",
                       code="user_exists") from None
    return user


def authenticate(session: Session, username: str, password: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    try:
        if user is None:
            _hasher.verify(_DUMMY_HASH, password + "x")
        else:
            _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        raise NotAuthenticated("wrong username or password", code="bad_credentials") from None
    if user is None or not user.is_active:
        raise NotAuthenticated("wrong username or password", code="bad_credentials")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def issue_token(user: User, secret: str, minutes: int, now: datetime) -> str:
    payload = {
        "sub": str(user.id), "name": user.username, "role": user.role,
        "iat": int(now.timestamp()), "exp": int((now + timedelta(minutes=minutes)).timestamp()),
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


@lru_cache(maxsize=4096)
def _verified_claims(token: str, secret: str) -> tuple | None:
    """The signature check of a token, remembered: an agent sends the same token with every
    request for hours, and HMAC plus JSON decoding is a visible share of a cheap request. Only
    the verdict on the (immutable) token is cached; expiry is checked on every use."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM],
                            options={"require": ["exp", "sub"], "verify_exp": False})
    except jwt.PyJWTError:
        return None
    return tuple(claims.items())


def decode_token(token: str, secret: str, now: datetime) -> dict:
    """Verify signature and expiry; expiry is checked against the injected clock."""
    items = _verified_claims(token, secret)
    if items is None:
        raise NotAuthenticated("invalid access token", code="invalid_token")
    claims = dict(items)
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= now.timestamp():
        raise NotAuthenticated("access token expired; log in again", code="token_expired")
    return claims


class ActiveUserCache:
    """Remembers for a few seconds that a user is active with a role.

    A token stays valid until it expires, but deactivating a user or changing a role must take
    effect quickly: at most ``ttl`` seconds later, without a query on every request.
    """

    def __init__(self, ttl: float = 10.0) -> None:
        self.ttl = ttl
        self._entries: dict[int, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    _MISS = object()

    def peek(self, user_id: int):
        """The cached answer without touching the database, or ``ActiveUserCache._MISS``."""
        with self._lock:
            hit = self._entries.get(user_id)
        return hit[1] if hit and hit[0] > time.monotonic() else self._MISS

    def get(self, session_factory, user_id: int) -> Principal | None:
        now = time.monotonic()
        cached = self.peek(user_id)
        if cached is not self._MISS:
            return cached
        with session_factory() as session:
            user = session.get(User, user_id)
            principal = (Principal(user.id, user.username, Role(user.role))
                         if user is not None and user.is_active else None)
        with self._lock:
            self._entries[user_id] = (now + self.ttl, principal)
        return principal

    def forget(self, user_id: int) -> None:
        with self._lock:
            self._entries.pop(user_id, None)


def update_user(session: Session, user_id: int, *, active: bool | None = None,
                phone: str | None = None, clear_phone: bool = False, region: str = "CN") -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found", field="user_id")
    if active is not None:
        user.is_active = active
    if clear_phone:
        user.phone = None
    elif phone is not None:
        user.phone = phones.normalize(phone, region, field="phone")
    return user
