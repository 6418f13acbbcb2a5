"""Device registration I/O."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class DeviceIn(BaseModel):
    user_id: int = Field(ge=1, description="the technician who carries the handset")
    name: str = Field(min_length=1, max_length=100, description="e.g. 'Van 7 phone'")


class DeviceOut(BaseModel):
    id: str
    user_id: int
    name: str
    created_at: datetime
    created_by: int
    revoked_at: datetime | None
    presence: str | None
    presence_at: datetime | None
    link_state: Literal["ok", "needs_repair"] = Field(
        "ok", description="needs_repair: the handset asks again and again for downlink "
                          "messages already pruned (it lost its local link state); pair it "
                          "again (docs/operations.md \"Handset link: retention and dead letters\")")
    needs_repair_since: datetime | None = Field(
        None, description="when the server first saw that resync (null when link_state is ok)")


class TechnicianDevices(BaseModel):
    """A technician and their handsets (the console's Devices page)."""

    id: int
    username: str
    full_name: str
    is_active: bool
    devices: list[DeviceOut]


class MqttCredentials(BaseModel):
    """Shown once, at registration: only a hash is kept."""

    username: str
    password: str
    client_id: str
    uplink_prefix: str
    downlink_filter: str


class DeviceCreated(BaseModel):
    device: DeviceOut
    mqtt: MqttCredentials


class DeadLetterOut(BaseModel):
    """An uplink payload the bridge refused (docs/protocol.md "Delivery"). The raw bytes are in
    ``payload_base64``; ``preview`` is their UTF-8 reading (invalid bytes as U+FFFD), cut at
    ``PREVIEW_BYTES``."""

    id: int
    received_at: datetime
    device_id: str | None
    topic: str
    reason: str = Field(description="bad_topic, unknown_kind, oversize, malformed_json, "
                                    "schema_invalid, unknown_device, revoked_device, "
                                    "unsupported_kind, unstorable")
    detail: str
    payload_bytes: int = Field(description="the size of the raw payload")
    payload_base64: str = Field(description="the raw payload, base64 (in a list: at most the "
                                            "first 64 KiB, see payload_truncated)")
    payload_truncated: bool
    preview: str
    preview_truncated: bool
    valid_utf8: bool
