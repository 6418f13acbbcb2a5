"""Android NFC through pyjnius: reader mode, IsoDep/NfcA transceive, the shared APDU routine.

Android gives no PC/SC reader, so this module adapts the tag technologies to the same
``transmit(apdu)`` contract :class:`rfid.apdu.TagSession` uses on PC/SC:

* IsoDep (Type 4, NTAG 424 DNA): APDUs go to ``IsoDep.transceive`` unchanged;
* NfcA without ISO-DEP (Type 2, NTAG21x): the PC/SC pseudo-APDU ``FF B0 00 pp 10`` becomes the
  native READ command ``30 pp`` (16 bytes back);
* ``FF CA 00 00 00`` (UID) is answered from ``Tag.getId()``, as a PC/SC reader would.

An ATR is synthesised the way PC/SC part 3 readers build it (ISO 14443-4: from the historical
bytes; Type 2 / MIFARE Classic: the storage-card ATR), so tag-type detection is shared too.

``jnius`` and python-for-android's ``android`` module are imported only when the default bridge
is built, so the module imports (and is tested) off Android with a fake bridge.
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from rfid.apdu import TagSession, Transmit
from rfid.errors import NfcUnavailableError, ReadTimeoutError, RfidError, TagError, TagRemovedError
from rfid.model import Clock, TagReading, TagType, utc_now

__all__ = [
    "AndroidNfcBridge",
    "AndroidNfcReader",
    "iso14443_4_atr",
    "jnius_bridge",
    "read_android_tag",
    "storage_card_atr",
]

# android.nfc.NfcAdapter reader-mode flags
FLAG_READER_NFC_A = 0x01
FLAG_READER_NFC_B = 0x02
FLAG_READER_SKIP_NDEF_CHECK = 0x80  # Android's own NDEF check would bump the SUN counter
FLAG_READER_NO_PLATFORM_SOUNDS = 0x100
DEFAULT_FLAGS = FLAG_READER_NFC_A | FLAG_READER_NFC_B | FLAG_READER_SKIP_NDEF_CHECK

_GET_UID = bytes.fromhex("FFCA000000")
_SW_OK = (0x90, 0x00)
_SW_FAILED = (0x63, 0x00)  # what ACR122-class readers answer when a tag command fails
_SW_INS_NOT_SUPPORTED = (0x6D, 0x00)
_CLASSIC_SAK_NAMES = {0x08: 0x0001, 0x18: 0x0002, 0x09: 0x0026}


def _tck(body: bytes) -> int:
    check = 0
    for byte in body:
        check ^= byte
    return check


def iso14443_4_atr(historical_bytes: bytes) -> bytes:
    """The ATR a PC/SC reader reports for an ISO 14443-4 card: ``3B 8n 80 01 <hist> TCK``."""
    hist = bytes(historical_bytes)[:15]
    body = bytes([0x8 << 4 | len(hist), 0x80, 0x01]) + hist
    return b"\x3b" + body + bytes([_tck(body)])


def storage_card_atr(card_name: int, standard: int = 0x03) -> bytes:
    """The PC/SC part 3 storage-card ATR for ``card_name`` (0x0003: Ultralight/NTAG21x)."""
    body = (
        bytes.fromhex("8F8001804F0CA0000003")
        + bytes([0x06, standard])
        + card_name.to_bytes(2, "big")
        + bytes(4)
    )
    return b"\x3b" + body + bytes([_tck(body)])


def _to_bytes(value: Any) -> bytes:
    """Java byte[] arrives from pyjnius as bytes, bytearray or a list of signed ints."""
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return bytes(int(b) & 0xFF for b in value)


def _java_error(exc: BaseException, action: str) -> RfidError:
    name = str(getattr(exc, "classname", "") or type(exc).__name__)
    if "TagLostException" in name or "IOException" in name:
        return TagRemovedError(f"{action}: tag left the field ({name})")
    return TagError(f"{action}: {name}: {exc}")


class _Technology:
    """Connect/transceive/close on an android.nfc.tech object, with errors translated."""

    def __init__(self, tech: Any, timeout_ms: int) -> None:
        self._tech = tech
        try:
            tech.setTimeout(timeout_ms)
            tech.connect()
        except Exception as exc:
            raise _java_error(exc, "connect") from exc

    def transceive(self, data: bytes) -> bytes:
        try:
            return _to_bytes(self._tech.transceive(data))
        except Exception as exc:
            raise _java_error(exc, f"transceive {data[:4].hex().upper()}") from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._tech.close()


def _iso_dep_transmit(tech: _Technology, uid: bytes) -> Transmit:
    def transmit(apdu: bytes) -> tuple[bytes, int, int]:
        if apdu == _GET_UID:
            return uid, *_SW_OK
        response = tech.transceive(apdu)
        if len(response) < 2:
            return response, -1, -1  # reported as malformed by TagSession
        return response[:-2], response[-2], response[-1]

    return transmit


def _nfc_a_transmit(tech: _Technology, uid: bytes) -> Transmit:
    def transmit(apdu: bytes) -> tuple[bytes, int, int]:
        if apdu == _GET_UID:
            return uid, *_SW_OK
        if len(apdu) == 5 and apdu[:3] == b"\xff\xb0\x00" and 1 <= apdu[4] <= 16:
            response = tech.transceive(bytes([0x30, apdu[3]]))
            if len(response) != 16:  # a 4-bit NAK, or nothing usable
                return b"", *_SW_FAILED
            return response[: apdu[4]], *_SW_OK
        return b"", *_SW_INS_NOT_SUPPORTED

    return transmit


def read_android_tag(
    tag: Any,
    *,
    iso_dep: Any,
    nfc_a: Any,
    reader: str = "android-nfc",
    clock: Clock = utc_now,
    timeout_ms: int = 2000,
) -> TagReading:
    """Read an ``android.nfc.Tag`` with the shared routine.

    ``iso_dep`` and ``nfc_a`` are the ``IsoDep``/``NfcA`` classes (or fakes): anything whose
    ``get(tag)`` returns a technology object or None, as on Android.
    """
    uid = _to_bytes(tag.getId())
    iso = iso_dep.get(tag)
    if iso is not None:
        historical = _to_bytes(iso.getHistoricalBytes()) or _to_bytes(iso.getHiLayerResponse())
        atr = iso14443_4_atr(historical)
        tech = _Technology(iso, timeout_ms)
        make_transmit = _iso_dep_transmit
        tag_type = TagType.TYPE4
    else:
        a = nfc_a.get(tag)
        if a is None:
            return TagReading.build(
                uid=uid, tag_type=TagType.UNKNOWN, reader=reader, read_at=clock()
            )
        sak = int(a.getSak())
        if sak == 0x00:
            atr, tag_type = storage_card_atr(0x0003), TagType.TYPE2
        elif sak in _CLASSIC_SAK_NAMES:
            atr, tag_type = storage_card_atr(_CLASSIC_SAK_NAMES[sak]), TagType.MIFARE_CLASSIC
        else:
            atr, tag_type = b"", TagType.UNKNOWN
        if tag_type is not TagType.TYPE2:
            return TagReading.build(
                uid=uid, tag_type=tag_type, reader=reader, read_at=clock(), atr=atr
            )
        tech = _Technology(a, timeout_ms)
        make_transmit = _nfc_a_transmit
    try:
        session = TagSession(make_transmit(tech, uid))
        return session.read(atr=atr, reader=reader, clock=clock, tag_type=tag_type)
    finally:
        tech.close()


@dataclass(frozen=True)
class AndroidNfcBridge:
    """The Android classes the reader needs; :func:`jnius_bridge` builds the real one."""

    activity: Any
    nfc_adapter: Any  # android.nfc.NfcAdapter
    iso_dep: Any  # android.nfc.tech.IsoDep
    nfc_a: Any  # android.nfc.tech.NfcA
    make_callback: Callable[[Callable[[Any], None]], Any]  # -> NfcAdapter.ReaderCallback
    run_on_ui_thread: Callable[[Callable[[], None]], None]
    make_extras: Callable[[], Any] = lambda: None  # -> android.os.Bundle


def jnius_bridge() -> AndroidNfcBridge:
    """Build the bridge from pyjnius and python-for-android; raises off Android."""
    try:
        import jnius  # type: ignore[import-not-found]
        from android.runnable import (  # type: ignore[import-not-found]  # python-for-android
            run_on_ui_thread,
        )
    except ImportError as exc:
        raise NfcUnavailableError("Android NFC needs pyjnius on an Android device") from exc

    class ReaderCallback(jnius.PythonJavaClass):  # type: ignore[misc]
        __javainterfaces__: ClassVar[list[str]] = ["android/nfc/NfcAdapter$ReaderCallback"]
        __javacontext__ = "app"

        def __init__(self, handler: Callable[[Any], None]) -> None:
            super().__init__()
            self._handler = handler

        @jnius.java_method("(Landroid/nfc/Tag;)V")  # type: ignore[untyped-decorator]
        def onTagDiscovered(self, tag: Any) -> None:
            self._handler(tag)

    bundle = jnius.autoclass("android.os.Bundle")
    adapter = jnius.autoclass("android.nfc.NfcAdapter")

    def make_extras() -> Any:
        extras = bundle()
        extras.putInt(adapter.EXTRA_READER_PRESENCE_CHECK_DELAY, 250)
        return extras

    return AndroidNfcBridge(
        activity=jnius.autoclass("org.kivy.android.PythonActivity").mActivity,
        nfc_adapter=adapter,
        iso_dep=jnius.autoclass("android.nfc.tech.IsoDep"),
        nfc_a=jnius.autoclass("android.nfc.tech.NfcA"),
        make_callback=ReaderCallback,
        run_on_ui_thread=lambda fn: run_on_ui_thread(fn)(),
        make_extras=make_extras,
    )


class AndroidNfcReader:
    """A :class:`rfid.model.TagReader` on the phone's NFC controller, in reader mode.

    :meth:`start` enables reader mode; each tag is read on the binder thread Android calls back
    on and delivered to ``on_reading`` (or ``on_error``) and to the queue :meth:`read` takes
    from. Call :meth:`stop` from the activity's ``on_pause``: Android requires reader mode to be
    enabled only while the activity is in the foreground.
    """

    def __init__(
        self,
        bridge: AndroidNfcBridge | None = None,
        *,
        clock: Clock = utc_now,
        flags: int = DEFAULT_FLAGS,
        timeout_ms: int = 2000,
    ) -> None:
        self._bridge = bridge
        self._clock = clock
        self._flags = flags
        self._timeout_ms = timeout_ms
        self._callback: Any = None  # kept referenced: Java holds only a weak proxy
        self._adapter: Any = None
        self._on_reading: Callable[[TagReading], None] | None = None
        self._on_error: Callable[[RfidError], None] | None = None
        self._results: queue.Queue[TagReading | RfidError] = queue.Queue()

    @property
    def name(self) -> str:
        """Always ``"android-nfc"``."""
        return "android-nfc"

    def _get_bridge(self) -> AndroidNfcBridge:
        if self._bridge is None:
            self._bridge = jnius_bridge()
        return self._bridge

    def start(
        self,
        on_reading: Callable[[TagReading], None] | None = None,
        on_error: Callable[[RfidError], None] | None = None,
    ) -> None:
        """Enable reader mode; raises :class:`NfcUnavailableError` without (enabled) NFC."""
        bridge = self._get_bridge()
        adapter = bridge.nfc_adapter.getDefaultAdapter(bridge.activity)
        if adapter is None:
            raise NfcUnavailableError("this device has no NFC adapter")
        if not adapter.isEnabled():
            raise NfcUnavailableError("NFC is switched off in the phone's settings")
        self._on_reading, self._on_error = on_reading, on_error
        self._adapter = adapter
        self._callback = bridge.make_callback(self.handle_tag)
        callback, flags, extras = self._callback, self._flags, bridge.make_extras()
        bridge.run_on_ui_thread(
            lambda: adapter.enableReaderMode(bridge.activity, callback, flags, extras)
        )

    def stop(self) -> None:
        """Disable reader mode (safe to call when not started)."""
        if self._adapter is None:
            return
        bridge, adapter = self._get_bridge(), self._adapter
        bridge.run_on_ui_thread(lambda: adapter.disableReaderMode(bridge.activity))
        self._adapter = self._callback = None

    def handle_tag(self, tag: Any) -> None:
        """Read a discovered tag and deliver the result (the ReaderCallback entry point)."""
        bridge = self._get_bridge()
        result: TagReading | RfidError
        try:
            result = read_android_tag(
                tag,
                iso_dep=bridge.iso_dep,
                nfc_a=bridge.nfc_a,
                reader=self.name,
                clock=self._clock,
                timeout_ms=self._timeout_ms,
            )
        except RfidError as exc:
            result = exc
        self._results.put(result)
        if isinstance(result, RfidError):
            if self._on_error is not None:
                self._on_error(result)
        elif self._on_reading is not None:
            self._on_reading(result)

    def read(self, timeout: float | None = None) -> TagReading:
        """Return the next tag read (starting reader mode if needed); re-raises read errors."""
        if self._adapter is None:
            self.start()
        try:
            result = self._results.get(timeout=timeout)
        except queue.Empty:
            raise ReadTimeoutError(f"no tag within {timeout} s") from None
        if isinstance(result, RfidError):
            raise result
        return result

    def close(self) -> None:
        """Stop reader mode."""
        self.stop()
