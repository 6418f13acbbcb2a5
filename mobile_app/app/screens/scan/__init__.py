from __future__ import annotations

import threading
import time

from kivy.clock import Clock
from kivy.properties import ListProperty, NumericProperty, StringProperty

from mobile_app.app.screens.base import HandsetScreen

COLOURS = {"verified": [0, 0.45, 0.1, 1], "plain": [0.0, 0.2, 0.55, 1],
           "unknown": [0.75, 0.4, 0, 1], "replayed": [0.75, 0, 0, 1], "bad_mac": [0.75, 0, 0, 1],
           "revoked": [0.75, 0, 0, 1], "malformed": [0.75, 0, 0, 1],
           "pending_sun": [0.3, 0.3, 0.3, 1], "pending_plain": [0.3, 0.3, 0.3, 1]}


class ScanScreen(HandsetScreen):
    ticket_id = NumericProperty(0)
    status = StringProperty("")
    tag_text = StringProperty("")
    verdict = StringProperty("")      # a verdict key, '' before a scan
    verdict_text = StringProperty("")
    verdict_colour = ListProperty([0.3, 0.3, 0.3, 1])
    detail = StringProperty("")
    _msg_id: str | None = None

    back_to = StringProperty("")

    def show(self, ticket_id: int | None = None, back_to: str = "", **kw) -> None:
        self.ticket_id = ticket_id or 0
        self.back_to = back_to
        self.verdict, self.tag_text, self.detail, self._msg_id = "", "", "", None
        self.refresh()

    def refresh(self) -> None:
        scanner = self.handset.platform.scanner
        self.status = self.t("scan.reader", name=scanner.name)
        if self.verdict:
            self.verdict_text = self.t(f"verdict.{self.verdict}")
            self.verdict_colour = COLOURS.get(self.verdict, [0, 0, 0, 1])
        else:
            self.verdict_text = self.t("scan.hint")
            self.verdict_colour = [0.3, 0.3, 0.3, 1]

    def on_enter(self) -> None:
        self.handset.platform.scanner.start(
            lambda reading: Clock.schedule_once(lambda dt: self.on_reading(reading)),
            lambda error: Clock.schedule_once(lambda dt: self.on_error(error)))

    def on_leave(self) -> None:
        self.handset.platform.scanner.stop()
        self._msg_id = None

    def done(self) -> None:
        if self.back_to:
            self.app.go(self.back_to, back=True)
        elif self.ticket_id:
            self.app.go("detail", ticket_id=int(self.ticket_id))
        else:
            self.app.go("jobs")

    def on_error(self, error) -> None:
        if error.code in ("no_reader", "pcsc_unavailable", "nfc_unavailable", "reader_unplugged"):
            self.status = self.t("scan.no_reader", detail=error.message if hasattr(error, "message")
                                 else str(error))
        else:
            self.detail = self.t("scan.error", detail=str(error))

    def on_reading(self, reading) -> None:
        outcome = self.handset.scan(reading, int(self.ticket_id) or None)
        self._msg_id = outcome.msg_id
        self.tag_text = self.t("scan.tag", uid=outcome.uid)
        self.verdict = outcome.verdict
        self.detail = "" if outcome.final else (self.t("scan.checking") if self.handset.online
                                                else self.t("scan.queued"))
        self.refresh()
        if not outcome.final:
            self._poll(outcome.msg_id)

    def _poll(self, msg_id: str) -> None:
        def work() -> None:
            deadline = time.monotonic() + 120
            while self._msg_id == msg_id and time.monotonic() < deadline:
                verdict = self.handset.scan_verdict(msg_id)
                if verdict:
                    Clock.schedule_once(lambda dt, v=verdict: self._judged(msg_id, v))
                    return
                time.sleep(0.5)

        threading.Thread(target=work, daemon=True).start()

    def _judged(self, msg_id: str, verdict: str) -> None:
        if msg_id != self._msg_id:
            return
        self.verdict, self.detail = verdict, ""
        self.refresh()
