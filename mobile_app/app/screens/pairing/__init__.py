from __future__ import annotations

import threading

from kivy.clock import Clock
from kivy.properties import BooleanProperty, StringProperty

from mobile_app.app.screens.base import HandsetScreen
from mobile_app.viewmodels.handset import PairingFailed


class PairingScreen(HandsetScreen):
    error = StringProperty("")
    busy = BooleanProperty(False)

    def show(self, **kw) -> None:
        if not self.ids.server.text:
            self.ids.server.text = self.handset.server_url or ""
        if not self.ids.name.text:
            self.ids.name.text = "handset"
        self.error = ""

    def pair(self) -> None:
        server, code, name = self.ids.server.text, self.ids.code.text, self.ids.name.text
        self.busy, self.error = True, ""

        def work() -> None:
            try:
                self.handset.pair(server, code, name)
                Clock.schedule_once(lambda dt: self._done(None))
            except PairingFailed as exc:
                text = exc.text
                Clock.schedule_once(lambda dt: self._done(text))

        threading.Thread(target=work, daemon=True).start()

    def _done(self, error: str | None) -> None:
        self.busy = False
        if error:
            self.error = error
            return
        self.ids.code.text = ""
        self.app.go("jobs")
