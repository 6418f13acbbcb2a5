"""End to end through the real PC/SC stack: pyscard -> pcscd -> vpcd -> emulated tags."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import ndef
import pytest

from rfid import (
    KeyRing,
    NoReaderError,
    PcscReader,
    ReadTimeoutError,
    RfidError,
    TagReading,
    TagRemovedError,
    TagType,
    list_readers,
    verify_sun_with_keyring,
)
from tests.rfid.conftest import VirtualReader
from tests.rfid.emulator import NTAG215_ATR, NTAG424_ATR, Ntag215Tag, Ntag424Tag, ndef_message

pytestmark = pytest.mark.pcsc

UID_424 = bytes.fromhex("04A1B2C3D4E580")
UID_215 = bytes.fromhex("04112233445566")
KEYRING = KeyRing({1: bytes.fromhex("00112233445566778899AABBCCDDEEFF")})


def ntag424(**options: object) -> Ntag424Tag:
    return Ntag424Tag(
        UID_424,
        meta_read_key=KEYRING.meta_read_key(1),
        file_read_key=KEYRING.file_read_key(UID_424, 1),
        **options,  # type: ignore[arg-type]
    )


def test_lists_the_virtual_readers(pcscd: str) -> None:
    assert pcscd in list_readers()


def test_reads_ntag424_uid_type_ndef_and_sun(virtual_reader: VirtualReader) -> None:
    tag = virtual_reader.insert(
        ntag424(
            counter=41,
            file_data=b"site:HEL-0042\x00\x00\x00",
            max_le=0x30,
            extra_records=(ndef.TextRecord("Transformer T-17"),),
        )
    )
    reading = PcscReader(virtual_reader.name).read(timeout=5)

    assert reading.uid == UID_424.hex().upper()
    assert reading.tag_type is TagType.TYPE4
    assert reading.atr == NTAG424_ATR
    assert reading.reader == virtual_reader.name
    assert reading.uris == (tag.last_url,)
    assert reading.ndef_records[1] == ndef.TextRecord("Transformer T-17")
    # MLe 0x30 forces the NDEF file to be read in several chunks.
    assert sum(1 for a in tag.apdus if a[:2] == b"\x00\xb0") > 4
    assert reading.sun is not None
    result = verify_sun_with_keyring(reading.sun, KEYRING)
    assert (result.uid, result.counter, result.key_version) == (UID_424, 42, 1)
    assert result.file_data == b"site:HEL-0042\x00\x00\x00"


def test_counter_rises_on_each_read(virtual_reader: VirtualReader) -> None:
    virtual_reader.insert(ntag424(counter=7))
    reader = PcscReader(virtual_reader.name)
    counters = [
        verify_sun_with_keyring(reader.read(timeout=5).sun, KEYRING).counter  # type: ignore[arg-type]
        for _ in range(3)
    ]
    assert counters == [8, 9, 10]


def test_reads_ntag215_type2_page_by_page(virtual_reader: VirtualReader) -> None:
    message = ndef_message(
        ndef.UriRecord("https://crewline.example/site/HEL-0042"), ndef.TextRecord("x" * 200)
    )
    tag = virtual_reader.insert(
        Ntag215Tag(UID_215, message, tlvs_before=bytes.fromhex("0103A00C34"))
    )
    reading = PcscReader("Virtual PCD").read(timeout=5)  # name prefix selects the reader

    assert reading.uid == UID_215.hex().upper()
    assert reading.tag_type is TagType.TYPE2
    assert reading.atr == NTAG215_ATR
    assert reading.ndef_message == message
    assert reading.uris == ("https://crewline.example/site/HEL-0042",)
    assert reading.sun is None
    assert all(a[:2] in (b"\xff\xca", b"\xff\xb0") for a in tag.apdus)


def test_watch_reports_insert_and_remove(virtual_reader: VirtualReader) -> None:
    inserted: list[TagReading] = []
    removed: list[str] = []
    errors: list[RfidError] = []
    got_insert, got_remove = threading.Event(), threading.Event()

    def on_insert(reading: TagReading) -> None:
        inserted.append(reading)
        got_insert.set()

    def on_remove(reader: str) -> None:
        removed.append(reader)
        got_remove.set()

    with PcscReader(virtual_reader.name).watch(on_insert, on_remove, errors.append) as watch:
        for uid in (UID_424, bytes.fromhex("04CAFEBABE0180")):
            got_insert.clear()
            got_remove.clear()
            tag = virtual_reader.insert(
                Ntag424Tag(uid, meta_read_key=bytes(16), file_read_key=bytes(16))
            )
            assert got_insert.wait(5), "insert not reported"
            virtual_reader.remove(tag, wait=False)
            assert got_remove.wait(5), "remove not reported"
        assert watch.running
    assert not watch.running
    assert [r.uid for r in inserted] == ["04A1B2C3D4E580", "04CAFEBABE0180"]
    assert removed == [virtual_reader.name] * 2
    assert errors == []


def test_tag_pulled_between_chunks_is_an_rfid_error(virtual_reader: VirtualReader) -> None:
    tag = ntag424(max_le=0x20)
    # GET UID, SELECT app, SELECT CC, READ CC, SELECT NDEF, READ NLEN, READ chunk 1, then gone.
    tag.drop_after = 8
    virtual_reader.insert(tag)
    with pytest.raises(TagRemovedError):
        PcscReader(virtual_reader.name).read(timeout=5)
    assert tag.closed.wait(2)


def test_watch_reports_a_pulled_tag_and_keeps_watching(virtual_reader: VirtualReader) -> None:
    errors: list[RfidError] = []
    inserted: list[TagReading] = []
    failed, read_ok = threading.Event(), threading.Event()

    def on_error(error: RfidError) -> None:
        errors.append(error)
        failed.set()

    def on_insert(reading: TagReading) -> None:
        inserted.append(reading)
        read_ok.set()

    with PcscReader(virtual_reader.name).watch(on_insert, on_error=on_error) as watch:
        flaky = ntag424()
        flaky.drop_after = 3
        virtual_reader.insert(flaky)
        assert failed.wait(5)
        virtual_reader.remove(flaky)
        virtual_reader.insert(ntag424())
        assert read_ok.wait(5)
        assert watch.running
    assert isinstance(errors[0], TagRemovedError)
    assert inserted[0].uid == UID_424.hex().upper()


def test_read_times_out_without_a_tag(pcscd: str) -> None:
    started = time.monotonic()
    with pytest.raises(ReadTimeoutError):
        PcscReader(pcscd).read(timeout=0.4)
    assert time.monotonic() - started < 2


def test_unknown_reader_name_is_a_clear_error(pcscd: str) -> None:
    with pytest.raises(NoReaderError, match="no PC/SC reader named 'ACS ACR122U'"):
        PcscReader("ACS ACR122U").read(timeout=1)


def test_pcscd_not_running_is_a_clear_error(pcscd: str) -> None:
    # libpcsclite reads its socket path from PCSCLITE_CSOCK_NAME once per process, so a child
    # process pointed at an absent socket sees exactly what a client sees when pcscd is down.
    code = (
        "from rfid import PcscReader, list_readers, PcscUnavailableError\n"
        "for call in (list_readers, lambda: PcscReader().read(timeout=1)):\n"
        "    try:\n"
        "        call()\n"
        "    except PcscUnavailableError as exc:\n"
        "        print(exc.code, exc)\n"
    )
    env = {**os.environ, "PCSCLITE_CSOCK_NAME": "/nonexistent/pcscd.comm"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.splitlines()
    assert len(out) == 2
    assert all(line.startswith("pcsc_unavailable") and "is pcscd running?" in line for line in out)
