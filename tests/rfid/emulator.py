"""Tag emulators for the rfid tests, speaking the vsmartcard vpcd wire protocol.

A program that connects to vpcd's TCP port *is* the card in the virtual reader: connecting
inserts it, closing the socket removes it. Every message is a 2-byte big-endian length and a
payload; a 1-byte payload is a control code (0 power off, 1 power on, 2 reset, 4 send ATR),
anything longer a command APDU answered with a response APDU.

The emulators also answer APDUs directly (:meth:`VirtualTag.respond`), so the same tag logic
drives the unit tests of the shared APDU routine without pcscd.

The SUN generation here is written independently of ``rfid.sun`` (straight from AN12196's
description) so that end-to-end tests check one implementation against another.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import Self

import ndef
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

VPCD_HOST = "127.0.0.1"
VPCD_PORT = 35963  # "Virtual PCD 00 00"

SW_OK = b"\x90\x00"
SW_FILE_NOT_FOUND = b"\x6a\x82"
SW_INS_NOT_SUPPORTED = b"\x6d\x00"
SW_WRONG_LENGTH = b"\x67\x00"
SW_FAILED = b"\x63\x00"

NTAG424_ATR = bytes.fromhex("3B8180018080")


def storage_atr(card_name: int) -> bytes:
    """PC/SC part 3 storage-card ATR, as an ACR122U reports it for a contactless memory card."""
    body = (
        bytes.fromhex("8F8001804F0CA000000306") + b"\x03" + card_name.to_bytes(2, "big") + bytes(4)
    )
    tck = 0
    for byte in body:
        tck ^= byte
    return b"\x3b" + body + bytes([tck])


NTAG215_ATR = storage_atr(0x0003)


def ndef_message(*records: ndef.Record) -> bytes:
    """Encode records into one NDEF message."""
    return b"".join(ndef.message_encoder(list(records)))


class VirtualTag:
    """Base emulator: vpcd transport, fault injection and an APDU log.

    ``drop_after``: close the connection on receiving the Nth APDU, without answering it (the
    tag leaves the field mid-read). ``tamper``: a function that may replace any response.
    """

    atr: bytes = b""

    def __init__(self, uid: bytes) -> None:
        self.uid = uid
        self.apdus: list[bytes] = []
        self.drop_after: int | None = None
        self.tamper: Callable[[bytes, bytes], bytes] | None = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.closed = threading.Event()

    # --- APDU level ----------------------------------------------------------------------

    def respond(self, apdu: bytes) -> bytes:
        """Answer one command APDU (response data followed by the status word)."""
        self.apdus.append(apdu)
        response = self.uid + SW_OK if apdu == bytes.fromhex("FFCA000000") else self.handle(apdu)
        if self.tamper is not None:
            response = self.tamper(apdu, response)
        return response

    def transmit(self, apdu: bytes) -> tuple[bytes, int, int]:
        """The ``transmit`` contract of ``rfid.apdu.TagSession``, without any reader."""
        response = self.respond(apdu)
        if len(response) < 2:
            return response, -1, -1
        return response[:-2], response[-2], response[-1]

    def handle(self, apdu: bytes) -> bytes:
        """Tag-specific commands; subclasses override."""
        return SW_INS_NOT_SUPPORTED

    # --- vpcd transport ------------------------------------------------------------------

    def insert(self, port: int = VPCD_PORT) -> VirtualTag:
        """Connect to vpcd: the tag appears in the virtual reader."""
        self._sock = socket.create_connection((VPCD_HOST, port), timeout=5)
        self._sock.settimeout(None)
        self.closed.clear()
        self._thread = threading.Thread(target=self._serve, name="vpcd-tag", daemon=True)
        self._thread.start()
        return self

    def remove(self) -> None:
        """Close the connection: the tag leaves the reader."""
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._thread is not None:
            self._thread.join(5)
        self.closed.set()

    def __enter__(self) -> Self:
        return self.insert()

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def _recv(self, sock: socket.socket, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def _serve(self) -> None:
        sock = self._sock
        assert sock is not None
        count = 0
        try:
            while True:
                header = self._recv(sock, 2)
                if header is None:
                    return
                (length,) = struct.unpack(">H", header)
                payload = self._recv(sock, length)
                if payload is None:
                    return
                if len(payload) == 1:
                    if payload[0] == 4:
                        sock.sendall(struct.pack(">H", len(self.atr)) + self.atr)
                    continue  # power on/off and reset need no answer
                count += 1
                if self.drop_after is not None and count >= self.drop_after:
                    self.apdus.append(payload)
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
                    return
                response = self.respond(payload)
                sock.sendall(struct.pack(">H", len(response)) + response)
        except OSError:
            return
        finally:
            self.closed.set()


class Ntag424Tag(VirtualTag):
    """An NTAG 424 DNA (Type 4) whose NDEF URL carries a fresh SUN message on every read.

    The read counter rises at every READ BINARY at offset 0 of the NDEF file (each full read
    starts there), like the tag's SDMReadCtr.
    """

    atr = NTAG424_ATR

    def __init__(
        self,
        uid: bytes,
        *,
        meta_read_key: bytes,
        file_read_key: bytes,
        counter: int = 0,
        file_data: bytes | None = None,
        base_url: str = "https://tags.crewline.example/v",
        max_le: int = 0x0100,
        extra_records: tuple[ndef.Record, ...] = (),
    ) -> None:
        super().__init__(uid)
        self.meta_read_key = meta_read_key
        self.file_read_key = file_read_key
        self.counter = counter
        self.file_data = file_data
        self.base_url = base_url
        self.extra_records = extra_records
        # CCLEN 0x17, T4T 2.0, MLe, MLc 0xFF, NDEF file E104 of 256 bytes with free read and
        # write, then the proprietary-file TLV of E105 as on a factory NTAG 424 DNA.
        self.cc = (
            bytes.fromhex("001720")
            + max_le.to_bytes(2, "big")
            + bytes.fromhex("00FF0406E10401000000")
            + bytes.fromhex("0506E10500808283")
        )
        self.selected_app = False
        self.selected: bytes | None = None
        self.last_url = ""
        self.ndef_file = self._render()

    # SUN generation, following AN12196 section 3.4 (AES mode)

    @staticmethod
    def _cmac(key: bytes, data: bytes) -> bytes:
        mac = CMAC(algorithms.AES(key))
        mac.update(data)
        return mac.finalize()

    def _url(self, counter: int) -> str:
        ctr = counter.to_bytes(3, "little")
        picc = b"\xc7" + self.uid + ctr + os.urandom(5)
        enc = Cipher(algorithms.AES(self.meta_read_key), modes.CBC(bytes(16))).encryptor()
        picc_enc = enc.update(picc) + enc.finalize()
        url = f"{self.base_url}?picc_data={picc_enc.hex().upper()}"
        mac_input = b""
        if self.file_data is not None:
            k_enc = self._cmac(self.file_read_key, bytes.fromhex("C33C00010080") + self.uid + ctr)
            ecb = Cipher(algorithms.AES(k_enc), modes.ECB()).encryptor()
            iv = ecb.update(ctr + bytes(13)) + ecb.finalize()
            cbc = Cipher(algorithms.AES(k_enc), modes.CBC(iv)).encryptor()
            enc_hex = (cbc.update(self.file_data) + cbc.finalize()).hex().upper()
            url += f"&enc={enc_hex}"
            mac_input = f"{enc_hex}&cmac=".encode()
        k_mac = self._cmac(self.file_read_key, bytes.fromhex("3CC300010080") + self.uid + ctr)
        cmac = self._cmac(k_mac, mac_input)[1::2]
        return f"{url}&cmac={cmac.hex().upper()}"

    def _render(self) -> bytes:
        self.last_url = self._url(self.counter)
        message = ndef_message(ndef.UriRecord(self.last_url), *self.extra_records)
        return len(message).to_bytes(2, "big") + message

    def handle(self, apdu: bytes) -> bytes:
        cla_ins = apdu[:2]
        if cla_ins == b"\x00\xa4" and apdu[2] == 0x04:  # SELECT by DF name
            name = apdu[5 : 5 + apdu[4]]
            self.selected_app = name == bytes.fromhex("D2760000850101")
            self.selected = None
            return SW_OK if self.selected_app else SW_FILE_NOT_FOUND
        if cla_ins == b"\x00\xa4" and apdu[2] == 0x00:  # SELECT EF by file id
            file_id = apdu[5:7]
            if not self.selected_app or file_id not in (b"\xe1\x03", b"\xe1\x04"):
                return SW_FILE_NOT_FOUND
            self.selected = file_id
            return SW_OK
        if cla_ins == b"\x00\xb0":  # READ BINARY
            if self.selected is None:
                return SW_FILE_NOT_FOUND
            offset, le = (apdu[2] << 8) | apdu[3], apdu[4] or 256
            if self.selected == b"\xe1\x04" and offset == 0:
                self.counter += 1
                self.ndef_file = self._render()
            content = self.cc if self.selected == b"\xe1\x03" else self.ndef_file
            if offset + le > (len(self.cc) if self.selected == b"\xe1\x03" else 256):
                return SW_WRONG_LENGTH
            return content[offset : offset + le].ljust(le, b"\x00") + SW_OK
        return SW_INS_NOT_SUPPORTED


class Ntag215Tag(VirtualTag):
    """An NTAG215-like Type 2 tag read with PC/SC ``FF B0`` page reads (135 pages, 504 user bytes)."""

    atr = NTAG215_ATR
    pages = 135

    def __init__(self, uid: bytes, message: bytes, *, tlvs_before: bytes = b"") -> None:
        super().__init__(uid)
        memory = bytearray(self.pages * 4)
        bcc0 = 0x88 ^ uid[0] ^ uid[1] ^ uid[2]
        bcc1 = uid[3] ^ uid[4] ^ uid[5] ^ uid[6]
        memory[0:12] = uid[0:3] + bytes([bcc0]) + uid[3:7] + bytes([bcc1, 0x48, 0, 0])
        memory[12:16] = bytes.fromhex("E1103E00")  # CC: NDEF 1.0, 0x3E*8 = 496-byte data area
        if len(message) < 0xFF:
            tlv = b"\x03" + bytes([len(message)]) + message
        else:
            tlv = b"\x03\xff" + len(message).to_bytes(2, "big") + message
        area = tlvs_before + tlv + b"\xfe"
        memory[16 : 16 + len(area)] = area
        self.memory = memory

    def handle(self, apdu: bytes) -> bytes:
        if len(apdu) == 5 and apdu[:3] == b"\xff\xb0\x00":
            page, le = apdu[3], apdu[4]
            if page >= self.pages or le > 16:
                return SW_FAILED
            # NTAG READ wraps around past the last page; so do we.
            data = bytes(self.memory[(page * 4 + i) % len(self.memory)] for i in range(le))
            return data + SW_OK
        return SW_INS_NOT_SUPPORTED

    def native(self, command: bytes) -> bytes:
        """The tag's own command set (Android NfcA): READ ``30 pp`` returns 16 bytes or a NAK."""
        self.apdus.append(command)
        if len(command) == 2 and command[0] == 0x30 and command[1] < self.pages:
            page = command[1]
            return bytes(self.memory[(page * 4 + i) % len(self.memory)] for i in range(16))
        return b"\x00"  # 4-bit NAK, as Android hands it over
