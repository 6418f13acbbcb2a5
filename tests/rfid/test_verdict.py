"""Every scan verdict, from tags emulated with keys diversified from the key ring."""

from __future__ import annotations

import pytest

from rfid import (
    EnrolledTag,
    KeyConfigurationError,
    KeyRing,
    Verdict,
    extract_sun_params,
    judge_scan,
)
from rfid.sun import SunParams
from tests.rfid.emulator import Ntag424Tag

RING = KeyRing(
    {
        1: bytes.fromhex("00112233445566778899AABBCCDDEEFF"),
        2: bytes.fromhex("A0A1A2A3A4A5A6A7A8A9AAABACADAEAF"),
    }
)
SUN_UID = bytes.fromhex("04A1B2C3D4E580")
PLAIN_UID = "04112233445566"


def sun_url(
    counter: int, *, version: int = 1, uid: bytes = SUN_UID, file_data: bytes | None = None
) -> SunParams:
    tag = Ntag424Tag(
        uid,
        meta_read_key=RING.meta_read_key(version),
        file_read_key=RING.file_read_key(uid, version),
        counter=counter,
        file_data=file_data,
    )
    params = extract_sun_params(tag.last_url)
    assert params is not None
    return params


def registry(**sun_tag: object) -> dict[str, EnrolledTag]:
    fields = {
        "uid": SUN_UID.hex().upper(),
        "sun_enabled": True,
        "key_version": 1,
        "last_counter": 10,
    }
    fields.update(sun_tag)
    return {
        SUN_UID.hex().upper(): EnrolledTag(**fields),  # type: ignore[arg-type]
        PLAIN_UID: EnrolledTag(PLAIN_UID, sun_enabled=False),
    }


def judge(
    uid: str | None, sun: SunParams | None, tags: dict[str, EnrolledTag] | None = None, **kw: object
):
    tags = registry() if tags is None else tags
    return judge_scan(uid=uid, sun=sun, lookup=tags.get, keyring=RING, **kw)  # type: ignore[arg-type]


def test_verified() -> None:
    result = judge("04:a1:b2:c3:d4:e5:80", sun_url(11, file_data=b"HEL-0042-T17\x00\x00\x00\x00"))
    assert result.verdict is Verdict.VERIFIED and result.accepted
    assert (result.uid, result.counter, result.key_version) == ("04A1B2C3D4E580", 11, 1)
    assert result.file_data == b"HEL-0042-T17\x00\x00\x00\x00"


def test_verified_from_the_url_alone() -> None:
    assert judge(None, sun_url(20)).verdict is Verdict.VERIFIED


def test_verified_first_scan_of_a_new_tag() -> None:
    result = judge(None, sun_url(0), registry(last_counter=None))
    assert (result.verdict, result.counter) == (Verdict.VERIFIED, 0)


def test_uid_only_for_a_known_plain_tag() -> None:
    result = judge(PLAIN_UID, None)
    assert result.verdict is Verdict.UID_ONLY and result.accepted
    # SUN parameters on a tag enrolled as plain do not upgrade it.
    assert judge(PLAIN_UID, sun_url(50, uid=bytes.fromhex(PLAIN_UID))).verdict is Verdict.UID_ONLY


def test_unknown_tag() -> None:
    assert judge("04FFFFFFFFFFFF", None).verdict is Verdict.UNKNOWN_TAG
    stranger = sun_url(3, uid=bytes.fromhex("04ABCDEF012345"))
    result = judge(None, stranger)
    assert (result.verdict, result.uid) == (Verdict.UNKNOWN_TAG, "04ABCDEF012345")


def test_revoked() -> None:
    result = judge(None, sun_url(11), registry(revoked=True))
    assert result.verdict is Verdict.REVOKED and not result.accepted


@pytest.mark.parametrize("counter", [9, 10])  # below and equal to the last accepted (10)
def test_replayed(counter: int) -> None:
    result = judge(None, sun_url(counter))
    assert (result.verdict, result.counter) == (Verdict.REPLAYED, counter)


def test_same_url_twice_is_replayed_once_the_counter_is_stored() -> None:
    params = sun_url(30)
    first = judge(None, params)
    assert first.verdict is Verdict.VERIFIED
    again = judge(None, params, registry(last_counter=first.counter))
    assert again.verdict is Verdict.REPLAYED


def test_bad_mac() -> None:
    params = sun_url(11)
    forged = SunParams(params.url, bytes(8), params.picc_data)
    assert judge("04A1B2C3D4E580", forged).verdict is Verdict.BAD_MAC
    assert judge(None, forged).verdict is Verdict.BAD_MAC


def test_bad_mac_when_a_sun_tag_shows_no_sun() -> None:
    result = judge("04A1B2C3D4E580", None)  # a clone answering with the UID only
    assert (result.verdict, result.reason) == (Verdict.BAD_MAC, "SUN tag presented no SUN message")


def test_bad_mac_when_the_reader_reports_another_uid() -> None:
    other = dict(registry())
    other["04CAFEBABE0180"] = EnrolledTag("04CAFEBABE0180", sun_enabled=False)
    result = judge("04CAFEBABE0180", sun_url(11), other)
    assert result.verdict is Verdict.BAD_MAC and "differs" in result.reason


def test_bad_mac_when_signed_with_another_version_than_enrolled() -> None:
    result = judge(None, sun_url(11, version=2))  # enrolled with version 1
    assert result.verdict is Verdict.BAD_MAC


def test_rotation_version_recorded_on_the_tag_decides() -> None:
    result = judge(None, sun_url(11, version=2), registry(key_version=2))
    assert (result.verdict, result.key_version) == (Verdict.VERIFIED, 2)


def test_enrolled_version_missing_from_the_ring_is_a_configuration_error() -> None:
    with pytest.raises(KeyConfigurationError):
        judge("04A1B2C3D4E580", sun_url(11, version=2), registry(key_version=7))


@pytest.mark.parametrize(
    ("uid", "sun", "sun_error"),
    [
        (None, None, None),
        ("not-a-uid", None, None),
        ("04A1B2C3D4E580", None, "SUN parameter 'cmac' is not hex"),
    ],
)
def test_malformed(uid: str | None, sun: SunParams | None, sun_error: str | None) -> None:
    result = judge(uid, sun, sun_error=sun_error)
    assert result.verdict is Verdict.MALFORMED and not result.accepted
