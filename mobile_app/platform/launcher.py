"""Opening a map for directions and the dialler for a call: Android intents or the desktop's
browser. Desktop has no telephone: a ``tel:`` URI is only recorded (the screen shows the number)."""

from __future__ import annotations

import webbrowser
from typing import Protocol


class Launcher(Protocol):
    def open(self, uri: str) -> bool: ...


class DesktopLauncher:
    def __init__(self) -> None:
        self.opened: list[str] = []

    def open(self, uri: str) -> bool:
        self.opened.append(uri)
        if uri.startswith(("http://", "https://")):
            return webbrowser.open(uri)
        return False


class AndroidLauncher:
    def __init__(self) -> None:
        self.opened: list[str] = []

    def open(self, uri: str) -> bool:
        from jnius import autoclass  # only on Android

        Intent = autoclass("android.content.Intent")
        Uri = autoclass("android.net.Uri")
        activity = autoclass("org.kivy.android.PythonActivity").mActivity
        action = Intent.ACTION_DIAL if uri.startswith("tel:") else Intent.ACTION_VIEW
        activity.startActivity(Intent(action, Uri.parse(uri)))
        self.opened.append(uri)
        return True
