"""PC/SC readers (ACR122U, ACR1252, ...) through pyscard; the only module importing ``smartcard``.

``smartcard`` is imported on first use, so ``import rfid`` works where pyscard is not installed
(stock Android, the server); using this module there raises :class:`PcscUnavailableError`.

The low-level ``smartcard.scard`` API is used rather than pyscard's object layer because it
returns the PC/SC result codes, which is what tells "tag pulled" from "reader unplugged" from
"pcscd not running".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Self

from rfid.apdu import TagSession
from rfid.errors import (
    NoReaderError,
    PcscUnavailableError,
    ReaderError,
    ReaderUnpluggedError,
    ReadTimeoutError,
    RfidError,
    TagError,
    TagRemovedError,
)
from rfid.model import Clock, TagReading, utc_now

__all__ = ["PcscReader", "TagWatch", "error_for_result", "list_readers"]

# PC/SC result codes (winscard / pcsc-lite), as unsigned 32-bit values.
SCARD_S_SUCCESS = 0x00000000
SCARD_E_CANCELLED = 0x80100002
SCARD_E_INVALID_HANDLE = 0x80100003
SCARD_E_UNKNOWN_READER = 0x80100009
SCARD_E_TIMEOUT = 0x8010000A
SCARD_E_SHARING_VIOLATION = 0x8010000B
SCARD_E_NO_SMARTCARD = 0x8010000C
SCARD_E_PROTO_MISMATCH = 0x8010000F
SCARD_E_NOT_TRANSACTED = 0x80100016
SCARD_E_READER_UNAVAILABLE = 0x80100017
SCARD_E_NO_SERVICE = 0x8010001D
SCARD_E_SERVICE_STOPPED = 0x8010001E
SCARD_E_NO_READERS_AVAILABLE = 0x8010002E
SCARD_E_COMM_DATA_LOST = 0x8010002F
SCARD_W_UNRESPONSIVE_CARD = 0x80100066
SCARD_W_UNPOWERED_CARD = 0x80100067
SCARD_W_RESET_CARD = 0x80100068
SCARD_W_REMOVED_CARD = 0x80100069

SCARD_STATE_UNAWARE = 0x0000
SCARD_STATE_IGNORE = 0x0001
SCARD_STATE_CHANGED = 0x0002
SCARD_STATE_UNKNOWN = 0x0004
SCARD_STATE_UNAVAILABLE = 0x0008
SCARD_STATE_EMPTY = 0x0010
SCARD_STATE_PRESENT = 0x0020
SCARD_STATE_MUTE = 0x0200

SCARD_SCOPE_USER = 0
SCARD_SHARE_SHARED = 2
SCARD_PROTOCOL_T0 = 1
SCARD_PROTOCOL_T1 = 2
SCARD_LEAVE_CARD = 0

_UNAVAILABLE = {SCARD_E_NO_SERVICE, SCARD_E_SERVICE_STOPPED, SCARD_E_INVALID_HANDLE}
_TAG_GONE = {
    SCARD_E_NO_SMARTCARD,
    SCARD_E_NOT_TRANSACTED,
    SCARD_E_COMM_DATA_LOST,
    SCARD_W_UNRESPONSIVE_CARD,
    SCARD_W_UNPOWERED_CARD,
    SCARD_W_RESET_CARD,
    SCARD_W_REMOVED_CARD,
}
_POLL_MS = 250  # GetStatusChange slice, so waits stay interruptible and honour deadlines


def _load_scard() -> Any:
    try:
        from smartcard import scard  # type: ignore[import-untyped]
    except ImportError as exc:  # pyscard or libpcsclite missing
        raise PcscUnavailableError(
            "PC/SC support needs pyscard (pip install 'crewline[readers]') and libpcsclite"
        ) from exc
    return scard


def _code(result: int) -> int:
    """PC/SC result codes arrive signed or unsigned depending on the platform."""
    return result & 0xFFFFFFFF


def error_for_result(result: int, action: str, scard: Any | None = None) -> RfidError:
    """Translate a PC/SC result code into the matching :mod:`rfid.errors` exception."""
    code = _code(result)
    detail = ""
    if scard is not None:
        try:
            detail = f": {scard.SCardGetErrorMessage(result)}"
        except Exception:
            detail = ""
    message = f"{action} failed (0x{code:08X}{detail})"
    if code in _UNAVAILABLE:
        return PcscUnavailableError(f"{message}; is pcscd running?")
    if code in (SCARD_E_NO_READERS_AVAILABLE, SCARD_E_UNKNOWN_READER):
        return NoReaderError(message)
    if code == SCARD_E_READER_UNAVAILABLE:
        return ReaderUnpluggedError(message)
    if code == SCARD_E_TIMEOUT:
        return ReadTimeoutError(message)
    if code in _TAG_GONE:
        return TagRemovedError(message)
    if code == SCARD_E_PROTO_MISMATCH:
        return TagError(message)
    if code == SCARD_E_SHARING_VIOLATION:
        return ReaderError(f"{message}; another application holds the reader")
    return ReaderError(message)


class _Context:
    """One PC/SC context, released on exit."""

    def __init__(self, scard: Any) -> None:
        self.scard = scard
        result, self.handle = scard.SCardEstablishContext(SCARD_SCOPE_USER)
        result = _code(result)
        if result != SCARD_S_SUCCESS:
            raise error_for_result(result, "connecting to pcscd", scard)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        if self.handle is not None:
            self.scard.SCardReleaseContext(self.handle)
            self.handle = None

    def readers(self) -> list[str]:
        result, names = self.scard.SCardListReaders(self.handle, [])
        result = _code(result)
        if result == SCARD_E_NO_READERS_AVAILABLE or (result == SCARD_S_SUCCESS and not names):
            raise NoReaderError("no PC/SC reader is connected")
        if result != SCARD_S_SUCCESS:
            raise error_for_result(result, "listing readers", self.scard)
        return list(names)

    def status_change(self, reader: str, state: int, timeout_ms: int) -> int | None:
        """Wait for a change from ``state``; return the new event state, None on timeout."""
        result, states = self.scard.SCardGetStatusChange(self.handle, timeout_ms, [(reader, state)])
        result = _code(result)
        if result == SCARD_E_TIMEOUT:
            return None
        if result != SCARD_S_SUCCESS:
            raise error_for_result(result, f"watching {reader!r}", self.scard)
        event: int = states[0][1]
        if event & (SCARD_STATE_UNKNOWN | SCARD_STATE_UNAVAILABLE | SCARD_STATE_IGNORE):
            raise ReaderUnpluggedError(f"reader {reader!r} is gone")
        return event


def list_readers(*, scard: Any | None = None) -> list[str]:
    """Return the names of the connected PC/SC readers.

    Raises :class:`PcscUnavailableError` when pcscd is not running and :class:`NoReaderError`
    when it runs without readers.
    """
    with _Context(scard or _load_scard()) as ctx:
        return ctx.readers()


def _tag_present(event: int) -> bool:
    return bool(event & SCARD_STATE_PRESENT) and not event & SCARD_STATE_MUTE


class PcscReader:
    """A :class:`rfid.model.TagReader` on a PC/SC reader.

    ``reader_name`` selects a reader (exact name, or a prefix such as ``"ACS ACR122U"``); None
    takes the first one listed. Every call opens its own PC/SC context, so a reader object
    survives a pcscd restart and may be shared between threads.
    """

    def __init__(
        self,
        reader_name: str | None = None,
        *,
        clock: Clock = utc_now,
        max_chunk: int = 255,
        scard: Any | None = None,
    ) -> None:
        self._wanted = reader_name
        self._clock = clock
        self._max_chunk = max_chunk
        self._scard = scard

    @property
    def name(self) -> str:
        """The reader name asked for (or ``"pcsc"`` for the first reader)."""
        return self._wanted or "pcsc"

    def _lib(self) -> Any:
        if self._scard is None:
            self._scard = _load_scard()
        return self._scard

    def _resolve(self, ctx: _Context) -> str:
        names = ctx.readers()
        if self._wanted is None:
            return names[0]
        for name in names:
            if name == self._wanted:
                return name
        for name in names:
            if name.startswith(self._wanted):
                return name
        raise NoReaderError(f"no PC/SC reader named {self._wanted!r} (have: {', '.join(names)})")

    def readers(self) -> list[str]:
        """The names of all connected readers (see :func:`list_readers`)."""
        return list_readers(scard=self._lib())

    def read(self, timeout: float | None = None) -> TagReading:
        """Wait up to ``timeout`` seconds for a tag on the reader, then read it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with _Context(self._lib()) as ctx:
            reader = self._resolve(ctx)
            state = SCARD_STATE_UNAWARE
            while True:
                remaining_ms = _POLL_MS
                if deadline is not None:
                    remaining_ms = max(0, min(_POLL_MS, int((deadline - time.monotonic()) * 1000)))
                event = ctx.status_change(reader, state, remaining_ms)
                if event is not None:
                    state = event & ~SCARD_STATE_CHANGED
                    if _tag_present(event):
                        return self._read_tag(ctx, reader)
                if deadline is not None and time.monotonic() >= deadline:
                    raise ReadTimeoutError(f"no tag on {reader!r} within {timeout} s")

    def _read_tag(self, ctx: _Context, reader: str) -> TagReading:
        """Connect to the tag now on ``reader`` and read it."""
        scard = ctx.scard
        result, card, protocol = scard.SCardConnect(
            ctx.handle, reader, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1
        )
        if _code(result) != SCARD_S_SUCCESS:
            raise error_for_result(result, f"connecting to the tag on {reader!r}", scard)
        pci = scard.SCARD_PCI_T0 if protocol == SCARD_PROTOCOL_T0 else scard.SCARD_PCI_T1
        in_transaction = _code(scard.SCardBeginTransaction(card)) == SCARD_S_SUCCESS
        try:
            result, _name, _state, _proto, atr = scard.SCardStatus(card)
            if _code(result) != SCARD_S_SUCCESS:
                raise error_for_result(result, "reading the ATR", scard)

            def transmit(apdu: bytes) -> tuple[bytes, int, int]:
                result, response = scard.SCardTransmit(card, pci, list(apdu))
                if _code(result) != SCARD_S_SUCCESS:
                    raise error_for_result(result, f"sending {apdu[:4].hex().upper()}", scard)
                if not response:
                    raise TagRemovedError("the tag did not answer (removed from the field?)")
                if len(response) < 2:
                    return b"", -1, -1  # no status word: TagSession reports it as malformed
                return bytes(response[:-2]), response[-2], response[-1]

            session = TagSession(transmit, max_chunk=self._max_chunk)
            return session.read(atr=bytes(atr), reader=reader, clock=self._clock)
        finally:
            if in_transaction:
                scard.SCardEndTransaction(card, SCARD_LEAVE_CARD)
            scard.SCardDisconnect(card, SCARD_LEAVE_CARD)

    def watch(
        self,
        on_insert: Callable[[TagReading], None],
        on_remove: Callable[[str], None] | None = None,
        on_error: Callable[[RfidError], None] | None = None,
    ) -> TagWatch:
        """Start watching the reader on a background thread; see :class:`TagWatch`."""
        watch = TagWatch(self, on_insert, on_remove, on_error)
        watch.start()
        return watch

    def close(self) -> None:
        """Nothing to release: contexts live only as long as each call."""


class TagWatch:
    """Insert/remove monitoring of one PC/SC reader on a daemon thread.

    ``on_insert`` gets the reading of each tag put on the reader, ``on_remove`` the reader name
    when it leaves, ``on_error`` any :class:`RfidError` (a failed read, the reader unplugged,
    pcscd gone). Reader-level errors end the watch; tag-level errors do not. Callbacks run on the
    watch thread: a GUI must hand results to its own thread.
    """

    def __init__(
        self,
        reader: PcscReader,
        on_insert: Callable[[TagReading], None],
        on_remove: Callable[[str], None] | None,
        on_error: Callable[[RfidError], None] | None,
    ) -> None:
        self._reader = reader
        self._on_insert = on_insert
        self._on_remove = on_remove
        self._on_error = on_error
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._ctx: _Context | None = None
        self._thread = threading.Thread(target=self._run, name="rfid-pcsc-watch", daemon=True)
        self.error: RfidError | None = None

    def start(self) -> None:
        """Start the thread and return once it watches (or has already failed)."""
        self._thread.start()
        self._ready.wait(5)

    @property
    def running(self) -> bool:
        """Whether the watch thread is alive."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching and wait for the thread to end."""
        self._stop.set()
        ctx = self._ctx
        if ctx is not None and ctx.handle is not None:
            ctx.scard.SCardCancel(ctx.handle)  # wakes a blocked GetStatusChange at once
        self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _report(self, error: RfidError) -> None:
        self.error = error
        if self._on_error is not None:
            self._on_error(error)

    def _run(self) -> None:
        try:
            with _Context(self._reader._lib()) as ctx:
                self._ctx = ctx
                reader = self._reader._resolve(ctx)
                self._ready.set()
                self._loop(ctx, reader)
        except ReaderError as exc:
            if not self._stop.is_set():
                self._report(exc)
        finally:
            self._ctx = None
            self._ready.set()

    def _loop(self, ctx: _Context, reader: str) -> None:
        state = SCARD_STATE_UNAWARE
        present, count = False, -1
        while not self._stop.is_set():
            try:
                event = ctx.status_change(reader, state, _POLL_MS)
            except ReaderError:
                if self._stop.is_set():  # SCardCancel from stop()
                    return
                raise
            if event is None:
                continue
            state = event & ~SCARD_STATE_CHANGED
            now_present = _tag_present(event)
            new_count = event >> 16  # pcsc-lite's per-reader event counter
            swapped = present and now_present and count >= 0 and new_count != count
            count = new_count
            if present and (not now_present or swapped):
                present = False
                if self._on_remove is not None:
                    self._on_remove(reader)
            if now_present and not present:
                present = True
                try:
                    reading = self._reader._read_tag(ctx, reader)
                except ReaderError:
                    raise
                except RfidError as exc:
                    self._report(exc)
                else:
                    self._on_insert(reading)
