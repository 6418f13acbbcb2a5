"""Keyboard-wedge UID renderings and the reader fed by keystrokes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rfid import (
    ByteOrder,
    KeyboardWedgeReader,
    NumberBase,
    ReadTimeoutError,
    TagReader,
    TagType,
    WedgeInputError,
    parse_wedge_line,
)


@pytest.mark.parametrize(
    ("line", "uid"),
    [
        # hex, with and without separators, any case
        ("04A1B2C3D4E580", "04A1B2C3D4E580"),
        ("04a1b2c3d4e580\r\n", "04A1B2C3D4E580"),
        ("04:A1:B2:C3:D4:E5:80", "04A1B2C3D4E580"),
        ("04-a1-b2-c3-d4-e5-80", "04A1B2C3D4E580"),
        ("04 A1 B2 C3", "04A1B2C3"),
        ("4:A1:B2:C3", "04A1B2C3"),  # a one-digit group is a byte
        ("0x04A1B2C3", "04A1B2C3"),
        ("DEADBEE", "0DEADBEE"),  # odd hex gets one leading zero
        # digits only: 8/14/20 digits are hex, other widths decimal
        ("12345678", "12345678"),
        ("04123456789012", "04123456789012"),
        ("0012345678", "00BC614E"),  # the common 10-digit decimal of a 4-byte UID
        ("3735928559", "DEADBEEF"),
        ("123", "0000007B"),
        ("4294967296", "00000100000000"),  # too big for 4 bytes -> 7 bytes
        ("1238012345678901234", "0000112E4DAB4BBD2FF2"),  # 19 digits -> 10 bytes
        # reversed NXP 7-byte UID (manufacturer byte 04 typed last) is turned round
        ("80E5D4C3B2A104", "04A1B2C3D4E580"),
        ("80:E5:D4:C3:B2:A1:04", "04A1B2C3D4E580"),
    ],
)
def test_default_rules(line: str, uid: str) -> None:
    assert parse_wedge_line(line) == uid


def test_ten_byte_decimal_fits() -> None:
    assert parse_wedge_line(str(2**72)) == "01000000000000000000"
    with pytest.raises(WedgeInputError):
        parse_wedge_line(str(2**80))


@pytest.mark.parametrize(
    ("line", "options", "uid"),
    [
        ("12345678", {"base": NumberBase.DECIMAL}, "00BC614E"),
        ("4E61BC00", {"byte_order": ByteOrder.REVERSED}, "00BC614E"),
        ("1315027968", {"byte_order": ByteOrder.REVERSED}, "00BC614E"),  # LSB-first decimal
        ("80E5D4C3B2A104", {"byte_order": ByteOrder.AS_TYPED}, "80E5D4C3B2A104"),
        ("04E5D4C3B2A104", {}, "04E5D4C3B2A104"),  # 04 at both ends: kept as typed
        ("0x12345678", {"base": NumberBase.DECIMAL}, "12345678"),  # an explicit 0x wins
    ],
)
def test_configured_rules(line: str, options: dict, uid: str) -> None:
    assert parse_wedge_line(line, **options) == uid


@pytest.mark.parametrize(
    "line",
    [
        "",
        "   \r\n",
        "04A1B2C3D4E5",  # 6 bytes
        "hello",
        "G1234567",
        "04:A1B:C3",
        "04A1_B2C3",
        "０１２３４５６７８９",  # full-width digits
        "1" * 30,
    ],
)
def test_rejected_lines(line: str) -> None:
    with pytest.raises(WedgeInputError):
        parse_wedge_line(line)


def test_forced_bases_refuse_what_they_cannot_read() -> None:
    with pytest.raises(WedgeInputError):
        parse_wedge_line("DEADBEEF", base=NumberBase.DECIMAL)
    with pytest.raises(WedgeInputError):  # 10 hex digits are 5 bytes, not a UID size
        parse_wedge_line("0012345678", base=NumberBase.HEX)


def test_reader_assembles_lines_from_keystrokes() -> None:
    at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    reader = KeyboardWedgeReader("usb-wedge", clock=lambda: at)
    assert isinstance(reader, TagReader)
    for key in "0012345678\r":
        reader.feed(key)
    reader.feed("04:A1:B2:C3:D4:E5:80\n\nnot a uid\r\n04A1")
    reading = reader.read(timeout=1)
    assert (reading.uid, reading.tag_type, reading.reader, reading.read_at) == (
        "00BC614E",
        TagType.UNKNOWN,
        "usb-wedge",
        at,
    )
    assert reader.read(timeout=1).uid == "04A1B2C3D4E580"
    with pytest.raises(WedgeInputError):
        reader.read(timeout=1)
    with pytest.raises(ReadTimeoutError):  # "04A1" is still waiting for its Enter
        reader.read(timeout=0.01)
    reader.close()
    reader.feed("DEADBEEF\n")
    assert reader.read(timeout=1).uid == "DEADBEEF"  # close() dropped the half line
