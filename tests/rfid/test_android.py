"""The Android reader off Android: fake Tag / IsoDep / NfcA objects around the emulated tags."""

from __future__ import annotations

import subprocess
import sys
import threading

import ndef
import pytest

from rfid import (
    AndroidNfcReader,
    KeyRing,
    NfcUnavailableError,
    ReadTimeoutError,
    RfidError,
    TagError,
    TagReading,
    TagRemovedError,
    TagType,
    verify_sun_with_keyring,
)
from rfid.android import (
    iso14443_4_atr,
    jnius_bridge,
    read_android_tag,
    storage_card_atr,
)
from tests.rfid.android_fakes import FakeAdapter, FakeIsoDep, FakeNfcA, FakeTag, FakeTech, bridge
from tests.rfid.emulator import NTAG215_ATR, NTAG424_ATR, Ntag215Tag, Ntag424Tag, ndef_message

UID = bytes.fromhex("04A1B2C3D4E580")
KEYRING = KeyRing({1: bytes(range(16))})


def ntag424(**options: object) -> Ntag424Tag:
    return Ntag424Tag(
        UID,
        meta_read_key=KEYRING.meta_read_key(1),
        file_read_key=KEYRING.file_read_key(UID, 1),
        **options,  # type: ignore[arg-type]
    )


def android_read(tag: FakeTag) -> TagReading:
    return read_android_tag(tag, iso_dep=FakeIsoDep, nfc_a=FakeNfcA)


def test_synthesised_atrs_match_what_pcsc_readers_report() -> None:
    assert iso14443_4_atr(b"\x80") == NTAG424_ATR
    assert storage_card_atr(0x0003) == NTAG215_ATR


def test_isodep_ntag424_reads_like_pcsc() -> None:
    FakeIsoDep.made.clear()
    emulated = ntag424(counter=3, max_le=0x40)
    reading = android_read(FakeTag(emulated))
    assert reading.uid == UID.hex().upper()
    assert reading.tag_type is TagType.TYPE4
    assert reading.atr == NTAG424_ATR
    assert reading.reader == "android-nfc"
    assert verify_sun_with_keyring(reading.sun, KEYRING).counter == 4  # type: ignore[arg-type]
    # FF CA is answered from Tag.getId() and never reaches the tag.
    assert bytes.fromhex("FFCA000000") not in emulated.apdus
    tech = FakeIsoDep.made[-1]
    assert tech.closed and tech.timeout == 2000


def test_nfca_type2_uses_native_read_commands() -> None:
    message = ndef_message(ndef.UriRecord("https://crewline.example/site/9"))
    emulated = Ntag215Tag(bytes.fromhex("04112233445566"), message)
    reading = android_read(FakeTag(emulated, sak=0x00, iso=False))
    assert reading.tag_type is TagType.TYPE2
    assert reading.atr == NTAG215_ATR
    assert reading.uris == ("https://crewline.example/site/9",)
    assert emulated.apdus[0] == b"\x30\x03"
    assert all(a[0] == 0x30 and len(a) == 2 for a in emulated.apdus)


def test_nfca_nak_is_a_clear_error() -> None:
    emulated = Ntag215Tag(bytes.fromhex("04112233445566"), b"")
    emulated.pages = 2  # every READ from page 3 on is NAKed
    with pytest.raises(TagError, match="READ page 3: status word 63 00"):
        android_read(FakeTag(emulated, iso=False))


@pytest.mark.parametrize(
    ("sak", "tag_type"), [(0x08, TagType.MIFARE_CLASSIC), (0x20, TagType.UNKNOWN)]
)
def test_nfca_other_tags_give_uid_only(sak: int, tag_type: TagType) -> None:
    emulated = Ntag215Tag(bytes.fromhex("04112233445566"), b"")
    reading = android_read(FakeTag(emulated, sak=sak, iso=False))
    assert (reading.uid, reading.tag_type, reading.ndef_message) == (
        "04112233445566",
        tag_type,
        b"",
    )
    assert emulated.apdus == []


@pytest.mark.parametrize(
    ("classname", "error"),
    [
        ("android.nfc.TagLostException", TagRemovedError),
        ("java.io.IOException", TagRemovedError),
        ("java.lang.SecurityException", TagError),
    ],
)
def test_java_exceptions_become_rfid_errors(classname: str, error: type[RfidError]) -> None:
    original = FakeIsoDep.get

    def get(tag: FakeTag) -> FakeTech | None:
        tech = original(tag)
        assert tech is not None
        tech.fail_on = lambda data: classname if data[:2] == b"\x00\xb0" else None
        return tech

    class Failing(FakeIsoDep):
        pass

    Failing.get = staticmethod(get)  # type: ignore[method-assign, assignment]
    with pytest.raises(error):
        read_android_tag(FakeTag(ntag424()), iso_dep=Failing, nfc_a=FakeNfcA)


# --- reader mode ---------------------------------------------------------------------------


def test_reader_mode_delivers_readings_and_errors() -> None:
    adapter = FakeAdapter()
    reader = AndroidNfcReader(bridge(adapter))
    readings: list[TagReading] = []
    errors: list[RfidError] = []
    reader.start(readings.append, errors.append)
    assert adapter.callback is not None
    assert adapter.flags & 0x80  # skip Android's own NDEF read (it would bump the SUN counter)

    # Android calls back on a binder thread.
    worker = threading.Thread(target=adapter.callback.onTagDiscovered, args=(FakeTag(ntag424()),))
    worker.start()
    worker.join()
    assert reader.read(timeout=1).uid == UID.hex().upper()
    assert readings[0].tag_type is TagType.TYPE4

    broken = ntag424()
    broken.tamper = lambda apdu, resp: b"\x6a\x81" if apdu[:2] == b"\x00\xa4" else resp
    adapter.callback.onTagDiscovered(FakeTag(broken))
    assert isinstance(errors[0], TagError)
    with pytest.raises(TagError):
        reader.read(timeout=1)
    with pytest.raises(ReadTimeoutError):
        reader.read(timeout=0.05)
    reader.close()
    assert adapter.callback is None


@pytest.mark.parametrize(
    ("adapter", "message"), [(None, "no NFC adapter"), (FakeAdapter(False), "switched off")]
)
def test_reader_mode_without_nfc(adapter: FakeAdapter | None, message: str) -> None:
    with pytest.raises(NfcUnavailableError, match=message):
        AndroidNfcReader(bridge(adapter)).start()


def test_off_android_the_bridge_is_a_clear_error() -> None:
    with pytest.raises(NfcUnavailableError, match="pyjnius"):
        jnius_bridge()
    with pytest.raises(NfcUnavailableError):
        AndroidNfcReader().read(timeout=0)


def test_import_rfid_needs_neither_pyscard_nor_jnius() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('smartcard', 'jnius', 'android'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import rfid, rfid.pcsc, rfid.android\n"
        "banned = {'smartcard', 'jnius', 'server', 'fastapi', 'sqlalchemy', 'kivy'}\n"
        "print(sorted(banned & {m.split('.')[0] for m in sys.modules}))\n"
        "try:\n"
        "    rfid.list_readers()\n"
        "except rfid.PcscUnavailableError as exc:\n"
        "    print(exc.code)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    ).stdout.split()
    assert out == ["[]", "pcsc_unavailable"]
