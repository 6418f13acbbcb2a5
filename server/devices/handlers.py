"""The uplink handler registry: which server function applies which uplink kind.

A domain registers a handler in its own module::

    from server.devices.handlers import handler

    @handler("inspection")
    def inspection(session, actor, device, message, now, ctx) -> None: ...

and adds that module to :data:`HANDLER_MODULES` below (one line per domain). The bridge calls the
handler inside the transaction that stores the message in ``device_messages`` (in a savepoint),
with the device's technician as ``actor`` (``deferred`` kinds: see :func:`handler`):

* return normally → the message is stored as ``accepted`` and acked so;
* raise a :class:`server.core.errors.CrewlineError` → the domain refused it: the savepoint is
  rolled back, the message is stored as ``rejected`` with the error and acked so (resending would
  not help);
* raise anything else → the whole transaction rolls back and nothing is acked: the handset
  resends later (a database outage, a bug being fixed).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from server.auth.service import Principal
from server.models import Device
from server.settings import Settings

# The modules whose import registers handlers (one line per domain).
HANDLER_MODULES: tuple[str, ...] = (
    "server.devices.uplink",  # positions, tag_scan, status, ack, attachment (issue 4)
    "server.inspections.mqtt",  # inspection (issue 9)
)


@dataclass(frozen=True)
class HandlerContext:
    settings: Settings
    dispatch_cfg: Any  # server.dispatch.service.DispatchConfig
    keyring: Any  # rfid KeyRing for tag scans


Handler = Callable[[Session, Principal, Device, dict[str, Any], datetime, HandlerContext], None]
Merge = Callable[[list[dict[str, Any]]], dict[str, Any]]


@dataclass(frozen=True)
class Spec:
    fn: Handler
    deferred: bool = False
    merge: Merge | None = None

    def __call__(self, *args: Any) -> None:
        self.fn(*args)


_HANDLERS: dict[str, Spec] = {}


def handler(kind: str, *, deferred: bool = False,
            merge: Merge | None = None) -> Callable[[Handler], Handler]:
    """Register ``fn`` for uplink ``kind`` (one handler per kind).

    ``deferred``: the bridge only stores the message and acks it as accepted ("stored, will be
    applied exactly once"); the applier (server/devices/applier.py) runs the handler shortly
    after, in its own transaction, and records a refusal in ``device_messages`` (the handset is
    not told: use it for telemetry a handset could not act on anyway, like positions).
    ``merge`` lets the applier fold several pending messages of one device into one call."""
    def register(fn: Handler) -> Handler:
        existing = _HANDLERS.get(kind)
        if existing is not None and existing.fn is not fn and (
                existing.fn.__module__, existing.fn.__qualname__) != (fn.__module__,
                                                                      fn.__qualname__):
            raise RuntimeError(f"uplink kind {kind!r} already has a handler: {existing.fn!r}")
        _HANDLERS[kind] = Spec(fn, deferred, merge)
        return fn
    return register


def load() -> dict[str, Spec]:
    """Import every handler module; returns kind → handler spec (callable like the handler)."""
    for name in HANDLER_MODULES:
        importlib.import_module(name)
    return dict(_HANDLERS)


def get(kind: str) -> Spec | None:
    load()
    return _HANDLERS.get(kind)
