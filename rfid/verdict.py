"""The pure rules that turn one tag scan into a verdict.

The server owns the registry and the storage: it looks the tag up (locking its row), calls
:func:`judge_scan`, stores the verdict and, for ``verified``, the new last accepted counter, in
one transaction. Everything decidable without a database lives here.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from rfid.errors import MalformedResponseError, SunAuthenticationError
from rfid.model import normalize_uid
from rfid.sun import KeyRing, SunParams, counter_advanced, verify_sun_with_keyring

__all__ = ["EnrolledTag", "ScanJudgement", "Verdict", "judge_scan"]


class Verdict(enum.StrEnum):
    """What a scan proves. Nothing is accepted silently: every scan gets exactly one."""

    VERIFIED = "verified"  #: SUN valid and its counter above the last accepted one
    UID_ONLY = "uid_only"  #: a known plain tag (no SUN): presence is claimed, not proven
    UNKNOWN_TAG = "unknown_tag"  #: no enrolled tag has this UID
    REVOKED = "revoked"  #: the tag was enrolled and has been revoked
    REPLAYED = "replayed"  #: valid SUN whose counter is not above the last accepted one
    BAD_MAC = "bad_mac"  #: SUN present (or required) but it does not verify
    MALFORMED = "malformed"  #: no usable UID, or SUN parameters that cannot be parsed


@dataclass(frozen=True, slots=True)
class EnrolledTag:
    """The registry's view of one tag, as :func:`judge_scan` needs it."""

    uid: str
    sun_enabled: bool
    key_version: int | None = None
    revoked: bool = False
    last_counter: int | None = None


@dataclass(frozen=True, slots=True)
class ScanJudgement:
    """The verdict, what was learnt from the scan, and a human-readable reason."""

    verdict: Verdict
    reason: str
    uid: str | None = None
    counter: int | None = None
    key_version: int | None = None
    file_data: bytes | None = None

    @property
    def accepted(self) -> bool:
        """True for verdicts that count as a visit (``verified`` and ``uid_only``)."""
        return self.verdict in (Verdict.VERIFIED, Verdict.UID_ONLY)


def judge_scan(
    *,
    uid: str | None,
    sun: SunParams | None,
    lookup: Callable[[str], EnrolledTag | None],
    keyring: KeyRing,
    sun_error: str | None = None,
) -> ScanJudgement:
    """Decide the verdict of one scan.

    ``uid`` is what the reader reported (may be None for a SUN URL delivered alone), ``sun`` the
    parsed SUN parameters, ``sun_error`` why SUN-looking parameters could not be parsed.
    ``lookup`` returns the enrolled tag for a canonical UID. Rules, first match wins:

    1. ``malformed``: ``sun_error`` set, a reported UID that is not a UID, or neither UID nor SUN.
    2. The tag's UID is the one in a SUN message that verifies under some key version, else the
       reported UID; ``bad_mac`` if neither exists (a SUN URL alone that verifies under no
       version), ``unknown_tag`` if the registry has no such tag.
    3. ``revoked`` if the tag is revoked.
    4. Plain tag (SUN off): ``uid_only``; any SUN parameters it carries are ignored.
    5. SUN tag: ``bad_mac`` if there is no SUN message, it does not verify with the tag's
       enrolled key version, or its UID differs from the reported one.
    6. ``replayed`` if the counter is not above the tag's last accepted counter, else ``verified``.

    The caller must make step 6 atomic with storing the new counter (row lock or a conditional
    update), so that two scans with one counter cannot both pass. A tag enrolled with a key
    version the key ring no longer has raises :class:`rfid.errors.KeyConfigurationError` (a deployment
    error, not a verdict).
    """
    if sun_error is not None:
        return ScanJudgement(Verdict.MALFORMED, f"unusable SUN parameters: {sun_error}")
    reported: str | None = None
    if uid is not None:
        try:
            reported = normalize_uid(uid)
        except MalformedResponseError as exc:
            return ScanJudgement(Verdict.MALFORMED, str(exc))
    if reported is None and sun is None:
        return ScanJudgement(Verdict.MALFORMED, "scan has neither a UID nor a SUN message")

    verification = None
    if sun is not None:
        try:
            verification = verify_sun_with_keyring(sun, keyring)
        except SunAuthenticationError:
            verification = None
    claimed = verification.uid_hex if verification is not None else reported
    if claimed is None:
        return ScanJudgement(Verdict.BAD_MAC, "SUN message verifies under no key version")

    tag = lookup(claimed)
    if tag is None:
        return ScanJudgement(Verdict.UNKNOWN_TAG, "tag is not enrolled", uid=claimed)
    if tag.revoked:
        return ScanJudgement(Verdict.REVOKED, "tag has been revoked", uid=claimed)
    if not tag.sun_enabled:
        return ScanJudgement(
            Verdict.UID_ONLY, "plain tag: UID read, presence not proven", uid=claimed
        )

    if sun is None:
        return ScanJudgement(Verdict.BAD_MAC, "SUN tag presented no SUN message", uid=claimed)
    if verification is None or verification.key_version != tag.key_version:
        # The message may still verify with the enrolled version when another version also
        # decrypted it by chance; check that version explicitly before refusing.
        try:
            verification = (
                verify_sun_with_keyring(sun, keyring, key_version=tag.key_version)
                if tag.key_version is not None
                else None
            )
        except SunAuthenticationError:
            verification = None
    if verification is None or verification.uid_hex != claimed:
        return ScanJudgement(Verdict.BAD_MAC, "SUN message does not verify", uid=claimed)
    if reported is not None and reported != claimed:
        return ScanJudgement(
            Verdict.BAD_MAC, "SUN UID differs from the UID the reader reported", uid=claimed
        )
    if not counter_advanced(verification.counter, tag.last_counter):
        return ScanJudgement(
            Verdict.REPLAYED,
            f"counter {verification.counter} not above last accepted {tag.last_counter}",
            uid=claimed,
            counter=verification.counter,
            key_version=verification.key_version,
        )
    return ScanJudgement(
        Verdict.VERIFIED,
        "SUN verified and counter advanced",
        uid=claimed,
        counter=verification.counter,
        key_version=verification.key_version,
        file_data=verification.file_data,
    )
