"""Keyboard-wedge readers: USB/Bluetooth readers that type a UID and press Enter.

Models differ in how they render the UID: hex with or without separators, a 10-digit decimal of a
4-byte UID, other decimal widths, and most-significant byte first or last. :func:`parse_wedge_line`
turns any of these into canonical UID hex by fixed rules (see its docstring and docs/rfid.md);
a reader whose rendering the rules misread is configured with ``base`` and ``byte_order``.
"""

from __future__ import annotations

import enum
import queue
import re
import threading

from rfid.errors import ReadTimeoutError, WedgeInputError
from rfid.model import Clock, TagReading, TagType, utc_now

__all__ = ["ByteOrder", "KeyboardWedgeReader", "NumberBase", "parse_wedge_line"]

_UID_LENGTHS = (4, 7, 10)
_HEX_DIGIT_WIDTHS = (8, 14, 20)  # 4-, 7- and 10-byte UIDs in hex
_NXP = 0x04  # ISO 14443-3 manufacturer code, first byte of NXP 7-byte UIDs
_SEPARATED = re.compile(r"[:\-\s]")
_HEX_ONLY = re.compile(r"\A[0-9A-Fa-f]+\Z")


class NumberBase(enum.StrEnum):
    """How digits-only input is read."""

    AUTO = "auto"  #: 8, 14 or 20 digits: hex; any other width: decimal
    HEX = "hex"
    DECIMAL = "decimal"


class ByteOrder(enum.StrEnum):
    """Which end of the typed UID is its first byte."""

    AUTO = "auto"  #: as typed, except a 7-byte UID ending (not starting) in 04 is reversed
    AS_TYPED = "as_typed"
    REVERSED = "reversed"


def _decimal_to_bytes(digits: str) -> bytes:
    value = int(digits)
    for length in _UID_LENGTHS:
        if value < 1 << (8 * length):
            return value.to_bytes(length, "big")
    raise WedgeInputError(f"decimal UID {digits} is larger than a 10-byte UID")


def parse_wedge_line(
    line: str,
    *,
    base: NumberBase = NumberBase.AUTO,
    byte_order: ByteOrder = ByteOrder.AUTO,
) -> str:
    """Normalise one typed line to canonical UID hex (upper case, no separators).

    Rules, applied in order:

    1. Surrounding whitespace and control characters are dropped; an empty line is an error.
    2. ``0x`` prefix, or ``:``/``-``/space separators: hex. Separated groups must be 1 or 2 hex
       digits each (``4:A:..`` reads as ``04 0A ..``).
    3. Any letter A-F: hex. An odd number of digits gets one leading 0.
    4. Digits only: with ``base=AUTO``, 8, 14 or 20 digits are hex (a 4-, 7- or 10-byte UID);
       any other width is decimal, converted to the smallest UID size (4, 7, 10 bytes) that holds
       it, so ``0012345678`` is ``00BC614E``. ``base`` forces one reading.
    5. The result must be 4, 7 or 10 bytes.
    6. ``byte_order=REVERSED`` reverses the bytes; ``AUTO`` reverses only a 7-byte UID whose
       last byte is 04 and first byte is not (an NXP UID typed least-significant byte first).
       4-byte UIDs cannot be told apart, so readers that reverse them need ``REVERSED``.
    """
    text = "".join(ch for ch in line if ch.isprintable()).strip()
    if not text:
        raise WedgeInputError("empty line")
    is_hex = base is NumberBase.HEX
    if text[:2].lower() == "0x":
        text, is_hex = text[2:], True
    if _SEPARATED.search(text):
        groups = [g for g in _SEPARATED.split(text) if g]
        if not groups or any(len(g) > 2 or not _HEX_ONLY.match(g) for g in groups):
            raise WedgeInputError(f"not a separated hex UID: {line!r}")
        text, is_hex = "".join(g.zfill(2) for g in groups), True
    if not text.isascii() or not text.isalnum():
        raise WedgeInputError(f"not a UID: {line!r}")
    if not text.isdigit():
        if not _HEX_ONLY.match(text) or base is NumberBase.DECIMAL:
            raise WedgeInputError(f"not a UID: {line!r}")
        is_hex = True
    elif base is NumberBase.AUTO and len(text) in _HEX_DIGIT_WIDTHS:
        is_hex = True

    raw = (
        bytes.fromhex(text.zfill(len(text) + len(text) % 2)) if is_hex else _decimal_to_bytes(text)
    )
    if len(raw) not in _UID_LENGTHS:
        raise WedgeInputError(f"UID must be 4, 7 or 10 bytes, got {len(raw)}: {line!r}")
    if byte_order is ByteOrder.REVERSED or (
        byte_order is ByteOrder.AUTO and len(raw) == 7 and raw[-1] == _NXP and raw[0] != _NXP
    ):
        raw = raw[::-1]
    return raw.hex().upper()


class KeyboardWedgeReader:
    """A :class:`rfid.model.TagReader` fed with the keystrokes of a wedge reader.

    The UI (a focused text field, a terminal) passes what the reader types to :meth:`feed`;
    each completed line becomes a reading, or a :class:`WedgeInputError`, that :meth:`read`
    returns or raises in order.
    """

    def __init__(
        self,
        name: str = "keyboard-wedge",
        *,
        base: NumberBase = NumberBase.AUTO,
        byte_order: ByteOrder = ByteOrder.AUTO,
        clock: Clock = utc_now,
    ) -> None:
        self._name = name
        self._base = base
        self._byte_order = byte_order
        self._clock = clock
        self._pending = ""
        self._lock = threading.Lock()
        self._results: queue.Queue[TagReading | WedgeInputError] = queue.Queue()

    @property
    def name(self) -> str:
        """The name given at construction, recorded in each reading."""
        return self._name

    def reading_for(self, line: str) -> TagReading:
        """Turn one complete line into a reading (UID only: a wedge says nothing else)."""
        uid = parse_wedge_line(line, base=self._base, byte_order=self._byte_order)
        return TagReading.build(
            uid=uid, tag_type=TagType.UNKNOWN, reader=self._name, read_at=self._clock()
        )

    def feed(self, keys: str) -> None:
        """Add typed characters; every Enter (CR or LF) completes a line. Blank lines are ignored."""
        with self._lock:
            text = self._pending + keys
            *lines, self._pending = re.split(r"\r\n|\r|\n", text)
        for line in lines:
            if not line.strip():
                continue
            try:
                self._results.put(self.reading_for(line))
            except WedgeInputError as exc:
                self._results.put(exc)

    def read(self, timeout: float | None = None) -> TagReading:
        """Return the next completed reading; raise the line's error if it was not a UID."""
        try:
            result = self._results.get(timeout=timeout)
        except queue.Empty:
            raise ReadTimeoutError(f"no UID typed within {timeout} s") from None
        if isinstance(result, WedgeInputError):
            raise result
        return result

    def close(self) -> None:
        """Drop any half-typed line."""
        with self._lock:
            self._pending = ""
