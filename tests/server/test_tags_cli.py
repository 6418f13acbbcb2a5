"""`crewline tags enroll` end to end: a real pcscd, the vpcd virtual reader, emulated tags, the
CLI as a separate process, the test database. Serialised with the other PC/SC tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import ndef
import pytest

from server.tags.keys import keyring_from_settings
from tests.rfid.conftest import pcscd, virtual_reader  # noqa: F401  (fixtures)
from tests.rfid.emulator import Ntag215Tag, Ntag424Tag, ndef_message
from tests.server.tags_support import SUN_UID, make_site, sun_url
from tests.support import cli_env

pytestmark = pytest.mark.pcsc
CREWLINE = str(Path(sys.executable).parent / "crewline")
SCANS = "/api/v1/tags/scans"


@pytest.fixture
def run(settings, tmp_path, pcscd):  # noqa: F811
    """Run `crewline ...` against the test database (cwd: no stack.env to pick up)."""
    env = cli_env(CREWLINE_DATABASE_URL=settings.database_url, CREWLINE_ENV="test",
                  CREWLINE_SECRET_KEY=settings.secret_key.get_secret_value(),
                  CREWLINE_LOG_LEVEL="WARNING", COLUMNS="200")

    def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CREWLINE, *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=timeout)

    return _run


def enroll_args(site_id: int, *extra: str) -> list[str]:
    return ["tags", "enroll", "--site", str(site_id), "--by", "manager",
            "--reader", "Virtual PCD 00 00", "--timeout", "10", *extra]


def test_enrol_a_personalised_ntag424(api, run, settings, virtual_reader):  # noqa: F811
    keyring = keyring_from_settings(settings)
    uid = bytes.fromhex(SUN_UID)
    tag = virtual_reader.insert(Ntag424Tag(uid, meta_read_key=keyring.meta_read_key(1),
                                           file_read_key=keyring.file_read_key(uid, 1),
                                           counter=6))
    site = make_site(api)
    proc = run(*enroll_args(site["id"], "--json"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["uid"] == SUN_UID and out["tag_type"] == "type4" and out["sun_enabled"]
    assert out["personalised"] is True and out["key_version"] == 1
    assert out["last_counter"] == 7 == tag.counter and out["sdm_plan"] is None
    assert out["reader"] == "Virtual PCD 00 00" and out["site_id"] == site["id"]

    # the URL read at enrolment is spent; the tag's next read is a visit
    assert api.post("technician", SCANS, json={"uid": SUN_UID, "sun_url": tag.last_url}
                    ).json()["verdict"] == "replayed"
    assert api.post("technician", SCANS, json={"uid": SUN_UID,
                                               "sun_url": sun_url(keyring, SUN_UID, 8)}
                    ).json()["verdict"] == "verified"

    listed = run("tags", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["uid"] for line in listed.stdout.splitlines()] == [SUN_UID]
    text = run("tags", "list", "--site", str(site["id"]))
    assert SUN_UID in text.stdout and "SUN v1 ctr 8" in text.stdout

    # the same tag again: refused, nothing changes
    virtual_reader.remove(tag)
    virtual_reader.insert(tag)
    again = run(*enroll_args(site["id"]))
    assert again.returncode == 1 and "already enrolled" in again.stderr


def test_enrol_an_unpersonalised_ntag424_prints_the_plan(api, run, settings,
                                                         virtual_reader):  # noqa: F811
    keyring = keyring_from_settings(settings)
    uid = bytes.fromhex(SUN_UID)
    factory = bytes(16)  # NXP ships all-zero keys
    virtual_reader.insert(Ntag424Tag(uid, meta_read_key=factory, file_read_key=factory))
    site = make_site(api)
    base = "https://tags.example.net/t"
    proc = run(*enroll_args(site["id"], "--base-url", base))
    assert proc.returncode == 0, proc.stderr
    assert "not personalised" in proc.stdout and "Crewline does NOT write" in proc.stdout
    expected_keys = keyring.personalisation_keys(uid, 1)
    for slot, key in expected_keys.items():
        assert f"key {slot}: {key.hex().upper()}" in proc.stdout
    tag = api.get("manager", "/api/v1/tags/lookup", params={"uid": SUN_UID}).json()
    assert tag["sun_enabled"] and tag["key_version"] == 1 and tag["last_counter"] is None

    # the printed plan works: a tag personalised with it emits URLs that verify
    from server.tags.personalise import sdm_plan

    sdm = sdm_plan(keyring, SUN_UID, base)
    assert sdm.ndef_file.hex().upper() in proc.stdout
    assert (f"PICCDataOffset {sdm.picc_data_offset}, SDMMACInputOffset {sdm.mac_offset}, "
            f"SDMMACOffset {sdm.mac_offset}") in proc.stdout
    personalised = Ntag424Tag(uid, meta_read_key=sdm.keys[sdm.meta_read_key_no],
                              file_read_key=sdm.keys[sdm.file_read_key_no], counter=3,
                              base_url=base)
    picc = personalised.last_url.split("picc_data=")[1][:32]
    cmac = personalised.last_url.split("cmac=")[1]
    file = bytearray(sdm.ndef_file)
    file[sdm.picc_data_offset:sdm.picc_data_offset + 32] = picc.encode()
    file[sdm.mac_offset:sdm.mac_offset + 16] = cmac.encode()
    (record,) = ndef.message_decoder(bytes(file[2:]))
    assert record.iri == personalised.last_url
    r = api.post("technician", SCANS, json={"uid": SUN_UID, "sun_url": record.iri})
    assert r.json()["verdict"] == "verified", r.text


def test_enrol_a_plain_type2_tag(api, run, virtual_reader):  # noqa: F811
    uid = bytes.fromhex("04A2B3C4D5E6F7")
    virtual_reader.insert(Ntag215Tag(uid, ndef_message(ndef.UriRecord("https://example.com/p"))))
    site = make_site(api)
    refused = run(*enroll_args(site["id"], "--sun"))
    assert refused.returncode == 2 and "not an NTAG 424 DNA" in refused.stderr
    proc = run(*enroll_args(site["id"]))
    assert proc.returncode == 0, proc.stderr
    assert "04A2B3C4D5E6F7 (type2, plain" in proc.stdout
    r = api.post("technician", SCANS, json={"uid": "04A2B3C4D5E6F7"})
    assert r.json()["verdict"] == "uid_only"


def test_enrol_errors(api, run, virtual_reader):  # noqa: F811
    site = make_site(api)
    no_tag = run("tags", "enroll", "--site", str(site["id"]), "--by", "manager",
                 "--reader", "Virtual PCD 00 00", "--timeout", "0.5")
    assert no_tag.returncode == 1 and "read_timeout" in no_tag.stderr
    assert run(*enroll_args(999999)).returncode == 2
    wrong_user = run("tags", "enroll", "--site", str(site["id"]), "--by", "technician")
    assert wrong_user.returncode == 2 and "not an active manager or admin" in wrong_user.stderr
    no_reader = run("tags", "enroll", "--site", str(site["id"]), "--by", "admin",
                    "--reader", "ACS ACR122U", "--timeout", "1")
    assert no_reader.returncode == 1 and "no_reader" in no_reader.stderr
    assert api.get("manager", "/api/v1/tags").json() == []
