"""The tag-reading routine shared by every APDU transport (PC/SC readers, Android IsoDep/NfcA).

:class:`TagSession` speaks only through a ``transmit(apdu) -> (data, sw1, sw2)`` callable, so the
same code reads a tag on an ACR122U and on a phone:

* UID: the PC/SC part 3 pseudo-APDU ``FF CA 00 00 00`` (answered by the reader, not the tag).
* Type 2 tags (NTAG21x): ``FF B0 00 <page> 10`` page reads; capability container in page 3;
  NDEF message in the NDEF TLV of the data area from page 4.
* Type 4 tags (NTAG 424 DNA): SELECT the NDEF application, SELECT/READ the capability container,
  SELECT the NDEF file, READ BINARY its 2-byte NLEN, then the message in chunks of at most MLe.

Every response is checked: status word 90 00, exact length. Anything else raises an
:mod:`rfid.errors` exception naming the command.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rfid.errors import ApduStatusError, MalformedResponseError, NdefError
from rfid.model import Clock, TagReading, TagType, normalize_uid, utc_now

__all__ = ["CapabilityContainer", "TagSession", "Transmit", "classify_atr"]

#: Sends one command APDU and returns ``(response data, sw1, sw2)``. Transports raise
#: :class:`rfid.errors.TagRemovedError` / :class:`rfid.errors.ReaderError` themselves.
Transmit = Callable[[bytes], tuple[bytes, int, int]]

_STORAGE_ATR_PREFIX = bytes.fromhex("3B8F8001804F0CA000000306")
# PC/SC part 3 supplemental document, card names in storage-card ATRs.
_TYPE2_CARD_NAMES = {0x0003, 0x003A}  # MIFARE Ultralight (NTAG21x report this) / Ultralight C
_CLASSIC_CARD_NAMES = {0x0001, 0x0002, 0x0026, 0x0036, 0x0037}  # 1K, 4K, Mini, Plus SL1 2K/4K

NDEF_APPLICATION = bytes.fromhex("D2760000850101")
_CC_FILE = bytes.fromhex("E103")
_TYPE2_PAGE = 4
_TYPE2_READ = 16  # one FF B0 read returns four pages
_SHORT_APDU_MAX_LE = 255  # Le 00 would mean 256 and is refused by some readers


def classify_atr(atr: bytes) -> TagType:
    """Tell the tag type from the ATR a PC/SC reader synthesises for a contactless tag.

    Storage-card ATRs (``3B 8F 80 01 80 4F 0C A0 00 00 03 06 ..``) carry a card name: Ultralight
    and NTAG21x are Type 2, MIFARE Classic is reported as such. Other ``3B 8n 80 01`` ATRs are
    ISO 14443-4 cards (``3B 81 80 01 80 80`` for NTAG 424 DNA and DESFire): Type 4.
    """
    atr = bytes(atr)
    if atr.startswith(_STORAGE_ATR_PREFIX) and len(atr) >= 15:
        name = int.from_bytes(atr[13:15], "big")
        if name in _TYPE2_CARD_NAMES:
            return TagType.TYPE2
        if name in _CLASSIC_CARD_NAMES:
            return TagType.MIFARE_CLASSIC
        return TagType.UNKNOWN
    if (
        len(atr) >= 5
        and atr[0] == 0x3B
        and atr[1] & 0xF0 == 0x80
        and atr[2:4] == b"\x80\x01"
        and len(atr) == 5 + (atr[1] & 0x0F)
    ):
        return TagType.TYPE4
    return TagType.UNKNOWN


@dataclass(frozen=True, slots=True)
class CapabilityContainer:
    """The fields of a Type 4 capability container this library uses."""

    version: int
    max_le: int
    max_lc: int
    ndef_file_id: bytes
    ndef_max_size: int
    read_access: int
    write_access: int

    @classmethod
    def parse(cls, data: bytes) -> CapabilityContainer:
        """Parse the first 15 bytes of a Type 4 CC file (NFC Forum T4T 2.0/3.0)."""
        if len(data) < 15:
            raise NdefError("capability container shorter than 15 bytes")
        cc_len = int.from_bytes(data[0:2], "big")
        version = data[2]
        if cc_len < 15 or version >> 4 not in (2, 3):
            raise NdefError(
                f"unsupported capability container (CCLEN {cc_len}, version {version:#x})"
            )
        if data[7] != 0x04 or data[8] != 0x06:
            raise NdefError("capability container has no NDEF File Control TLV")
        cc = cls(
            version=version,
            max_le=int.from_bytes(data[3:5], "big"),
            max_lc=int.from_bytes(data[5:7], "big"),
            ndef_file_id=bytes(data[9:11]),
            ndef_max_size=int.from_bytes(data[11:13], "big"),
            read_access=data[13],
            write_access=data[14],
        )
        if cc.max_le < 1:
            raise NdefError("capability container declares MLe 0")
        if cc.ndef_max_size < 2:
            raise NdefError("capability container declares an NDEF file under 2 bytes")
        return cc


class TagSession:
    """Reads one presented tag through ``transmit``; create one per tag presentation."""

    def __init__(self, transmit: Transmit, *, max_chunk: int = _SHORT_APDU_MAX_LE) -> None:
        if not 1 <= max_chunk <= _SHORT_APDU_MAX_LE:
            raise ValueError("max_chunk must be 1..255")
        self._transmit = transmit
        self._max_chunk = max_chunk

    def command(self, name: str, apdu: bytes, *, length: int | None = None) -> bytes:
        """Send ``apdu``; return its data after checking 90 00 and, if given, the exact length."""
        result = self._transmit(bytes(apdu))
        try:
            data, sw1, sw2 = result
            data = bytes(data)
            if not (0 <= int(sw1) <= 0xFF and 0 <= int(sw2) <= 0xFF):
                raise ValueError("status byte out of range")
        except (TypeError, ValueError) as exc:
            raise MalformedResponseError(f"{name}: unusable response {result!r}") from exc
        if (sw1, sw2) != (0x90, 0x00):
            raise ApduStatusError(name, int(sw1), int(sw2))
        if length is not None and len(data) != length:
            raise MalformedResponseError(f"{name}: expected {length} bytes, got {len(data)}")
        return data

    def read_uid(self) -> str:
        """Return the UID (canonical hex) via ``FF CA 00 00 00``."""
        data = self.command("GET UID", bytes.fromhex("FFCA000000"))
        try:
            return normalize_uid(data)
        except MalformedResponseError as exc:
            raise MalformedResponseError(f"GET UID: {exc}") from None

    # --- Type 2 --------------------------------------------------------------------------

    def _read_pages(self, page: int) -> bytes:
        if not 0 <= page <= 0xFF:
            raise NdefError("Type 2 data area runs past page 255")
        return self.command(
            f"READ page {page}", bytes([0xFF, 0xB0, 0x00, page, _TYPE2_READ]), length=_TYPE2_READ
        )

    def read_type2_ndef(self) -> bytes:
        """Return the NDEF message of a Type 2 tag (empty when it has none)."""
        first = self._read_pages(3)
        cc, data = first[:4], bytearray(first[4:])
        if cc == bytes(4):
            return b""  # blank, never NDEF-formatted
        if cc[0] != 0xE1 or cc[1] >> 4 != 1:
            raise NdefError(f"invalid Type 2 capability container {cc.hex().upper()}")
        if cc[3] >> 4 != 0:
            raise NdefError("Type 2 NDEF data area is read-protected")
        area_size = cc[2] * 8
        next_page = 3 + _TYPE2_READ // 4

        def ensure(end: int) -> None:
            nonlocal next_page
            if end > area_size:
                raise NdefError("Type 2 TLV runs past the data area")
            while len(data) < end:
                data.extend(self._read_pages(next_page))
                next_page += _TYPE2_READ // 4

        pos = 0
        while pos < area_size:
            ensure(pos + 1)
            tlv_type = data[pos]
            if tlv_type == 0x00:  # NULL TLV
                pos += 1
                continue
            if tlv_type == 0xFE:  # Terminator TLV before any NDEF TLV
                return b""
            ensure(pos + 2)
            length, header = data[pos + 1], 2
            if length == 0xFF:
                ensure(pos + 4)
                length, header = int.from_bytes(data[pos + 2 : pos + 4], "big"), 4
            ensure(pos + header + length)
            if tlv_type == 0x03:
                return bytes(data[pos + header : pos + header + length])
            pos += header + length  # Lock/Memory Control or proprietary TLV: skipped
        return b""

    # --- Type 4 --------------------------------------------------------------------------

    def _select_file(self, name: str, file_id: bytes) -> None:
        self.command(name, bytes.fromhex("00A4000C02") + file_id, length=0)

    def _read_binary(self, name: str, offset: int, length: int) -> bytes:
        if offset > 0x7FFF:
            raise NdefError("NDEF file offset beyond 32767")
        apdu = bytes([0x00, 0xB0, offset >> 8, offset & 0xFF, length])
        return self.command(name, apdu, length=length)

    def read_capability_container(self) -> CapabilityContainer | None:
        """SELECT the NDEF application and read its CC; None when the tag has no NDEF app."""
        select_app = bytes.fromhex("00A4040007") + NDEF_APPLICATION + b"\x00"
        try:
            self.command("SELECT NDEF application", select_app)
        except ApduStatusError as exc:
            if exc.status_word == 0x6A82:  # application not found: a Type 4 tag without NDEF
                return None
            raise
        self._select_file("SELECT capability container", _CC_FILE)
        return CapabilityContainer.parse(self._read_binary("READ capability container", 0, 15))

    def read_type4_ndef(self) -> bytes:
        """Return the NDEF message of a Type 4 tag (empty when it has none)."""
        cc = self.read_capability_container()
        if cc is None:
            return b""
        if cc.read_access != 0x00:
            raise NdefError("NDEF file is read-protected")
        self._select_file("SELECT NDEF file", cc.ndef_file_id)
        nlen = int.from_bytes(self._read_binary("READ NLEN", 0, 2), "big")
        if nlen > cc.ndef_max_size - 2:
            raise NdefError(f"NLEN {nlen} exceeds the NDEF file size {cc.ndef_max_size}")
        chunk = min(cc.max_le, self._max_chunk)
        message = bytearray()
        while len(message) < nlen:
            size = min(chunk, nlen - len(message))
            message += self._read_binary("READ NDEF", 2 + len(message), size)
        return bytes(message)

    # --- whole tag -----------------------------------------------------------------------

    def read_ndef(self, tag_type: TagType) -> bytes:
        """Return the raw NDEF message of a tag of ``tag_type`` (empty when none or unsupported)."""
        if tag_type is TagType.TYPE2:
            return self.read_type2_ndef()
        if tag_type is TagType.TYPE4:
            return self.read_type4_ndef()
        return b""

    def read(
        self,
        *,
        atr: bytes,
        reader: str,
        clock: Clock = utc_now,
        tag_type: TagType | None = None,
    ) -> TagReading:
        """Read UID and NDEF and return a :class:`TagReading` (type from ``atr`` unless given)."""
        tag_type = classify_atr(atr) if tag_type is None else tag_type
        uid = self.read_uid()
        message = self.read_ndef(tag_type)
        return TagReading.build(
            uid=uid,
            tag_type=tag_type,
            reader=reader,
            read_at=clock(),
            atr=atr,
            ndef_message=message,
        )
