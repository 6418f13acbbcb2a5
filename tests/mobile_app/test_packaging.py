"""The Android packaging stays correct (an APK cannot be built here): buildozer.spec parses the
way buildozer parses it, asks for the permissions and the NFC feature the app uses, ships the
app's packages, KV files, protocol schemas and a font path, and the desktop entry points run."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def spec() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(allow_no_value=True)  # strict, like buildozer's
    parser.read(ROOT / "buildozer.spec")
    return parser["app"]


def listing(key: str) -> list[str]:
    return [x.strip() for x in spec()[key].split(",") if x.strip()]


def test_permissions_features_and_requirements() -> None:
    perms = set(listing("android.permissions"))
    assert {"NFC", "ACCESS_FINE_LOCATION", "CAMERA", "INTERNET"} <= perms
    assert listing("android.features") == ["android.hardware.nfc"]
    reqs = {r.split("==")[0] for r in listing("requirements")}
    assert {"python3", "kivy", "paho-mqtt", "plyer", "pyjnius", "jsonschema", "ndeflib",
            "cryptography"} <= reqs
    # what mobile_app and rfid import at run time is in the requirements (stdlib aside)
    assert dict(r.split("==") for r in listing("requirements") if "==" in r)["kivy"] == "2.3.1"


def test_the_source_tree_carries_what_the_app_loads() -> None:
    exts = set(listing("source.include_exts"))
    assert {"py", "kv", "json"} <= exts and exts & {"otf", "ttf", "ttc"}
    excluded = set(listing("source.exclude_dirs"))
    assert {"server", "tests"} <= excluded and not {"mobile_app", "rfid"} & excluded
    assert spec()["source.dir"] == "." and (ROOT / "main.py").is_file()
    kv = list((ROOT / "mobile_app" / "app").rglob("*.kv"))
    schemas = list((ROOT / "mobile_app" / "link" / "schemas").glob("*.json"))
    assert len(kv) >= 8 and len(schemas) >= 8


def test_android_code_paths_import_off_device() -> None:
    code = ("from mobile_app.config import HandsetSettings; from mobile_app.platform import choose; "
            "import tempfile, pathlib; "
            "p = choose(HandsetSettings(data_dir=pathlib.Path(tempfile.mkdtemp()), platform='android')); "
            "print(p.name, p.gps.name, p.scanner.name, p.camera.name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["android", "android", "android-nfc", "android"]
