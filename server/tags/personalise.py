"""What to write to an NTAG 424 DNA so that its scans verify here (printed, not written).

Crewline does not write tags itself: ChangeKey and ChangeFileSettings need an EV2-authenticated
secure-messaging session with the tag's application master key, which we cannot test against
real silicon here. ``crewline tags enroll`` prints this plan for a personalisation tool (NXP
TagXplorer / TagWriter, or a provisioning script) instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import ndef  # type: ignore[import-untyped]

from rfid import KeyRing

PICC_PLACEHOLDER = "0" * 32
CMAC_PLACEHOLDER = "0" * 16


@dataclass(frozen=True)
class SdmPlan:
    uid: str
    key_version: int
    keys: dict[int, bytes]  # slot -> key, diversified from the master key of key_version
    url_template: str
    ndef_file: bytes  # NLEN + NDEF message, as it goes into file E104 (file number 02)
    picc_data_offset: int
    mac_input_offset: int
    mac_offset: int
    meta_read_key_no: int
    file_read_key_no: int

    def to_dict(self) -> dict:
        return {
            "uid": self.uid, "key_version": self.key_version,
            "keys": {str(slot): key.hex().upper() for slot, key in sorted(self.keys.items())},
            "url_template": self.url_template, "ndef_file": self.ndef_file.hex().upper(),
            "sdm": {"file_no": 2, "sdm_options": {"uid_mirror": True, "read_ctr_mirror": True,
                                                  "ascii": True, "enc_file_data": False},
                    "sdm_meta_read_key": self.meta_read_key_no,
                    "sdm_file_read_key": self.file_read_key_no, "sdm_ctr_ret_key": "E (free)",
                    "picc_data_offset": self.picc_data_offset,
                    "sdm_mac_input_offset": self.mac_input_offset,
                    "sdm_mac_offset": self.mac_offset},
        }


def sdm_plan(keyring: KeyRing, uid: str, base_url: str, version: int | None = None) -> SdmPlan:
    """The keys, NDEF file and SDM offsets that make tag ``uid`` emit
    ``<base_url>?picc_data=<32 hex>&cmac=<16 hex>`` verifiable with ``keyring``."""
    version = keyring.current_version if version is None else version
    raw_uid = bytes.fromhex(uid)
    url = f"{base_url}?picc_data={PICC_PLACEHOLDER}&cmac={CMAC_PLACEHOLDER}"
    message = b"".join(ndef.message_encoder([ndef.UriRecord(url)]))
    ndef_file = len(message).to_bytes(2, "big") + message
    picc = ndef_file.index(f"picc_data={PICC_PLACEHOLDER}".encode()) + len("picc_data=")
    mac = ndef_file.index(f"&cmac={CMAC_PLACEHOLDER}".encode()) + len("&cmac=")
    return SdmPlan(uid=uid, key_version=version,
                   keys=keyring.personalisation_keys(raw_uid, version), url_template=url,
                   ndef_file=ndef_file, picc_data_offset=picc,
                   # no encrypted file data: the MAC covers nothing (input offset = MAC offset)
                   mac_input_offset=mac, mac_offset=mac,
                   meta_read_key_no=keyring.meta_read_key_no,
                   file_read_key_no=keyring.file_read_key_no)


def render_plan(plan: SdmPlan) -> str:
    """Human-readable instructions (contains the tag's keys: treat the output as secret)."""
    keys = "\n".join(f"    key {slot}: {key.hex().upper()}"
                     + (" (SDM meta read)" if slot == plan.meta_read_key_no else "")
                     + (" (SDM file read)" if slot == plan.file_read_key_no else "")
                     + (" (application master, change it last)" if slot == 0 else "")
                     for slot, key in sorted(plan.keys.items()))
    return f"""\
NTAG 424 DNA personalisation for {plan.uid} (key version {plan.key_version}).
Crewline does NOT write these; apply them with your personalisation tool, then scan the tag once
to check (the scan must come back "verified"). These are the tag's keys: keep this output secret.
  1. ChangeKey (authenticate with key 0; factory keys are all zeros), keys 1-4 first, key 0 last:
{keys}
  2. Write the NDEF file (E104, file number 02), {len(plan.ndef_file)} bytes:
    {plan.ndef_file.hex().upper()}
    (URL {plan.url_template})
  3. ChangeFileSettings, file 02: SDM enabled, communication mode plain, free read access;
    SDM options: UID mirror, SDMReadCtr mirror, ASCII encoding, no encrypted file data;
    SDMMetaRead key {plan.meta_read_key_no} (encrypted PICCData), SDMFileRead key \
{plan.file_read_key_no}, SDMCtrRet free (E);
    PICCDataOffset {plan.picc_data_offset}, SDMMACInputOffset {plan.mac_input_offset}, \
SDMMACOffset {plan.mac_offset}.
"""
