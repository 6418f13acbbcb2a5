"""The shared APDU routine against the emulated tags, with faults injected (no pcscd needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import ndef
import pytest

from rfid.apdu import CapabilityContainer, TagSession, classify_atr
from rfid.errors import ApduStatusError, MalformedResponseError, NdefError, TagRemovedError
from rfid.model import TagType
from tests.rfid.emulator import (
    NTAG215_ATR,
    NTAG424_ATR,
    Ntag215Tag,
    Ntag424Tag,
    ndef_message,
    storage_atr,
)

UID7 = bytes.fromhex("04A1B2C3D4E580")
FIXED = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)


def ntag424(**options: object) -> Ntag424Tag:
    return Ntag424Tag(UID7, meta_read_key=bytes(16), file_read_key=bytes(16), **options)  # type: ignore[arg-type]


def read(tag: Ntag424Tag | Ntag215Tag, **options: object):
    return TagSession(tag.transmit, **options).read(  # type: ignore[arg-type]
        atr=tag.atr, reader="test", clock=lambda: FIXED
    )


@pytest.mark.parametrize(
    ("atr", "expected"),
    [
        (NTAG424_ATR, TagType.TYPE4),
        (NTAG215_ATR, TagType.TYPE2),
        (storage_atr(0x003A), TagType.TYPE2),
        (storage_atr(0x0001), TagType.MIFARE_CLASSIC),
        (storage_atr(0x0002), TagType.MIFARE_CLASSIC),
        (storage_atr(0xF004), TagType.UNKNOWN),
        (bytes.fromhex("3B8880010000000000718100F9"), TagType.TYPE4),  # ISO 14443-4 type B
        (bytes.fromhex("3B8180018081"), TagType.TYPE4),  # TCK not checked, length is
        (bytes.fromhex("3B81800180"), TagType.UNKNOWN),  # truncated
        (
            bytes.fromhex("3BFA1800008131FE454A434F5033315632333298"),
            TagType.UNKNOWN,
        ),  # contact card
        (b"", TagType.UNKNOWN),
    ],
)
def test_classify_atr(atr: bytes, expected: TagType) -> None:
    assert classify_atr(atr) is expected


# --- Type 4 --------------------------------------------------------------------------------


def test_type4_read_respects_mle_chunks() -> None:
    tag = ntag424(max_le=0x10, extra_records=(ndef.TextRecord("x" * 100),))
    reading = read(tag)
    chunk_reads = [a for a in tag.apdus if a[:2] == b"\x00\xb0" and (a[2] << 8 | a[3]) >= 2]
    assert all(a[4] <= 0x10 for a in chunk_reads)
    assert len(chunk_reads) == -(-(len(tag.ndef_file) - 2) // 0x10)
    assert reading.ndef_message == tag.ndef_file[2:]
    assert reading.read_at == FIXED and reading.reader == "test"
    assert reading.sun is not None


def test_type4_max_chunk_caps_below_mle() -> None:
    tag = ntag424()
    read(tag, max_chunk=50)
    assert max(a[4] for a in tag.apdus if a[:2] == b"\x00\xb0") == 50


def test_type4_exact_apdu_sequence() -> None:
    tag = ntag424()
    read(tag)
    assert [a.hex().upper() for a in tag.apdus[:6]] == [
        "FFCA000000",
        "00A4040007D276000085010100",
        "00A4000C02E103",
        "00B000000F",
        "00A4000C02E104",
        "00B0000002",
    ]


def test_type4_without_ndef_application_reads_uid_only() -> None:
    tag = ntag424()
    tag.tamper = lambda apdu, resp: b"\x6a\x82" if apdu[:4] == bytes.fromhex("00A40400") else resp
    reading = read(tag)
    assert reading.uid == UID7.hex().upper() and reading.ndef_message == b"" and reading.sun is None


def test_type4_empty_ndef_file() -> None:
    tag = ntag424()
    tag.tamper = lambda apdu, resp: (
        b"\x00\x00\x90\x00" if apdu == bytes.fromhex("00B0000002") else resp
    )
    assert read(tag).ndef_records == ()


def _replace(command: str, response: str):
    wanted = bytes.fromhex(command)
    return lambda apdu, resp: bytes.fromhex(response) if apdu == wanted else resp


@pytest.mark.parametrize(
    ("command", "response", "error", "message"),
    [
        ("FFCA000000", "6A81", ApduStatusError, "GET UID: status word 6A 81"),
        ("FFCA000000", "0102039000", MalformedResponseError, "4, 7 or 10 bytes"),
        ("FFCA000000", "90", MalformedResponseError, "unusable response"),
        ("FFCA000000", "", MalformedResponseError, "unusable response"),
        ("00A4040007D276000085010100", "6999", ApduStatusError, "SELECT NDEF application"),
        (
            "00A4000C02E103",
            "6A82",
            ApduStatusError,
            "SELECT capability container: status word 6A 82",
        ),
        ("00A4000C02E103", "AA9000", MalformedResponseError, "expected 0 bytes, got 1"),
        ("00B000000F", "00179000", MalformedResponseError, "expected 15 bytes, got 2"),
        ("00B000000F", "0017100100 00FF0406E10401000000 9000", NdefError, "unsupported capability"),
        ("00B000000F", "0017200000 00FF0406E10401000000 9000", NdefError, "MLe 0"),
        ("00B000000F", "0017200100 00FF0506E10401000000 9000", NdefError, "File Control TLV"),
        ("00B000000F", "0017200100 00FF0406E10401008000 9000", NdefError, "read-protected"),
        ("00A4000C02E104", "6982", ApduStatusError, "SELECT NDEF file"),
        ("00B0000002", "FFFF9000", NdefError, "exceeds the NDEF file size"),
        ("00B0000002", "00", MalformedResponseError, "unusable response"),
        ("00B0000002", "0A9000", MalformedResponseError, "expected 2 bytes, got 1"),
        ("00B0000002", "6282", ApduStatusError, "READ NLEN: status word 62 82"),
    ],
)
def test_type4_bad_responses_are_clear_errors(
    command: str, response: str, error: type[Exception], message: str
) -> None:
    tag = ntag424()
    tag.tamper = _replace(command, response.replace(" ", ""))
    with pytest.raises(error, match=message):
        read(tag)


def test_type4_short_chunk_is_malformed() -> None:
    tag = ntag424(max_le=0x20)

    def truncate(apdu: bytes, resp: bytes) -> bytes:
        if apdu[:2] == b"\x00\xb0" and (apdu[2] << 8 | apdu[3]) == 0x22:
            return resp[:5] + resp[-2:]
        return resp

    tag.tamper = truncate
    with pytest.raises(MalformedResponseError, match="READ NDEF: expected 32 bytes, got 5"):
        read(tag)


def test_type4_garbage_ndef_is_an_ndef_error() -> None:
    tag = ntag424(max_le=0x20)
    tag.tamper = lambda apdu, resp: (
        b"\xff" * (len(resp) - 2) + resp[-2:]
        if apdu[:3] == b"\x00\xb0\x00" and apdu[3] >= 2
        else resp
    )
    with pytest.raises(NdefError, match="invalid NDEF message"):
        read(tag)


def test_transport_errors_propagate_unchanged() -> None:
    tag = ntag424()

    def gone(apdu: bytes) -> tuple[bytes, int, int]:
        if apdu[:2] == b"\x00\xb0":
            raise TagRemovedError("tag left")
        return tag.transmit(apdu)

    with pytest.raises(TagRemovedError):
        TagSession(gone).read(atr=NTAG424_ATR, reader="x")


def test_capability_container_parse() -> None:
    cc = CapabilityContainer.parse(bytes.fromhex("001720010000FF0406E10401000000"))
    assert (cc.max_le, cc.max_lc, cc.ndef_file_id, cc.ndef_max_size) == (
        0x100,
        0xFF,
        b"\xe1\x04",
        0x100,
    )
    with pytest.raises(NdefError):
        CapabilityContainer.parse(bytes(14))


# --- Type 2 --------------------------------------------------------------------------------

UID_215 = bytes.fromhex("04112233445566")


def test_type2_reads_ndef_tlv_after_lock_control_tlv() -> None:
    message = ndef_message(ndef.UriRecord("https://crewline.example/site/7"))
    tag = Ntag215Tag(
        UID_215, message, tlvs_before=bytes.fromhex("0000 0103A00C34".replace(" ", ""))
    )
    reading = read(tag)
    assert reading.tag_type is TagType.TYPE2
    assert reading.ndef_message == message
    assert reading.uris == ("https://crewline.example/site/7",)
    assert tag.apdus[1] == bytes.fromhex("FFB0000310")  # CC page first


def test_type2_three_byte_tlv_length_and_lazy_reads() -> None:
    message = ndef_message(ndef.TextRecord("y" * 400))
    tag = Ntag215Tag(UID_215, message)
    reading = read(tag)
    assert reading.ndef_message == message
    pages = [a[3] for a in tag.apdus if a[:2] == b"\xff\xb0"]
    assert pages == list(range(3, 3 + 4 * len(pages), 4))
    assert len(pages) == -(-(4 + len(message) - 12) // 16) + 1  # no page read beyond the TLV


@pytest.mark.parametrize("cc", ["00000000", "E1103E00"], ids=["blank", "formatted-empty"])
def test_type2_blank_tag_and_empty_ndef(cc: str) -> None:
    tag = Ntag215Tag(UID_215, b"")
    tag.memory[12:16] = bytes.fromhex(cc)
    assert read(tag).ndef_message == b""


def test_type2_terminator_without_ndef() -> None:
    tag = Ntag215Tag(UID_215, b"")
    tag.memory[16:18] = b"\xfe\x00"
    assert read(tag).ndef_message == b""


@pytest.mark.parametrize(
    ("cc", "message"),
    [("AB103E00", "invalid Type 2 capability container"), ("E1103E80", "read-protected")],
)
def test_type2_bad_capability_container(cc: str, message: str) -> None:
    tag = Ntag215Tag(UID_215, b"\xd0\x00\x00")
    tag.memory[12:16] = bytes.fromhex(cc)
    with pytest.raises(NdefError, match=message):
        read(tag)


def test_type2_tlv_past_data_area() -> None:
    tag = Ntag215Tag(UID_215, b"")
    tag.memory[16:20] = bytes.fromhex("03FF0300")  # 768-byte NDEF TLV in a 496-byte area
    with pytest.raises(NdefError, match="past the data area"):
        read(tag)


@pytest.mark.parametrize(
    ("response", "error"),
    [("6300", ApduStatusError), ("E1103E009000", MalformedResponseError)],
)
def test_type2_bad_page_read(response: str, error: type[Exception]) -> None:
    tag = Ntag215Tag(UID_215, b"")
    tag.tamper = _replace("FFB0000310", response)
    with pytest.raises(error):
        read(tag)


def test_rejects_bad_max_chunk() -> None:
    with pytest.raises(ValueError):
        TagSession(lambda apdu: (b"", 0x90, 0), max_chunk=256)
