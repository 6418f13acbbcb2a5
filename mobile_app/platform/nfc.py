"""Tag readers behind one interface for the check-in screen: PC/SC (desktop, rugged tablets),
Android NFC reader mode, a keyboard wedge, or none. All read through the ``rfid`` library; the
callbacks run on the reader's thread (the Kivy layer hands them to the UI thread)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from rfid import RfidError, TagReading

OnReading = Callable[[TagReading], None]
OnError = Callable[[RfidError], None]


class TagScanner(Protocol):
    name: str

    def start(self, on_reading: OnReading, on_error: OnError) -> None: ...

    def stop(self) -> None: ...


class NoScanner:
    def __init__(self, reason: str = "no tag reader configured") -> None:
        self.name = "none"
        self.reason = reason

    def start(self, on_reading: OnReading, on_error: OnError) -> None:
        from rfid import NoReaderError

        on_error(NoReaderError(self.reason))

    def stop(self) -> None: ...


class PcscScanner:
    """Watches a PC/SC reader (``rfid.PcscReader.watch``) while the scan screen is open."""

    def __init__(self, reader_name: str | None = None) -> None:
        from rfid import PcscReader

        self.reader = PcscReader(reader_name or None)
        self.name = reader_name or "PC/SC"
        self._watch: Any = None

    def start(self, on_reading: OnReading, on_error: OnError) -> None:
        self.stop()
        try:
            self._watch = self.reader.watch(on_reading, None, on_error)
        except RfidError as exc:
            on_error(exc)

    def stop(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.stop()


class AndroidScanner:
    """Android NFC reader mode (``rfid.AndroidNfcReader``); the same APDU routine as PC/SC."""

    name = "android-nfc"

    def __init__(self) -> None:
        from rfid import AndroidNfcReader

        self.reader = AndroidNfcReader()

    def start(self, on_reading: OnReading, on_error: OnError) -> None:
        try:
            self.reader.start(on_reading, on_error)
        except RfidError as exc:
            on_error(exc)

    def stop(self) -> None:
        self.reader.stop()


class WedgeScanner:
    """A keyboard-wedge reader: the app feeds keystrokes (``feed``) while the scan screen is open."""

    name = "keyboard-wedge"

    def __init__(self) -> None:
        from rfid import KeyboardWedgeReader

        self.reader = KeyboardWedgeReader()
        self._on: tuple[OnReading, OnError] | None = None

    def start(self, on_reading: OnReading, on_error: OnError) -> None:
        self._on = (on_reading, on_error)

    def stop(self) -> None:
        self._on = None

    def feed(self, text: str) -> None:
        if self._on is None:
            return
        self.reader.feed(text)
        while True:
            try:
                reading = self.reader.read(timeout=0)
            except RfidError as exc:
                if exc.code == "read_timeout":
                    return
                self._on[1](exc)
                continue
            self._on[0](reading)
