"""Fixtures for the rfid tests: a real pcscd with the vsmartcard virtual reader.

``pcscd`` (session scope) reuses a running pcscd when ``readers()`` answers with the vpcd
reader, otherwise starts ``pcscd --foreground`` itself (it needs root for /run/pcscd) and stops
it by PID at the end. Missing OS packages make the PC/SC tests fail, not skip: the Makefile
installs scripts/os-packages-rfid.txt before running them.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rfid.errors import RfidError
from rfid.pcsc import list_readers
from tests.rfid.emulator import VPCD_HOST, VPCD_PORT, VirtualTag

VPCD_READER = "Virtual PCD 00 00"
_START_TIMEOUT = 10.0


def _readers() -> list[str] | None:
    try:
        return list_readers()
    except RfidError:
        return None


def _missing_prerequisites() -> list[str]:
    missing = []
    if shutil.which("pcscd") is None:
        missing.append("pcscd (Debian package pcscd)")
    if not glob.glob("/usr/lib/pcsc/drivers/serial/libifdvpcd.so*"):
        missing.append("the vpcd driver (Debian package vsmartcard-vpcd)")
    try:
        import smartcard.scard  # noqa: F401
    except ImportError:
        missing.append("pyscard (pip install 'crewline[readers]'; needs swig, libpcsclite-dev)")
    return missing


@pytest.fixture(scope="session")
def pcscd() -> Iterator[str]:
    """The name of the vpcd reader of a running pcscd (started here when none runs)."""
    missing = _missing_prerequisites()
    if missing:
        pytest.fail("PC/SC tests need: " + "; ".join(missing), pytrace=False)
    process: subprocess.Popen[bytes] | None = None
    log_path = Path(tempfile.mkstemp(prefix="crewline-pcscd-", suffix=".log")[1])
    readers = _readers()
    if readers is None:
        if os.geteuid() != 0:
            pytest.fail("pcscd is not running and starting it needs root", pytrace=False)
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                ["pcscd", "--foreground"], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            readers = _readers()
            if readers and VPCD_READER in readers:
                break
            time.sleep(0.05)
    try:
        if not readers or VPCD_READER not in readers:
            pytest.fail(
                f"pcscd did not offer {VPCD_READER!r} (readers: {readers}); "
                f"log: {log_path.read_text(errors='replace')[-2000:]}",
                pytrace=False,
            )
        yield VPCD_READER
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        log_path.unlink(missing_ok=True)


def _wait_until_empty(reader: str, timeout: float = 5.0) -> None:
    """Block until pcscd sees no card in ``reader`` (vpcd notices a closed socket by polling)."""
    from smartcard import scard

    result, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert result == 0
    try:
        deadline = time.monotonic() + timeout
        state = scard.SCARD_STATE_UNAWARE
        while time.monotonic() < deadline:
            result, states = scard.SCardGetStatusChange(ctx, 200, [(reader, state)])
            if result == 0:
                state = states[0][1] & ~scard.SCARD_STATE_CHANGED
                if state & scard.SCARD_STATE_EMPTY:
                    return
        raise AssertionError(f"{reader} still shows a card after {timeout} s")
    finally:
        scard.SCardReleaseContext(ctx)


class VirtualReader:
    """Puts emulated tags into the vpcd reader and takes them out again."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tags: list[VirtualTag] = []

    def insert(self, tag: VirtualTag) -> VirtualTag:
        """Connect ``tag`` to vpcd, retrying while vpcd still holds the previous connection."""
        deadline = time.monotonic() + 5
        while True:
            try:
                tag.insert(VPCD_PORT)
                break
            except (TimeoutError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"vpcd is not listening on {VPCD_HOST}:{VPCD_PORT}") from None
                time.sleep(0.05)
        self._tags.append(tag)
        return tag

    def remove(self, tag: VirtualTag, *, wait: bool = True) -> None:
        """Take ``tag`` out and, by default, wait until pcscd has noticed."""
        tag.remove()
        if wait:
            _wait_until_empty(self.name)

    def remove_all(self) -> None:
        """Take every tag out and wait until the reader is empty."""
        for tag in self._tags:
            tag.remove()
        self._tags.clear()
        _wait_until_empty(self.name)


@pytest.fixture
def virtual_reader(pcscd: str) -> Iterator[VirtualReader]:
    """The vpcd reader, emptied again after each test."""
    reader = VirtualReader(pcscd)
    try:
        yield reader
    finally:
        reader.remove_all()
