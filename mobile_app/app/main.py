"""The Kivy application: composition of screens, the Handset presenter and the platform facades.

Thin on purpose: screens call the presenter (mobile_app/viewmodels), results from other threads
come back through ``Clock.schedule_once``.
"""

from __future__ import annotations

import time
from pathlib import Path

from kivy.app import App
from kivy.clock import Clock
from kivy.lang import Builder
from kivy.properties import BooleanProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.screenmanager import NoTransition

from mobile_app.app import widgets  # noqa: F401  (registers the widget classes for KV)
from mobile_app.app.fonts import register_cjk_font
from mobile_app.app.screens.checklist import ChecklistScreen
from mobile_app.app.screens.detail import DetailScreen
from mobile_app.app.screens.jobs import JobsScreen
from mobile_app.app.screens.pairing import PairingScreen
from mobile_app.app.screens.rounds import RoundsScreen
from mobile_app.app.screens.scan import ScanScreen
from mobile_app.app.screens.settings import SettingsScreen
from mobile_app.i18n import tr
from mobile_app.viewmodels.handset import Handset

HERE = Path(__file__).resolve().parent
SCREENS = {"pairing": PairingScreen, "jobs": JobsScreen, "detail": DetailScreen,
           "scan": ScanScreen, "checklist": ChecklistScreen, "rounds": RoundsScreen,
           "settings": SettingsScreen}
KV_FILES = [HERE / "theme.kv", HERE / "root.kv",
            *(HERE / "screens" / name / f"{name}.kv" for name in SCREENS)]


class Root(BoxLayout):
    pass


class HandsetApp(App):
    lang = StringProperty("zh-CN")
    paired = BooleanProperty(False)
    notice = StringProperty("")
    title = "Crewline"

    def __init__(self, handset: Handset, **kw) -> None:
        super().__init__(**kw)
        self.handset = handset
        self.started_at = time.monotonic()
        self.first_jobs_frame: float | None = None
        self.jobs_drawn_at: float | None = None  # wall clock (time.time), for the benchmark
        self.font: Path | None = None

    def tr(self, key: str, lang: str | None = None, **values) -> str:
        return tr(key, lang or self.lang, **values)

    def build(self):
        self.font = register_cjk_font(self.handset.settings.font)
        for kv in KV_FILES:
            Builder.load_file(str(kv))
        self.lang = self.handset.language
        self.paired = self.handset.pairing is not None
        root = Root()
        sm = root.ids.sm
        sm.transition = NoTransition()  # transitions cost frames and battery
        for name, cls in SCREENS.items():
            sm.add_widget(cls(name=name))
        self.root_widget = root
        self.handset.subscribe(lambda what: Clock.schedule_once(lambda dt: self.on_change(what)))
        Clock.schedule_interval(self._tick, 1.0)
        from kivy.core.window import Window

        Window.bind(on_textinput=self._on_text, on_key_down=self._on_key)
        return root

    def on_start(self) -> None:
        if self.handset.settings.platform == "android":  # runtime permissions (Android 6+)
            from android.permissions import Permission, request_permissions  # type: ignore

            request_permissions([Permission.ACCESS_FINE_LOCATION, Permission.CAMERA])
        self.handset.start()
        self.go("jobs" if self.paired else "pairing")
        self._refresh_banner()
        if self.handset.settings.driver_port:
            from mobile_app.app.driver import Driver

            self.driver = Driver(self, self.handset.settings.driver_port)
            self.driver.start()

    def on_stop(self) -> None:
        self.handset.stop()

    def on_pause(self) -> bool:
        self.handset.platform.scanner.stop()  # Android: reader mode only in the foreground
        return True

    def on_resume(self) -> None:
        sm = self.root_widget.ids.sm
        if sm.current == "scan":
            sm.current_screen.on_enter()

    @property
    def screen(self):
        return self.root_widget.ids.sm.current_screen

    def go(self, name: str, **kw) -> None:
        sm = self.root_widget.ids.sm
        screen = sm.get_screen(name)
        screen.show(**kw)
        sm.current = name
        if name == "jobs" and self.first_jobs_frame is None:
            Clock.schedule_once(self._jobs_drawn, 0)

    def _jobs_drawn(self, dt) -> None:
        # scheduled when the jobs screen became current: runs after the next frame is drawn
        self.first_jobs_frame = time.monotonic() - self.started_at
        self.jobs_drawn_at = time.time()

    def on_change(self, what: str) -> None:
        if what == "language":
            self.lang = self.handset.language
        if what == "paired":
            self.paired = self.handset.pairing is not None
        self._refresh_banner()
        notices = self.handset.notices
        if len(notices) > getattr(self, "_notices_shown", 0):
            self._notices_shown = len(notices)
            self.notice = notices[-1]
        self.screen.refresh()

    def _refresh_banner(self) -> None:
        state, text = self.handset.banner()
        banner = self.root_widget.ids.banner
        banner.state, banner.text = state, text

    def _tick(self, dt) -> None:
        self.handset.tick(time.monotonic())
        self._ticks = getattr(self, "_ticks", 0) + 1
        before = self.root_widget.ids.banner.text
        self._refresh_banner()
        current = self.root_widget.ids.sm.current
        changed = before != self.root_widget.ids.banner.text
        # SLA countdowns move: redraw the list and the detail twice a minute
        if current in ("jobs", "detail") and (changed or self._ticks % 30 == 0):
            self.screen.refresh()

    def _on_text(self, _window, text: str) -> None:
        """Keyboard-wedge readers type the UID: keystrokes go to the reader on the scan screen
        (and only there, so typing into fields elsewhere is unaffected)."""
        scanner = self.handset.platform.scanner
        if self.root_widget.ids.sm.current == "scan" and hasattr(scanner, "feed"):
            scanner.feed(text)

    def _on_key(self, _window, key: int, *_args) -> bool:
        scanner = self.handset.platform.scanner
        if key == 13 and self.root_widget.ids.sm.current == "scan" and hasattr(scanner, "feed"):
            scanner.feed("\n")
            return True
        return False
