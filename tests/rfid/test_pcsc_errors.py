"""PC/SC failure modes pcscd + vpcd cannot produce on demand (reader unplugged, no readers),
through a scripted stand-in for ``smartcard.scard``. The happy paths and the tag pulled
mid-read run against the real stack in test_pcsc.py."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from rfid import (
    NoReaderError,
    PcscReader,
    PcscUnavailableError,
    ReaderError,
    ReaderUnpluggedError,
    ReadTimeoutError,
    RfidError,
    TagError,
    TagRemovedError,
    list_readers,
    pcsc,
)
from rfid.errors import MalformedResponseError
from tests.rfid.emulator import Ntag424Tag

READER = "ACS ACR122U PICC Interface 00 00"


class ScriptedScard:
    """Just enough of smartcard.scard; ``events`` is the sequence GetStatusChange reports."""

    SCARD_PCI_T0 = 1
    SCARD_PCI_T1 = 2

    def __init__(self, *, tag: Ntag424Tag | None = None, readers: list[str] | None = None) -> None:
        self.tag = tag
        self.readers = [READER] if readers is None else readers
        self.context_result = 0
        self.list_result = 0
        self.events: list[tuple[int, int]] = []  # (result, event state)
        self.connect_result = 0
        self.transmit: Callable[[list[int]], tuple[int, list[int]]] | None = None
        self.disconnected = 0
        self.cancelled = threading.Event()

    def SCardEstablishContext(self, scope: int) -> tuple[int, int]:
        return self.context_result, 1

    def SCardReleaseContext(self, ctx: int) -> int:
        return 0

    def SCardListReaders(self, ctx: int, groups: list) -> tuple[int, list[str]]:
        return self.list_result, list(self.readers)

    def SCardGetStatusChange(self, ctx: int, timeout: int, states: list) -> tuple[int, list]:
        if self.cancelled.is_set():
            return pcsc.SCARD_E_CANCELLED, []
        if not self.events:
            self.cancelled.wait(timeout / 1000)
            return pcsc.SCARD_E_TIMEOUT, []
        result, event = self.events.pop(0)
        return result, [(states[0][0], event, [])]

    def SCardCancel(self, ctx: int) -> int:
        self.cancelled.set()
        return 0

    def SCardConnect(
        self, ctx: int, reader: str, share: int, protocols: int
    ) -> tuple[int, int, int]:
        return self.connect_result, 7, pcsc.SCARD_PROTOCOL_T1

    def SCardStatus(self, card: int) -> tuple[int, str, int, int, list[int]]:
        atr = list(self.tag.atr) if self.tag else []
        return 0, READER, 0, pcsc.SCARD_PROTOCOL_T1, atr

    def SCardBeginTransaction(self, card: int) -> int:
        return 0

    def SCardEndTransaction(self, card: int, disposition: int) -> int:
        return 0

    def SCardDisconnect(self, card: int, disposition: int) -> int:
        self.disconnected += 1
        return 0

    def SCardTransmit(self, card: int, pci: int, apdu: list[int]) -> tuple[int, list[int]]:
        if self.transmit is not None:
            return self.transmit(apdu)
        assert self.tag is not None
        return 0, list(self.tag.respond(bytes(apdu)))

    def SCardGetErrorMessage(self, result: int) -> str:
        return "scripted"


PRESENT = pcsc.SCARD_STATE_PRESENT | pcsc.SCARD_STATE_CHANGED | (1 << 16)
EMPTY = pcsc.SCARD_STATE_EMPTY | pcsc.SCARD_STATE_CHANGED | (2 << 16)


def tag() -> Ntag424Tag:
    return Ntag424Tag(
        bytes.fromhex("04A1B2C3D4E580"), meta_read_key=bytes(16), file_read_key=bytes(16)
    )


@pytest.mark.parametrize(
    ("result", "error"),
    [
        (pcsc.SCARD_E_NO_SERVICE, PcscUnavailableError),
        (pcsc.SCARD_E_SERVICE_STOPPED, PcscUnavailableError),
        (pcsc.SCARD_E_NO_READERS_AVAILABLE, NoReaderError),
        (pcsc.SCARD_E_UNKNOWN_READER, NoReaderError),
        (pcsc.SCARD_E_READER_UNAVAILABLE, ReaderUnpluggedError),
        (pcsc.SCARD_E_TIMEOUT, ReadTimeoutError),
        (pcsc.SCARD_W_REMOVED_CARD, TagRemovedError),
        (pcsc.SCARD_E_NOT_TRANSACTED, TagRemovedError),
        (pcsc.SCARD_E_NO_SMARTCARD, TagRemovedError),
        (pcsc.SCARD_E_PROTO_MISMATCH, TagError),
        (pcsc.SCARD_E_SHARING_VIOLATION, ReaderError),
        (0x80100001, ReaderError),
        (-2146435043, PcscUnavailableError),  # SCARD_E_NO_SERVICE as a signed 32-bit int
    ],
)
def test_result_codes_map_to_the_error_family(result: int, error: type[RfidError]) -> None:
    mapped = pcsc.error_for_result(result, "doing it")
    assert type(mapped) is error
    assert "doing it failed (0x" in str(mapped)


def test_pcscd_down() -> None:
    scard = ScriptedScard()
    scard.context_result = pcsc.SCARD_E_NO_SERVICE
    with pytest.raises(PcscUnavailableError, match="is pcscd running"):
        list_readers(scard=scard)


@pytest.mark.parametrize("how", ["error", "empty"])
def test_no_reader_connected(how: str) -> None:
    scard = ScriptedScard(readers=[])
    if how == "error":
        scard.list_result = pcsc.SCARD_E_NO_READERS_AVAILABLE
    with pytest.raises(NoReaderError, match="no PC/SC reader is connected"):
        PcscReader(scard=scard).read(timeout=1)


def test_reader_unplugged_while_waiting() -> None:
    scard = ScriptedScard()
    scard.events = [
        (0, pcsc.SCARD_STATE_EMPTY),
        (0, pcsc.SCARD_STATE_UNAVAILABLE | pcsc.SCARD_STATE_CHANGED),
    ]
    with pytest.raises(ReaderUnpluggedError):
        PcscReader(scard=scard).read(timeout=5)


def test_reader_unplugged_mid_read() -> None:
    scard = ScriptedScard(tag=tag())
    scard.events = [(0, PRESENT)]
    scard.transmit = lambda apdu: (
        (pcsc.SCARD_E_READER_UNAVAILABLE, [])
        if apdu[:2] == [0x00, 0xB0]
        else (0, list(scard.tag.respond(bytes(apdu))))  # type: ignore[union-attr]
    )
    with pytest.raises(ReaderUnpluggedError):
        PcscReader(scard=scard).read(timeout=5)
    assert scard.disconnected == 1


@pytest.mark.parametrize(
    ("response", "error"),
    [([], TagRemovedError), ([0x90], MalformedResponseError)],
)
def test_empty_or_truncated_response(response: list[int], error: type[RfidError]) -> None:
    scard = ScriptedScard(tag=tag())
    scard.events = [(0, PRESENT)]
    scard.transmit = lambda apdu: (0, response)
    with pytest.raises(error):
        PcscReader(scard=scard).read(timeout=5)


def test_tag_gone_before_connect() -> None:
    scard = ScriptedScard(tag=tag())
    scard.events = [(0, PRESENT)]
    scard.connect_result = pcsc.SCARD_W_REMOVED_CARD
    with pytest.raises(TagRemovedError):
        PcscReader(scard=scard).read(timeout=5)


def test_mute_card_is_not_read() -> None:
    scard = ScriptedScard(tag=tag())
    scard.events = [(0, pcsc.SCARD_STATE_PRESENT | pcsc.SCARD_STATE_MUTE)]
    with pytest.raises(ReadTimeoutError):
        PcscReader(scard=scard).read(timeout=0.3)


def test_watch_reports_unplugged_reader_and_stops() -> None:
    scard = ScriptedScard(tag=tag())
    scard.events = [(0, PRESENT), (0, EMPTY), (pcsc.SCARD_E_READER_UNAVAILABLE, 0)]
    inserted, removed, errors = [], [], []
    done = threading.Event()

    def on_error(error: RfidError) -> None:
        errors.append(error)
        done.set()

    watch = PcscReader(READER, scard=scard).watch(inserted.append, removed.append, on_error)
    assert done.wait(5)
    watch.stop()
    assert [r.uid for r in inserted] == ["04A1B2C3D4E580"]
    assert removed == [READER]
    assert isinstance(errors[0], ReaderUnpluggedError) and watch.error is errors[0]
    assert not watch.running


def test_watch_sees_a_tag_swapped_between_polls() -> None:
    scard = ScriptedScard(tag=tag())
    swapped = pcsc.SCARD_STATE_PRESENT | pcsc.SCARD_STATE_CHANGED | (3 << 16)
    scard.events = [(0, PRESENT), (0, swapped)]
    inserted, removed = [], []
    with PcscReader(scard=scard).watch(inserted.append, removed.append):
        for _ in range(100):
            if len(inserted) == 2:
                break
            threading.Event().wait(0.02)
    assert len(inserted) == 2 and removed == [READER]


def test_watch_stop_is_prompt() -> None:
    scard = ScriptedScard()
    watch = PcscReader(scard=scard).watch(lambda r: None)
    assert watch.running
    watch.stop(timeout=2)
    assert not watch.running and scard.cancelled.is_set()
