from __future__ import annotations

from kivy.properties import StringProperty

from mobile_app.app.screens.base import HandsetScreen


class SettingsScreen(HandsetScreen):
    device_text = StringProperty("")
    message = StringProperty("")

    def refresh(self) -> None:
        p = self.handset.pairing
        self.device_text = (self.t("settings.device", device=p.device_id,
                                   user=p.full_name or p.username) if p
                            else self.t("settings.unpaired"))
        self.ids.server.text = self.handset.server_url or ""
        self.ids.lang_en.state = "down" if self.app.lang == "en" else "normal"
        self.ids.lang_zh.state = "down" if self.app.lang == "zh-CN" else "normal"

    def set_language(self, lang: str) -> None:
        self.handset.set_language(lang)

    def save_server(self) -> None:
        self.handset.set_server_url(self.ids.server.text)
        self.message = self.t("settings.saved")

    def unpair(self) -> None:
        self.handset.unpair()
        self.app.go("pairing")
