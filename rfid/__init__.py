"""Crewline rfid: read site tags and prove presence.

A pure library (no server, web framework, ORM or GUI imports):

* :mod:`rfid.model` - :class:`TagReading`, :class:`TagType`, the :class:`TagReader` protocol;
* :mod:`rfid.apdu` - the APDU routine shared by PC/SC and Android (UID, Type 2 and Type 4 NDEF);
* :mod:`rfid.pcsc` - PC/SC readers on pyscard (imported lazily);
* :mod:`rfid.android` - Android NFC reader mode through pyjnius (imported lazily);
* :mod:`rfid.wedge` - keyboard-wedge readers;
* :mod:`rfid.sun` - NTAG 424 DNA SUN verification and AN10922 key diversification;
* :mod:`rfid.verdict` - the scan verdict rules;
* :mod:`rfid.errors` - the error family.
"""

from rfid.android import AndroidNfcReader
from rfid.apdu import TagSession, Transmit, classify_atr
from rfid.errors import (
    ApduStatusError,
    KeyConfigurationError,
    MalformedResponseError,
    NdefError,
    NfcUnavailableError,
    NoReaderError,
    PcscUnavailableError,
    ReaderError,
    ReaderUnpluggedError,
    ReadTimeoutError,
    RfidError,
    SunAuthenticationError,
    SunError,
    SunFormatError,
    TagError,
    TagRemovedError,
    WedgeInputError,
)
from rfid.model import TagReader, TagReading, TagType, normalize_uid, parse_ndef_message
from rfid.pcsc import PcscReader, TagWatch, list_readers
from rfid.sun import (
    KeyRing,
    SunParams,
    SunVerification,
    counter_advanced,
    diversify_key,
    extract_sun_params,
    verify_sun,
    verify_sun_with_keyring,
)
from rfid.verdict import EnrolledTag, ScanJudgement, Verdict, judge_scan
from rfid.wedge import ByteOrder, KeyboardWedgeReader, NumberBase, parse_wedge_line

__all__ = [
    "AndroidNfcReader",
    "ApduStatusError",
    "ByteOrder",
    "EnrolledTag",
    "KeyConfigurationError",
    "KeyRing",
    "KeyboardWedgeReader",
    "MalformedResponseError",
    "NdefError",
    "NfcUnavailableError",
    "NoReaderError",
    "NumberBase",
    "PcscReader",
    "PcscUnavailableError",
    "ReadTimeoutError",
    "ReaderError",
    "ReaderUnpluggedError",
    "RfidError",
    "ScanJudgement",
    "SunAuthenticationError",
    "SunError",
    "SunFormatError",
    "SunParams",
    "SunVerification",
    "TagError",
    "TagReader",
    "TagReading",
    "TagRemovedError",
    "TagSession",
    "TagType",
    "TagWatch",
    "Transmit",
    "Verdict",
    "WedgeInputError",
    "classify_atr",
    "counter_advanced",
    "diversify_key",
    "extract_sun_params",
    "judge_scan",
    "list_readers",
    "normalize_uid",
    "parse_ndef_message",
    "parse_wedge_line",
    "verify_sun",
    "verify_sun_with_keyring",
]
