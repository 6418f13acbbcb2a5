"""Fake Android NFC objects (Tag, IsoDep, NfcA, NfcAdapter) around the emulated tags."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from rfid.android import AndroidNfcBridge
from tests.rfid.emulator import Ntag215Tag, Ntag424Tag


class JavaException(Exception):
    """Stands in for jnius.JavaException, which names the Java class in ``classname``."""

    def __init__(self, classname: str) -> None:
        super().__init__(f"{classname}: simulated")
        self.classname = classname


class FakeTag:
    """android.nfc.Tag: pyjnius hands byte[] over as a list of signed ints."""

    def __init__(
        self, emulated: Ntag424Tag | Ntag215Tag, sak: int = 0x00, iso: bool = True
    ) -> None:
        self.emulated = emulated
        self.sak = sak
        self.iso = iso

    def getId(self) -> list[int]:
        return [b - 256 if b > 127 else b for b in self.emulated.uid]


class FakeTech:
    def __init__(self, tag: FakeTag, transceive: Callable[[bytes], bytes]) -> None:
        self.tag = tag
        self._transceive = transceive
        self.connected = False
        self.closed = False
        self.timeout = None
        self.fail_on: Callable[[bytes], str | None] = lambda data: None

    def setTimeout(self, ms: int) -> None:
        self.timeout = ms

    def connect(self) -> None:
        self.connected = True

    def close(self) -> None:
        self.closed = True
        raise JavaException("java.io.IOException")  # closing after a lost tag can throw

    def transceive(self, data: bytes) -> bytes:
        assert self.connected and isinstance(data, bytes)
        failure = self.fail_on(data)
        if failure:
            raise JavaException(failure)
        return self._transceive(data)

    def getHistoricalBytes(self) -> bytes:
        return b"\x80"

    def getHiLayerResponse(self) -> None:
        return None

    def getSak(self) -> int:
        return self.tag.sak


class FakeIsoDep:
    """``IsoDep.get(tag)``: a technology object, or None when the tag is not ISO-DEP."""

    made: ClassVar[list[FakeTech]] = []

    @classmethod
    def get(cls, tag: FakeTag) -> FakeTech | None:
        if not tag.iso:
            return None
        tech = FakeTech(tag, tag.emulated.respond)
        cls.made.append(tech)
        return tech


class FakeNfcA:
    made: ClassVar[list[FakeTech]] = []

    @classmethod
    def get(cls, tag: FakeTag) -> FakeTech:
        emulated = tag.emulated
        tech = FakeTech(
            tag, emulated.native if isinstance(emulated, Ntag215Tag) else emulated.respond
        )
        cls.made.append(tech)
        return tech


class FakeAdapter:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.callback: Any = None
        self.flags = 0

    def isEnabled(self) -> bool:
        return self.enabled

    def enableReaderMode(self, activity: object, callback: Any, flags: int, extras: object) -> None:
        self.callback, self.flags = callback, flags

    def disableReaderMode(self, activity: object) -> None:
        self.callback = None


class FakeCallback:
    """What jnius_bridge's PythonJavaClass does: Android calls onTagDiscovered(tag)."""

    def __init__(self, handler: Callable[[Any], None]) -> None:
        self.onTagDiscovered = handler


def bridge(adapter: FakeAdapter | None) -> AndroidNfcBridge:
    class NfcAdapter:
        @staticmethod
        def getDefaultAdapter(activity: object) -> FakeAdapter | None:
            return adapter

    return AndroidNfcBridge(
        activity=object(),
        nfc_adapter=NfcAdapter,
        iso_dep=FakeIsoDep,
        nfc_a=FakeNfcA,
        make_callback=FakeCallback,
        run_on_ui_thread=lambda fn: fn(),
    )
