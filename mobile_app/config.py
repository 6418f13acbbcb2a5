"""The handset app's settings: the only module of mobile_app that reads the environment.

Everything a technician chooses (language, server) lives in the app's own store instead
(:mod:`mobile_app.viewmodels.store`); these are the deployment's and developer's knobs
(docs/handset.md has the table):

* ``CREWLINE_HANDSET_DATA`` — the app's SQLite files and photos (default: platform storage,
  ``~/.local/share/crewline-handset`` on Linux);
* ``CREWLINE_HANDSET_SERVER`` — server URL pre-filled on the pairing screen;
* ``CREWLINE_HANDSET_READER`` — PC/SC reader name or prefix (default: the first), ``wedge`` for a
  keyboard reader, ``none``;
* ``CREWLINE_HANDSET_GPS`` — ``auto`` (plyer on Android, simulated on desktop), ``simulated``,
  ``gpsd``, ``none``; ``CREWLINE_HANDSET_GPSD`` — gpsd's address (``127.0.0.1:2947``);
  ``CREWLINE_HANDSET_SIM_POSITION`` — ``lon,lat`` of the simulated GPS;
* ``CREWLINE_HANDSET_CAMERA_DIR`` — desktop camera: the newest image in this directory;
* ``CREWLINE_HANDSET_LANGUAGE`` — force ``en`` or ``zh-CN``; ``CREWLINE_HANDSET_FONT`` — a CJK
  font file; ``CREWLINE_HANDSET_WINDOW`` — desktop window size (``720x1280``);
* ``CREWLINE_HANDSET_DRIVER`` — tests and benchmarks only: a 127.0.0.1 port where the app takes
  remote-control commands (mobile_app/app/driver.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PLATFORM_ANDROID = "android"


def current_platform(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    # python-for-android sets ANDROID_ARGUMENT (and ANDROID_PRIVATE) in the app's process
    return PLATFORM_ANDROID if "ANDROID_ARGUMENT" in env else sys.platform


@dataclass(frozen=True)
class HandsetSettings:
    data_dir: Path
    platform: str
    server_url: str = ""
    reader: str = ""
    gps: str = "auto"
    gpsd: str = "127.0.0.1:2947"
    sim_position: tuple[float, float] = (24.9384, 60.1699)
    camera_dir: Path | None = None
    language: str | None = None
    window: tuple[int, int] = (720, 1280)
    driver_port: int | None = None
    font: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HandsetSettings:
        env = os.environ if environ is None else environ
        platform = current_platform(env)
        data = env.get("CREWLINE_HANDSET_DATA")
        if data:
            data_dir = Path(data)
        elif platform == PLATFORM_ANDROID:
            data_dir = Path(env.get("ANDROID_PRIVATE", ".")) / "crewline"
        else:
            base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
            data_dir = Path(base) / "crewline-handset"
        lon, lat = (float(x) for x in env.get("CREWLINE_HANDSET_SIM_POSITION",
                                              "24.9384,60.1699").split(","))
        w, h = (int(x) for x in env.get("CREWLINE_HANDSET_WINDOW", "720x1280").lower().split("x"))
        camera = env.get("CREWLINE_HANDSET_CAMERA_DIR")
        gps = env.get("CREWLINE_HANDSET_GPS", "auto")
        if gps not in ("auto", "simulated", "gpsd", "none"):
            raise ValueError(f"CREWLINE_HANDSET_GPS must be auto, simulated, gpsd or none, not {gps!r}")
        driver = env.get("CREWLINE_HANDSET_DRIVER")
        language = env.get("CREWLINE_HANDSET_LANGUAGE") or None
        if language not in (None, "en", "zh-CN"):
            raise ValueError(f"CREWLINE_HANDSET_LANGUAGE must be en or zh-CN, not {language!r}")
        return cls(data_dir=data_dir, platform=platform,
                   server_url=env.get("CREWLINE_HANDSET_SERVER", ""),
                   reader=env.get("CREWLINE_HANDSET_READER", ""), gps=gps,
                   gpsd=env.get("CREWLINE_HANDSET_GPSD", "127.0.0.1:2947"),
                   sim_position=(lon, lat), camera_dir=Path(camera) if camera else None,
                   language=language, window=(w, h),
                   driver_port=int(driver) if driver else None,
                   font=Path(env["CREWLINE_HANDSET_FONT"]) if env.get("CREWLINE_HANDSET_FONT") else None)
