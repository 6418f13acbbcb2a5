"""TagReading, UID normalisation, NDEF decoding, the error family."""

from __future__ import annotations

from datetime import UTC, datetime

import ndef
import pytest

import rfid
from rfid import (
    MalformedResponseError,
    NdefError,
    TagReading,
    TagType,
    normalize_uid,
    parse_ndef_message,
)
from tests.rfid.emulator import ndef_message

AT = datetime(2025, 5, 6, 7, 8, 9, tzinfo=UTC)
SUN_URL = "https://ntag.nxp.com/424?e=EF963FF7828658A599F3041510671E88&c=94EED9EE65337086"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("04a1b2c3d4e580", "04A1B2C3D4E580"),
        ("04:A1:B2:C3", "04A1B2C3"),
        (" 04 a1-b2 c3 ", "04A1B2C3"),
        (bytes.fromhex("00112233445566778899"), "00112233445566778899"),
    ],
)
def test_normalize_uid(value: str | bytes, expected: str) -> None:
    assert normalize_uid(value) == expected


@pytest.mark.parametrize("value", ["", "04A1B2", "zz112233", b"\x01\x02"])
def test_normalize_uid_rejects(value: str | bytes) -> None:
    with pytest.raises(MalformedResponseError):
        normalize_uid(value)


def test_reading_finds_sun_in_the_first_uri_record_that_has_it() -> None:
    message = ndef_message(
        ndef.TextRecord("Pole 17"),
        ndef.UriRecord("https://crewline.example/a"),
        ndef.UriRecord(SUN_URL),
    )
    reading = TagReading.build(
        uid="04A1B2C3D4E580", tag_type=TagType.TYPE4, reader="r", read_at=AT, ndef_message=message
    )
    assert reading.sun is not None and reading.sun.url == SUN_URL
    assert reading.uris == ("https://crewline.example/a", SUN_URL)
    assert reading.sun_error is None


def test_malformed_sun_is_kept_as_data_not_raised() -> None:
    message = ndef_message(ndef.UriRecord("https://x/?picc_data=ZZ&cmac=94EED9EE65337086"))
    reading = TagReading.build(
        uid="04A1B2C3D4E580", tag_type=TagType.TYPE4, reader="r", read_at=AT, ndef_message=message
    )
    assert reading.sun is None and "not hex" in (reading.sun_error or "")


def test_wire_round_trip() -> None:
    message = ndef_message(ndef.UriRecord(SUN_URL))
    reading = TagReading.build(
        uid=b"\x04\xde\x5f\x1e\xac\xc0\x40",
        tag_type=TagType.TYPE4,
        reader="Virtual PCD 00 00",
        read_at=AT,
        atr=bytes.fromhex("3B8180018080"),
        ndef_message=message,
    )
    wire = reading.to_dict()
    assert wire == {
        "uid": "04DE5F1EACC040",
        "tag_type": "type4",
        "reader": "Virtual PCD 00 00",
        "read_at": "2025-05-06T07:08:09+00:00",
        "atr": "3B8180018080",
        "ndef": message.hex().upper(),
        "sun_url": SUN_URL,
    }
    again = TagReading.from_dict(wire)
    assert again == reading
    assert again.ndef_records == reading.ndef_records


@pytest.mark.parametrize(
    "wire",
    [
        {},
        {"uid": "04A1B2C3", "tag_type": "bogus", "reader": "r", "read_at": AT.isoformat()},
        {"uid": "04A1B2C3", "tag_type": "type2", "reader": "r", "read_at": "yesterday"},
    ],
)
def test_from_dict_rejects_garbage(wire: dict) -> None:
    with pytest.raises(MalformedResponseError):
        TagReading.from_dict(wire)


def test_parse_ndef_message() -> None:
    assert parse_ndef_message(b"") == ()
    with pytest.raises(NdefError):
        parse_ndef_message(b"\xd1\x01\x20")


def test_every_public_error_has_a_stable_code() -> None:
    errors = [getattr(rfid, name) for name in rfid.__all__ if name.endswith("Error")]
    codes = [error.code for error in errors]
    assert all(issubclass(error, rfid.RfidError) for error in errors)
    assert len(set(codes)) == len(codes)
