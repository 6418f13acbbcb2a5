"""The tag key ring, built from settings: master keys per version, never per-tag keys."""

from __future__ import annotations

from fastapi import Request

from rfid import KeyRing
from server.settings import Settings


def keyring_from_settings(settings: Settings) -> KeyRing:
    """A :class:`rfid.KeyRing` of the configured master keys (CREWLINE_TAG_MASTER_KEYS)."""
    return KeyRing.from_hex(
        {version: key.get_secret_value() for version, key in settings.tag_master_keys.items()},
        current_version=settings.tag_key_version,
        system_identifier=settings.tag_system_identifier.encode(),
    )


async def get_keyring(request: Request) -> KeyRing:
    """FastAPI dependency: one key ring per application, built on first use."""
    ring = getattr(request.app.state, "tag_keyring", None)
    if ring is None:
        ring = request.app.state.tag_keyring = keyring_from_settings(request.app.state.settings)
    return ring
