"""``crewline-handset`` / ``python -m mobile_app``: the technician's app on desktop Linux (a PC/SC
reader for tags) or, packaged by buildozer (main.py at the repository root of the APK), on
Android. Settings come from CREWLINE_HANDSET_* (mobile_app/config.py)."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    from mobile_app.config import HandsetSettings

    settings = HandsetSettings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Kivy reads its own options at import time: no argv parsing, a private config directory
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_HOME", str(settings.data_dir / "kivy"))
    os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")
    if settings.platform != "android":
        from kivy.config import Config

        Config.set("graphics", "width", str(settings.window[0]))
        Config.set("graphics", "height", str(settings.window[1]))
        Config.set("input", "mouse", "mouse,disable_multitouch")
        Config.set("kivy", "exit_on_escape", "0")

    from mobile_app.app.main import HandsetApp
    from mobile_app.platform import choose
    from mobile_app.viewmodels.handset import Handset

    handset = Handset(settings, choose(settings))
    HandsetApp(handset).run()


if __name__ == "__main__":
    main(sys.argv[1:])
