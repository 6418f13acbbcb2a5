"""The rfid error family.

Every error the library raises on purpose derives from :class:`RfidError` and carries a stable
``code`` string, so the server can map the family to HTTP once and the handset can show a
meaningful message without parsing text.
"""

from __future__ import annotations


class RfidError(Exception):
    """Base class of every error raised by :mod:`rfid`."""

    code = "rfid_error"


# --- readers -------------------------------------------------------------------------------


class ReaderError(RfidError):
    """The reader (not the tag) could not do its job."""

    code = "reader_error"


class PcscUnavailableError(ReaderError):
    """pyscard, libpcsclite or the pcscd service is missing or not running."""

    code = "pcsc_unavailable"


class NoReaderError(ReaderError):
    """No reader is connected, or the named reader does not exist."""

    code = "no_reader"


class ReaderUnpluggedError(ReaderError):
    """The reader disappeared (unplugged) while it was in use."""

    code = "reader_unplugged"


class ReadTimeoutError(ReaderError):
    """No tag was presented before the timeout."""

    code = "read_timeout"


class NfcUnavailableError(ReaderError):
    """The phone has no NFC adapter, NFC is switched off, or this is not Android."""

    code = "nfc_unavailable"


# --- tags ----------------------------------------------------------------------------------


class TagError(RfidError):
    """The tag answered badly, or went away."""

    code = "tag_error"


class TagRemovedError(TagError):
    """The tag left the field before the read finished."""

    code = "tag_removed"


class ApduStatusError(TagError):
    """A command APDU was answered with a status word other than 90 00."""

    code = "apdu_status"

    def __init__(self, command: str, sw1: int, sw2: int) -> None:
        self.command = command
        self.sw1 = sw1
        self.sw2 = sw2
        super().__init__(f"{command}: status word {sw1:02X} {sw2:02X}")

    @property
    def status_word(self) -> int:
        """The status word as one integer, e.g. ``0x6A82``."""
        return (self.sw1 << 8) | self.sw2


class MalformedResponseError(TagError):
    """A response had the wrong length or content for the command sent."""

    code = "malformed_response"


class NdefError(TagError):
    """The capability container, TLV structure or NDEF message is invalid or unreadable."""

    code = "ndef_invalid"


# --- keyboard wedge ------------------------------------------------------------------------


class WedgeInputError(RfidError):
    """A line typed by a keyboard-wedge reader is not a UID in any supported rendering."""

    code = "wedge_input"


# --- SUN / keys ----------------------------------------------------------------------------


class SunError(RfidError):
    """Base class of Secure Unique NFC (SUN) message errors."""

    code = "sun_error"


class SunFormatError(SunError):
    """The SUN parameters are missing, not hex, or of the wrong length (verdict ``malformed``)."""

    code = "sun_malformed"


class SunAuthenticationError(SunError):
    """PICCData did not decrypt to a valid record or the CMAC is wrong (verdict ``bad_mac``)."""

    code = "sun_bad_mac"


class KeyConfigurationError(RfidError):
    """A key, key version or diversification input is invalid or unknown."""

    code = "key_configuration"
