from __future__ import annotations

from kivy.app import App
from kivy.uix.screenmanager import Screen


class HandsetScreen(Screen):
    """``show(**kw)`` prepares the screen before it is entered; ``refresh()`` redraws from the
    view-models (on language changes, downlink, acks)."""

    @property
    def app(self):
        return App.get_running_app()

    @property
    def handset(self):
        return self.app.handset

    def t(self, key: str, **values) -> str:
        return self.app.tr(key, **values)

    def show(self, **kw) -> None:
        self.refresh()

    def refresh(self) -> None:
        pass
