"""Platform features behind facades, chosen once at start-up (:func:`choose`): GPS, tag reader,
camera, launcher (maps, dialler). Screens and view-models only see the facades."""

from __future__ import annotations

from dataclasses import dataclass

from mobile_app.config import PLATFORM_ANDROID, HandsetSettings
from mobile_app.platform.camera import Camera, DesktopCamera, PlyerCamera
from mobile_app.platform.gps import GpsdGps, GpsSource, NoGps, PlyerGps, SimulatedGps
from mobile_app.platform.launcher import AndroidLauncher, DesktopLauncher, Launcher
from mobile_app.platform.nfc import AndroidScanner, NoScanner, PcscScanner, TagScanner, WedgeScanner


@dataclass
class Platform:
    name: str
    gps: GpsSource
    scanner: TagScanner
    camera: Camera
    launcher: Launcher


def choose(settings: HandsetSettings) -> Platform:
    android = settings.platform == PLATFORM_ANDROID
    if settings.gps == "none":
        gps: GpsSource = NoGps()
    elif settings.gps == "gpsd":
        gps = GpsdGps(settings.gpsd)
    elif settings.gps == "auto" and android:
        gps = PlyerGps()
    else:
        gps = SimulatedGps(*settings.sim_position)
    reader = settings.reader
    if reader == "none":
        scanner: TagScanner = NoScanner()
    elif reader == "wedge":
        scanner = WedgeScanner()
    elif android:
        scanner = AndroidScanner()
    else:
        scanner = PcscScanner(reader or None)
    camera: Camera = PlyerCamera() if android else DesktopCamera(settings.camera_dir)
    launcher: Launcher = AndroidLauncher() if android else DesktopLauncher()
    return Platform("android" if android else "desktop", gps, scanner, camera, launcher)
