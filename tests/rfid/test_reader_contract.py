"""One contract, every TagReader: PC/SC (real pcscd + vpcd), Android (fake bridge), wedge."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from rfid import (
    AndroidNfcReader,
    KeyboardWedgeReader,
    PcscReader,
    ReadTimeoutError,
    TagReader,
    TagReading,
)
from tests.rfid.android_fakes import FakeAdapter, FakeTag, bridge
from tests.rfid.conftest import VirtualReader
from tests.rfid.emulator import Ntag424Tag

UID = bytes.fromhex("04A1B2C3D4E580")
AT = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

# (reader, present a tag) for each implementation
Harness = tuple[TagReader, Callable[[], None]]


def _tag() -> Ntag424Tag:
    return Ntag424Tag(UID, meta_read_key=bytes(16), file_read_key=bytes(16))


@pytest.fixture
def wedge() -> Iterator[Harness]:
    reader = KeyboardWedgeReader(clock=lambda: AT)
    yield reader, lambda: reader.feed(UID.hex() + "\r\n")


@pytest.fixture
def android() -> Iterator[Harness]:
    adapter = FakeAdapter()
    reader = AndroidNfcReader(bridge(adapter), clock=lambda: AT)
    reader.start()

    def present() -> None:
        thread = threading.Thread(target=adapter.callback.onTagDiscovered, args=(FakeTag(_tag()),))
        thread.start()
        thread.join()

    yield reader, present
    reader.close()


@pytest.fixture
def pcsc(virtual_reader: VirtualReader) -> Iterator[Harness]:
    reader = PcscReader(virtual_reader.name, clock=lambda: AT)

    def present() -> None:
        virtual_reader.insert(_tag())

    yield reader, present
    reader.close()


@pytest.mark.parametrize(
    "harness", ["wedge", "android", pytest.param("pcsc", marks=pytest.mark.pcsc)]
)
def test_reader_contract(harness: str, request: pytest.FixtureRequest) -> None:
    reader, present = request.getfixturevalue(harness)
    assert isinstance(reader, TagReader)
    assert reader.name

    with pytest.raises(ReadTimeoutError):
        reader.read(timeout=0.2)

    present()
    reading = reader.read(timeout=5)
    assert isinstance(reading, TagReading)
    assert reading.uid == "04A1B2C3D4E580"
    assert reading.read_at == AT
    assert reading.reader

    reader.close()
    reader.close()  # idempotent
