"""What a reader yields: :class:`TagReading`, the :class:`TagType` enum and the reader protocol."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import ndef  # type: ignore[import-untyped]

from rfid.errors import MalformedResponseError, NdefError, SunFormatError
from rfid.sun import SunParams, extract_sun_params

__all__ = [
    "Clock",
    "TagReader",
    "TagReading",
    "TagType",
    "normalize_uid",
    "parse_ndef_message",
    "utc_now",
]

#: A clock returns the current time as an aware datetime; injected so tests control time.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default clock: the current time in UTC."""
    return datetime.now(UTC)


class TagType(enum.StrEnum):
    """The kinds of tag Crewline tells apart."""

    #: NFC Forum Type 2 (NTAG21x, MIFARE Ultralight): pages of 4 bytes, NDEF in a TLV.
    TYPE2 = "type2"
    #: ISO 14443-4 / NFC Forum Type 4 (NTAG 424 DNA, DESFire): NDEF application and files.
    TYPE4 = "type4"
    #: MIFARE Classic 1K/4K/Mini: UID only (its NDEF mapping needs sector keys).
    MIFARE_CLASSIC = "mifare_classic"
    #: Anything else, and keyboard wedges, which report a UID and nothing about the tag.
    UNKNOWN = "unknown"


_UID_LENGTHS = (4, 7, 10)  # ISO 14443-3 single, double and triple size UIDs
_SEPARATORS = re.compile(r"[\s:\-]")


def normalize_uid(uid: str | bytes) -> str:
    """Return a UID as canonical upper-case hex without separators (e.g. ``04DE5F1EACC040``).

    Accepts bytes or hex text with ``:``/``-``/space separators. The UID must be 4, 7 or 10 bytes.
    """
    if isinstance(uid, str):
        text = _SEPARATORS.sub("", uid)
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise MalformedResponseError(f"UID is not hex: {uid!r}") from None
    else:
        raw = bytes(uid)
    if len(raw) not in _UID_LENGTHS:
        raise MalformedResponseError(f"UID must be 4, 7 or 10 bytes, got {len(raw)}")
    return raw.hex().upper()


def parse_ndef_message(data: bytes) -> tuple[ndef.Record, ...]:
    """Decode an NDEF message with ndeflib; an empty message has no records."""
    if not data:
        return ()
    try:
        return tuple(ndef.message_decoder(data, errors="strict"))
    except (ndef.DecodeError, ValueError) as exc:
        raise NdefError(f"invalid NDEF message: {exc}") from exc


def _first_sun(records: tuple[ndef.Record, ...]) -> SunParams | None:
    for record in records:
        if isinstance(record, ndef.UriRecord):
            params = extract_sun_params(record.iri)
            if params is not None:
                return params
    return None


@dataclass(frozen=True, slots=True)
class TagReading:
    """One read of one tag.

    ``sun`` holds the Secure Unique NFC parameters when the NDEF message carries them (they are
    only parsed here, never trusted: verification happens on the server). ``sun_error`` says why
    SUN-looking parameters were unusable, so the server can record the scan as ``malformed``.
    """

    uid: str
    tag_type: TagType
    reader: str
    read_at: datetime
    atr: bytes = b""
    ndef_message: bytes = b""
    ndef_records: tuple[ndef.Record, ...] = field(default=(), compare=False)
    sun: SunParams | None = None
    sun_error: str | None = None

    @classmethod
    def build(
        cls,
        *,
        uid: str | bytes,
        tag_type: TagType,
        reader: str,
        read_at: datetime,
        atr: bytes = b"",
        ndef_message: bytes = b"",
    ) -> TagReading:
        """Assemble a reading: normalise the UID, decode the NDEF message, find SUN parameters."""
        records = parse_ndef_message(ndef_message)
        sun: SunParams | None = None
        sun_error: str | None = None
        try:
            sun = _first_sun(records)
        except SunFormatError as exc:
            sun_error = str(exc)
        return cls(
            uid=normalize_uid(uid),
            tag_type=tag_type,
            reader=reader,
            read_at=read_at,
            atr=bytes(atr),
            ndef_message=bytes(ndef_message),
            ndef_records=records,
            sun=sun,
            sun_error=sun_error,
        )

    @property
    def uris(self) -> tuple[str, ...]:
        """The URIs of the NDEF URI records, in order."""
        return tuple(r.iri for r in self.ndef_records if isinstance(r, ndef.UriRecord))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form for the wire (hex for bytes, ISO 8601 for time)."""
        return {
            "uid": self.uid,
            "tag_type": self.tag_type.value,
            "reader": self.reader,
            "read_at": self.read_at.isoformat(),
            "atr": self.atr.hex().upper(),
            "ndef": self.ndef_message.hex().upper(),
            "sun_url": self.sun.url if self.sun else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TagReading:
        """Rebuild a reading from :meth:`to_dict` output (re-parses NDEF and SUN)."""
        try:
            return cls.build(
                uid=data["uid"],
                tag_type=TagType(data["tag_type"]),
                reader=str(data["reader"]),
                read_at=datetime.fromisoformat(data["read_at"]),
                atr=bytes.fromhex(data.get("atr") or ""),
                ndef_message=bytes.fromhex(data.get("ndef") or ""),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise MalformedResponseError(f"not a tag reading: {exc}") from exc


@runtime_checkable
class TagReader(Protocol):
    """A source of tag readings: a PC/SC reader, the phone's NFC, a keyboard wedge, a fake."""

    @property
    def name(self) -> str:
        """A human-readable name of the reader, recorded in each reading."""
        ...

    def read(self, timeout: float | None = None) -> TagReading:
        """Wait up to ``timeout`` seconds (None: forever) for a tag and read it.

        Raises :class:`rfid.errors.ReadTimeoutError` when no tag came, and other
        :class:`rfid.errors.RfidError` subclasses when the read failed.
        """
        ...

    def close(self) -> None:
        """Release the reader."""
        ...
