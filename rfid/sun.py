"""Secure Unique NFC (SUN) verification for NTAG 424 DNA, and per-tag key diversification.

An NTAG 424 DNA configured for Secure Dynamic Messaging renders every read of its NDEF file as a
URL carrying encrypted PICCData (tag byte, UID, read counter) and a truncated AES-CMAC, optionally
with encrypted file data. This module parses such URLs, decrypts and checks them exactly as NXP
application note AN12196 describes (AES mode; LRP mode is not supported), and derives per-tag
keys from versioned master keys with the AES-128 method of NXP AN10922, so the server never stores
raw per-tag keys.

All comparisons of secret-dependent values are constant time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache, partial

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from rfid.errors import KeyConfigurationError, SunAuthenticationError, SunFormatError

__all__ = [
    "PICC_DATA_TAG",
    "KeyRing",
    "SunParams",
    "SunVerification",
    "aes_cmac",
    "compute_sdm_mac",
    "counter_advanced",
    "decrypt_file_data",
    "decrypt_picc_data",
    "diversify_key",
    "extract_sun_params",
    "session_enc_key",
    "session_mac_key",
    "verify_sun",
    "verify_sun_with_keyring",
]

#: PICCDataTag for "UID mirrored, read counter mirrored, UID length 7" (AN12196 section 3.4.4).
PICC_DATA_TAG = 0xC7
_SV1_PREFIX = bytes.fromhex("C33C00010080")  # session ENC key derivation (SesSDMFileReadENC)
_SV2_PREFIX = bytes.fromhex("3CC300010080")  # session MAC key derivation (SesSDMFileReadMAC)
_ZERO_BLOCK = bytes(16)
_UID_LENGTH = 7
_CMAC_LENGTH = 8
_PICC_DATA_LENGTH = 16  # AES mode; LRP mode PICCData is 24 bytes and is rejected

#: ISO DF name of the NTAG 424 DNA NDEF application, used as the AN10922 application identifier.
NTAG424_APPLICATION_ID = bytes.fromhex("D2760000850101")
_MAX_SYSTEM_IDENTIFIER = 31 - _UID_LENGTH - len(NTAG424_APPLICATION_ID) - 1


# --- AES primitives ------------------------------------------------------------------------


def _check_key(key: bytes, what: str = "key") -> None:
    if not isinstance(key, (bytes, bytearray)) or len(key) != 16:
        raise KeyConfigurationError(f"{what} must be 16 bytes (AES-128)")


def aes_cmac(key: bytes, message: bytes) -> bytes:
    """Return the full 16-byte AES-128 CMAC (NIST SP 800-38B) of ``message`` under ``key``."""
    _check_key(key)
    mac = CMAC(algorithms.AES(key))
    mac.update(message)
    return mac.finalize()


def _aes_ecb_encrypt(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def _aes_cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def _aes_cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def _double(block: bytes) -> bytes:
    """Multiply by x in GF(2^128): the CMAC subkey step."""
    value = int.from_bytes(block, "big") << 1
    if block[0] & 0x80:
        value ^= 0x87
    return (value & ((1 << 128) - 1)).to_bytes(16, "big")


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


# --- AN10922 key diversification -----------------------------------------------------------


def diversify_key(master_key: bytes, diversification_input: bytes) -> bytes:
    """Derive a 16-byte key from ``master_key`` per NXP AN10922 section 2.2 (AES-128).

    ``diversification_input`` (M, 1 to 31 bytes) is typically UID || application id || system
    identifier. The CMAC input is the constant 0x01 followed by M, always processed as two blocks:
    padded with 80 00.. and masked with subkey K2 when shorter than 32 bytes, masked with K1
    otherwise. (This differs from plain CMAC for inputs of 15 bytes or fewer.)
    """
    _check_key(master_key, "master key")
    if not 1 <= len(diversification_input) <= 31:
        raise KeyConfigurationError("AN10922 diversification input must be 1 to 31 bytes")
    k0 = _aes_ecb_encrypt(master_key, _ZERO_BLOCK)
    k1 = _double(k0)
    k2 = _double(k1)
    data = b"\x01" + bytes(diversification_input)
    if len(data) < 32:
        data = (data + b"\x80").ljust(32, b"\x00")
        last = _xor(data[16:], k2)
    else:
        last = _xor(data[16:], k1)
    return _aes_cbc_encrypt(master_key, _ZERO_BLOCK, data[:16] + last)[16:]


_diversify_cached = lru_cache(maxsize=65536)(diversify_key)


class KeyRing:
    """Versioned master keys and the per-tag keys diversified from them.

    Each version maps to a 16-byte master key. Per-tag keys are never stored: they are derived on
    demand with :func:`diversify_key` from

    * tag keys (slots 0-4): ``M = UID(7) || application id || key number || system identifier``;
    * the SDM meta-read key: ``M = application id || key number || system identifier`` (no UID,
      since the UID is what it decrypts; every tag of one version shares it).

    Rotation: add a new version, make it current, re-key tags (ChangeKey) as crews visit them and
    record each tag's new version; drop the old version once no enrolled tag uses it.
    """

    def __init__(
        self,
        masters: Mapping[int, bytes],
        *,
        current_version: int | None = None,
        system_identifier: bytes = b"crewline",
        application_id: bytes = NTAG424_APPLICATION_ID,
        meta_read_key_no: int = 1,
        file_read_key_no: int = 2,
    ) -> None:
        if not masters:
            raise KeyConfigurationError("a key ring needs at least one master key")
        for version, key in masters.items():
            if not isinstance(version, int) or version < 0:
                raise KeyConfigurationError(f"key version must be a non-negative int: {version!r}")
            _check_key(key, f"master key version {version}")
        if not 1 <= len(system_identifier) <= _MAX_SYSTEM_IDENTIFIER:
            raise KeyConfigurationError(
                f"system identifier must be 1 to {_MAX_SYSTEM_IDENTIFIER} bytes"
            )
        if len(application_id) != len(NTAG424_APPLICATION_ID):
            raise KeyConfigurationError("application id must be 7 bytes (an ISO DF name)")
        for key_no in (meta_read_key_no, file_read_key_no):
            if not 0 <= key_no <= 4:
                raise KeyConfigurationError("NTAG 424 DNA key numbers are 0 to 4")
        self._masters = {version: bytes(key) for version, key in masters.items()}
        self.current_version = max(masters) if current_version is None else current_version
        if self.current_version not in self._masters:
            raise KeyConfigurationError(f"current version {self.current_version} has no key")
        self.system_identifier = bytes(system_identifier)
        self.application_id = bytes(application_id)
        self.meta_read_key_no = meta_read_key_no
        self.file_read_key_no = file_read_key_no

    @classmethod
    def from_hex(cls, masters: Mapping[int, str], **options: object) -> KeyRing:
        """Build a key ring from hex-encoded master keys (as kept in settings)."""
        try:
            decoded = {version: bytes.fromhex(key) for version, key in masters.items()}
        except ValueError as exc:
            raise KeyConfigurationError("master keys must be hex") from exc
        return cls(decoded, **options)  # type: ignore[arg-type]

    @property
    def versions(self) -> tuple[int, ...]:
        """Known versions, the current one first, then newest to oldest."""
        others = sorted((v for v in self._masters if v != self.current_version), reverse=True)
        return (self.current_version, *others)

    def _master(self, version: int) -> bytes:
        try:
            return self._masters[version]
        except KeyError:
            raise KeyConfigurationError(f"unknown key version {version}") from None

    def tag_key(self, uid: bytes, key_no: int, version: int) -> bytes:
        """Return the diversified key for key slot ``key_no`` of the tag with ``uid``."""
        if len(uid) != _UID_LENGTH:
            raise KeyConfigurationError("NTAG 424 DNA UIDs are 7 bytes")
        if not 0 <= key_no <= 4:
            raise KeyConfigurationError("NTAG 424 DNA key numbers are 0 to 4")
        m = bytes(uid) + self.application_id + bytes([key_no]) + self.system_identifier
        return _diversify_cached(self._master(version), m)

    def meta_read_key(self, version: int) -> bytes:
        """Return the SDM meta-read key (decrypts PICCData) of ``version``."""
        m = self.application_id + bytes([self.meta_read_key_no]) + self.system_identifier
        return _diversify_cached(self._master(version), m)

    def file_read_key(self, uid: bytes, version: int) -> bytes:
        """Return the SDM file-read key (CMAC and file data) of the tag ``uid``."""
        return self.tag_key(uid, self.file_read_key_no, version)

    def personalisation_keys(self, uid: bytes, version: int | None = None) -> dict[int, bytes]:
        """Return the five keys (slot -> key) to write to a tag when enrolling or re-keying it."""
        version = self.current_version if version is None else version
        keys = {slot: self.tag_key(uid, slot, version) for slot in range(5)}
        keys[self.meta_read_key_no] = self.meta_read_key(version)
        return keys


# --- SUN message parsing -------------------------------------------------------------------

_HEX = re.compile(r"\A[0-9A-Fa-f]*\Z")
_PICC_NAMES = ("picc_data", "e")
_MAC_NAMES = ("cmac", "c")


@dataclass(frozen=True, slots=True)
class SunParams:
    """The SUN parameters found in a tag's URL.

    ``picc_data`` is set for encrypted PICCData; ``uid``/``counter`` are set instead when the tag
    mirrors them in clear. ``mac_input`` is what the tag MACed: by the layout this library
    assumes (SDMMACInputOffset at the encrypted file data), the URL text from the start of the
    ``enc`` value up to the start of the CMAC value, or nothing when there is no ``enc``.
    """

    url: str
    cmac: bytes
    picc_data: bytes | None = None
    enc_file_data: bytes | None = None
    uid: bytes | None = None
    counter: int | None = None
    mac_input: bytes = field(default=b"", repr=False)


def _query_fields(url: str) -> dict[str, tuple[str, int]]:
    """Map lower-cased query names to (raw value, offset of the value in ``url``)."""
    fields: dict[str, tuple[str, int]] = {}
    start = url.find("?")
    if start < 0:
        return fields
    end = url.find("#", start)
    end = len(url) if end < 0 else end
    offset = start + 1
    for part in url[start + 1 : end].split("&"):
        name, sep, value = part.partition("=")
        if sep:
            # The first occurrence wins, so a parameter appended by a proxy cannot shadow the tag's.
            fields.setdefault(name.lower(), (value, offset + len(name) + 1))
        offset += len(part) + 1
    return fields


def _hex_field(name: str, value: str, lengths: Iterable[int] | None = None) -> bytes:
    if not _HEX.match(value) or len(value) % 2:
        raise SunFormatError(f"SUN parameter {name!r} is not hex")
    data = bytes.fromhex(value)
    if lengths is not None and len(data) not in tuple(lengths):
        raise SunFormatError(f"SUN parameter {name!r} has the wrong length ({len(data)} bytes)")
    return data


def extract_sun_params(url: str) -> SunParams | None:
    """Find SUN parameters in ``url``; None when the URL carries none.

    Recognised layouts: ``picc_data=<32 hex>&cmac=<16 hex>`` (or the short ``e=``/``c=`` pair),
    optionally with ``enc=<hex>`` encrypted file data, and the plain mirror
    ``uid=<14 hex>&ctr=<6 hex>&cmac=<16 hex>``. Raises :class:`SunFormatError` when a layout is
    recognised but its values are malformed (including 24-byte LRP-mode PICCData).
    """
    fields = _query_fields(url)
    plain = "uid" in fields and "ctr" in fields
    # One-letter names only count next to their partner, so an unrelated "?c=..." is not SUN.
    picc_name = "picc_data" if "picc_data" in fields else None
    if picc_name is None and "e" in fields and ("c" in fields or "cmac" in fields):
        picc_name = "e"
    mac_name = "cmac" if "cmac" in fields else None
    if mac_name is None and "c" in fields and (picc_name is not None or plain):
        mac_name = "c"
    if picc_name is None and mac_name is None:
        return None
    if mac_name is None:
        raise SunFormatError("SUN message has PICCData but no CMAC")
    if picc_name is None and not plain:
        raise SunFormatError("SUN message has a CMAC but neither PICCData nor uid/ctr")

    mac_value, mac_offset = fields[mac_name]
    cmac = _hex_field(mac_name, mac_value, (_CMAC_LENGTH,))
    enc_file_data = None
    mac_input = b""
    if "enc" in fields:
        enc_value, enc_offset = fields["enc"]
        enc_file_data = _hex_field("enc", enc_value)
        if not enc_file_data or len(enc_file_data) % 16:
            raise SunFormatError("SUN parameter 'enc' must be a non-empty multiple of 16 bytes")
        if enc_offset > mac_offset:
            raise SunFormatError("SUN parameter 'enc' must come before the CMAC")
        try:
            mac_input = url[enc_offset:mac_offset].encode("ascii")
        except UnicodeEncodeError:
            raise SunFormatError("SUN MAC input is not ASCII") from None

    if picc_name is not None:
        picc_value, _ = fields[picc_name]
        if len(picc_value) == 48:
            raise SunFormatError("LRP-mode PICCData is not supported (AES mode only)")
        picc_data = _hex_field(picc_name, picc_value, (_PICC_DATA_LENGTH,))
        return SunParams(url, cmac, picc_data, enc_file_data, mac_input=mac_input)

    uid = _hex_field("uid", fields["uid"][0], (_UID_LENGTH,))
    counter = int.from_bytes(_hex_field("ctr", fields["ctr"][0], (3,)), "big")
    if enc_file_data is not None:
        raise SunFormatError("encrypted file data needs encrypted PICCData")
    return SunParams(url, cmac, uid=uid, counter=counter, mac_input=mac_input)


# --- SUN cryptography (AN12196, AES mode) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class SunVerification:
    """A SUN message that passed: who the tag is, its read counter, decrypted file data."""

    uid: bytes
    counter: int
    file_data: bytes | None = None
    key_version: int | None = None

    @property
    def uid_hex(self) -> str:
        """The UID as canonical upper-case hex."""
        return self.uid.hex().upper()


def decrypt_picc_data(meta_read_key: bytes, picc_data: bytes) -> tuple[bytes, int]:
    """Decrypt encrypted PICCData (AES-128-CBC, zero IV) and return ``(uid, read_counter)``.

    Raises :class:`SunAuthenticationError` when the tag byte is not 0xC7 (a wrong key or a
    forged message decrypts to noise) and :class:`SunFormatError` for a wrong length.
    """
    _check_key(meta_read_key, "meta-read key")
    if len(picc_data) != _PICC_DATA_LENGTH:
        raise SunFormatError("encrypted PICCData must be 16 bytes")
    plain = _aes_cbc_decrypt(meta_read_key, _ZERO_BLOCK, picc_data)
    if plain[0] != PICC_DATA_TAG:
        raise SunAuthenticationError("PICCData did not decrypt to a valid record")
    uid = plain[1 : 1 + _UID_LENGTH]
    counter = int.from_bytes(plain[1 + _UID_LENGTH : 4 + _UID_LENGTH], "little")
    return uid, counter


def _session_vector(prefix: bytes, uid: bytes, counter: int) -> bytes:
    vector = prefix + uid + counter.to_bytes(3, "little")
    # AN12196: SV is zero-padded to a whole block (a no-op for a 7-byte UID and a counter).
    return vector + bytes(-len(vector) % 16)


def session_mac_key(file_read_key: bytes, uid: bytes, counter: int) -> bytes:
    """K_SesSDMFileReadMAC = CMAC(K_SDMFileRead, 3CC300010080 || UID || SDMReadCtr (LE))."""
    return aes_cmac(file_read_key, _session_vector(_SV2_PREFIX, uid, counter))


def session_enc_key(file_read_key: bytes, uid: bytes, counter: int) -> bytes:
    """K_SesSDMFileReadENC = CMAC(K_SDMFileRead, C33C00010080 || UID || SDMReadCtr (LE))."""
    return aes_cmac(file_read_key, _session_vector(_SV1_PREFIX, uid, counter))


def compute_sdm_mac(file_read_key: bytes, uid: bytes, counter: int, mac_input: bytes) -> bytes:
    """Return the 8-byte SDMMAC: the odd-indexed bytes of CMAC(session MAC key, mac_input)."""
    full = aes_cmac(session_mac_key(file_read_key, uid, counter), mac_input)
    return full[1::2]


def decrypt_file_data(
    file_read_key: bytes, uid: bytes, counter: int, enc_file_data: bytes
) -> bytes:
    """Decrypt SDMENCFileData: AES-CBC under the session ENC key, IV = E(key, ctr || 0^13)."""
    if not enc_file_data or len(enc_file_data) % 16:
        raise SunFormatError("encrypted file data must be a non-empty multiple of 16 bytes")
    key = session_enc_key(file_read_key, uid, counter)
    iv = _aes_ecb_encrypt(key, counter.to_bytes(3, "little") + bytes(13))
    return _aes_cbc_decrypt(key, iv, enc_file_data)


def verify_sun(
    params: SunParams,
    *,
    meta_read_key: bytes | None,
    file_read_key: bytes | Callable[[bytes], bytes],
    mac_input: bytes | None = None,
) -> SunVerification:
    """Verify a SUN message and return the tag's UID, counter and file data.

    ``file_read_key`` is a key or a function of the UID (for diversified keys). ``mac_input``
    overrides the MAC input derived from the URL for tags with another SDMMACInputOffset.
    Raises :class:`SunAuthenticationError` (bad MAC / PICCData) or :class:`SunFormatError`.
    """
    if params.picc_data is not None:
        if meta_read_key is None:
            raise KeyConfigurationError("encrypted PICCData needs the meta-read key")
        uid, counter = decrypt_picc_data(meta_read_key, params.picc_data)
    elif params.uid is not None and params.counter is not None:
        uid, counter = params.uid, params.counter
    else:
        raise SunFormatError("SUN message has neither PICCData nor uid/ctr")
    key = file_read_key(uid) if callable(file_read_key) else file_read_key
    expected = compute_sdm_mac(
        key, uid, counter, params.mac_input if mac_input is None else mac_input
    )
    if not hmac.compare_digest(expected, params.cmac):
        raise SunAuthenticationError("SDMMAC does not match")
    file_data = None
    if params.enc_file_data is not None:
        file_data = decrypt_file_data(key, uid, counter, params.enc_file_data)
    return SunVerification(uid, counter, file_data)


def verify_sun_with_keyring(
    params: SunParams,
    keyring: KeyRing,
    *,
    key_version: int | None = None,
    mac_input: bytes | None = None,
) -> SunVerification:
    """Verify with keys diversified from ``keyring``.

    With ``key_version`` only that version is tried; otherwise every known version is tried,
    current first (the UID, and so the tag's recorded version, is only known after decryption).
    The result records the version that verified; the caller must still check that it is the
    version enrolled for that UID.
    """
    versions = keyring.versions if key_version is None else (key_version,)
    for version in versions:
        try:
            result = verify_sun(
                params,
                meta_read_key=keyring.meta_read_key(version),
                file_read_key=partial(keyring.file_read_key, version=version),
                mac_input=mac_input,
            )
        except SunAuthenticationError:
            continue
        return SunVerification(result.uid, result.counter, result.file_data, version)
    raise SunAuthenticationError("no key version verifies this SUN message")


def counter_advanced(counter: int, last_accepted: int | None) -> bool:
    """True when ``counter`` is above the last accepted counter (None: nothing accepted yet).

    SDMReadCtr only rises; an equal or lower counter is a replayed URL.
    """
    return last_accepted is None or counter > last_accepted
