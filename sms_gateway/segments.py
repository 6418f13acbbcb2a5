"""Encoding detection and segment counting per GSM 03.38 (3GPP TS 23.038).

* A text made only of GSM-7 characters is sent in GSM-7: 160 septets in a single message, 153 per
  part once concatenated (a user data header takes the rest). Characters of the extension table
  (``^ { } \\ [ ~ ] | €`` and form feed) are an escape plus a character: 2 septets each.
* Any other character switches the whole text to UCS-2: 70 UTF-16 code units in a single message,
  67 per part. Characters outside the Basic Multilingual Plane (most emoji) take 2 code units.
* A part never ends between an escape and its character, inside a surrogate pair, or inside a
  combined character (base + combining marks, emoji ZWJ sequences, flags, keycaps), so the count
  is not always ``ceil(units / 153)`` or ``ceil(units / 67)``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

# The 128 positions of the default alphabet minus 0x1B (the escape to the extension table).
GSM7_BASIC_CHARACTERS = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
GSM7_EXTENSION_CHARACTERS = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE_LIMIT = 160
GSM7_PART_LIMIT = 153
UCS2_SINGLE_LIMIT = 70
UCS2_PART_LIMIT = 67


class SmsEncoding(StrEnum):
    """The two SMS data codings a text can travel in."""

    GSM_7 = "GSM-7"
    UCS_2 = "UCS-2"

    @property
    def single_limit(self) -> int:
        """Units (septets or UTF-16 code units) that fit in an unsplit message."""
        return GSM7_SINGLE_LIMIT if self is SmsEncoding.GSM_7 else UCS2_SINGLE_LIMIT

    @property
    def part_limit(self) -> int:
        """Units that fit in one part of a concatenated message."""
        return GSM7_PART_LIMIT if self is SmsEncoding.GSM_7 else UCS2_PART_LIMIT


@dataclass(frozen=True, slots=True)
class SegmentedMessage:
    """How a text travels: its encoding, its length in units and the parts it is split into.

    ``units`` counts septets for GSM-7 and UTF-16 code units for UCS-2. An empty text has no
    parts (there is nothing to send; providers refuse an empty body).
    """

    encoding: SmsEncoding
    units: int
    parts: tuple[str, ...]

    @property
    def segment_count(self) -> int:
        """Number of SMS the text is billed as."""
        return len(self.parts)


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` is in the GSM-7 basic or extension table."""
    return all(c in GSM7_BASIC_CHARACTERS or c in GSM7_EXTENSION_CHARACTERS for c in text)


def detect_encoding(text: str) -> SmsEncoding:
    """Return the encoding ``text`` must be sent in (GSM-7 when possible, else UCS-2)."""
    return SmsEncoding.GSM_7 if is_gsm7(text) else SmsEncoding.UCS_2


def segment_message(text: str) -> SegmentedMessage:
    """Detect the encoding of ``text``, count its units and split it into parts.

    Concatenating the returned parts gives back ``text``.

    >>> segment_message("hello").segment_count
    1
    >>> segment_message("你好" * 36).segment_count  # 72 UCS-2 units: 67 + 5
    2
    """
    encoding = detect_encoding(text)
    if encoding is SmsEncoding.GSM_7:
        atoms = [(c, 2 if c in GSM7_EXTENSION_CHARACTERS else 1) for c in text]
    else:
        atoms = [(cluster, _utf16_units(cluster)) for cluster in _clusters(text)]
    units = sum(weight for _, weight in atoms)
    if not text:
        return SegmentedMessage(encoding, 0, ())
    if units <= encoding.single_limit:
        return SegmentedMessage(encoding, units, (text,))
    return SegmentedMessage(encoding, units, tuple(_pack(atoms, encoding.part_limit)))


def _pack(atoms: list[tuple[str, int]], limit: int) -> Iterator[str]:
    """Fill parts of ``limit`` units greedily without splitting an atom."""
    current: list[str] = []
    used = 0
    for atom, weight in atoms:
        # A combined character longer than a whole part cannot stay together; fall back to code
        # points, which still never splits a surrogate pair.
        pieces = [(c, _utf16_units(c)) for c in atom] if weight > limit else [(atom, weight)]
        for piece, piece_weight in pieces:
            if used + piece_weight > limit:
                yield "".join(current)
                current, used = [], 0
            current.append(piece)
            used += piece_weight
    if current:
        yield "".join(current)


def _utf16_units(text: str) -> int:
    return sum(2 if ord(c) > 0xFFFF else 1 for c in text)


_ZWJ = "\u200d"


def _is_regional_indicator(c: str) -> bool:
    return "\U0001f1e6" <= c <= "\U0001f1ff"


def _extends_previous(c: str) -> bool:
    """Whether ``c`` attaches to the character before it (never starts a part)."""
    return (
        unicodedata.category(c) in ("Mn", "Mc", "Me")
        or c == _ZWJ
        or "\ufe00" <= c <= "\ufe0f"  # variation selectors
        or "\U000e0100" <= c <= "\U000e01ef"  # variation selectors supplement
        or "\U0001f3fb" <= c <= "\U0001f3ff"  # emoji skin-tone modifiers
        or "\U000e0020" <= c <= "\U000e007f"  # emoji tag sequences (subdivision flags)
    )


def _clusters(text: str) -> Iterator[str]:
    """Split ``text`` into user-perceived characters, close enough for SMS part boundaries.

    A simplification of Unicode grapheme clusters (UAX #29) covering what occurs in messages:
    combining marks, emoji modifiers and ZWJ sequences, flag pairs.
    """
    cluster = ""
    for c in text:
        joins = bool(cluster) and (
            _extends_previous(c)
            or cluster.endswith(_ZWJ)
            or (
                _is_regional_indicator(c)
                and _is_regional_indicator(cluster[-1])
                and _trailing_regional_indicators(cluster) % 2 == 1
            )
        )
        if joins:
            cluster += c
        else:
            if cluster:
                yield cluster
            cluster = c
    if cluster:
        yield cluster


def _trailing_regional_indicators(cluster: str) -> int:
    count = 0
    for c in reversed(cluster):
        if not _is_regional_indicator(c):
            break
        count += 1
    return count
